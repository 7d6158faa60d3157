"""The repository's query building, without a database: escaping, binding, validation."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Column, Integer, String, Table, select
from sqlalchemy.dialects import postgresql, sqlite

from qxdb import (
    ConfigurationError,
    Entity,
    Filter,
    InvalidQueryError,
    Repository,
    Sort,
    TenantScopeError,
    escape_like,
    make_metadata,
    request_scope,
    standard_audit_columns,
    system_scope,
    uuid7,
    uuid_column,
)
from qxdb.pagination import keyset_order_by

metadata = make_metadata()
items = Table(
    "items",
    metadata,
    uuid_column("id", primary_key=True),
    Column("title", String(100)),
    Column("rank", Integer),
    *standard_audit_columns(),
)


@dataclass(kw_only=True, eq=False)
class Item(Entity):
    title: str
    rank: int | None = None


class ItemRepository(Repository[Item]):
    entity_cls = Item
    table = items
    filterable_fields = {"title", "rank"}
    sortable_fields = {"title", "rank"}


def repo() -> ItemRepository:
    return ItemRepository(session=None)  # type: ignore[arg-type]  # query building only


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ("plain", "plain"),
        ("100%", "100\\%"),
        ("a_b", "a\\_b"),
        ("back\\slash", "back\\\\slash"),
        ("\\%_", "\\\\\\%\\_"),
        ("", ""),
    ],
)
def test_escape_like(raw: str, escaped: str) -> None:
    assert escape_like(raw) == escaped


@pytest.mark.parametrize("dialect", [postgresql.asyncpg.dialect(), sqlite.dialect()])
def test_values_are_bound_never_pasted(dialect: Any) -> None:
    payload = "x' OR '1'='1"
    with request_scope(tenant_id=uuid7()):
        clauses = [
            repo()._condition(f)[0]
            for f in (
                Filter("title", "eq", payload),
                Filter("title", "contains", payload),
                Filter("title", "in", [payload]),
            )
        ]
    for clause in clauses:
        compiled = clause.compile(dialect=dialect)
        assert "OR '1'" not in str(compiled)
        assert any(payload in str(v) for v in compiled.params.values())


def test_like_operators_are_case_insensitive_with_one_escape_character() -> None:
    clause, _ = repo()._condition(Filter("title", "starts_with", "50%_off"))
    pg = clause.compile(dialect=postgresql.asyncpg.dialect())
    assert "ILIKE" in str(pg)
    assert "ESCAPE '\\'" in str(pg)
    assert list(pg.params.values()) == ["50\\%\\_off%"]
    lite = str(clause.compile(dialect=sqlite.dialect()))
    assert "lower(items.title) LIKE lower(?) ESCAPE '\\'" in lite


def test_sort_policy_is_validated_and_shared() -> None:
    r = repo()
    spec = r._validated_sort([Sort("rank", "desc")])
    assert [(s.field, s.direction, s.effective_nulls) for s in spec] == [
        ("rank", "desc", "first"),
        ("id", "desc", "last"),
    ]
    columns = [items.c[s.field] for s in spec]
    sql = " ".join(str(t.compile(dialect=sqlite.dialect())) for t in keyset_order_by(columns, spec))
    # One ORDER BY builder for list() and keyset pages: no NULLS clause on the NOT NULL id,
    # so both match the same index.
    assert sql == "items.rank DESC NULLS FIRST items.id DESC"
    with pytest.raises(InvalidQueryError, match="allowed: id, rank, title"):
        r._validated_sort([Sort("created_at")])


def test_tenant_scope_fails_closed_and_system_scope_is_explicit() -> None:
    r = repo()
    with pytest.raises(TenantScopeError, match="no tenant"):
        r._scope_clauses(include_deleted=False)
    tenant = uuid7()
    with request_scope(tenant_id=tenant):
        stmt = select(items).where(*r._scope_clauses(include_deleted=False))
        sql = str(stmt.compile(dialect=sqlite.dialect()))
        assert "items.tenant_id = ?" in sql
        assert "items.deleted_at IS NULL" in sql
    with system_scope():
        stmt = select(items).where(*r._scope_clauses(include_deleted=True))
        sql = str(stmt.compile(dialect=sqlite.dialect()))
        assert "WHERE" not in sql


def test_misconfigured_repositories_are_refused() -> None:
    class NoTenantColumn(ItemRepository):
        table = Table("plain", make_metadata(), uuid_column("id", primary_key=True))
        filterable_fields: Any = set()
        sortable_fields: Any = set()

    class UnknownField(ItemRepository):
        filterable_fields = {"title", "nope"}

    with pytest.raises(ConfigurationError, match="no 'tenant_id' column"):
        _ = NoTenantColumn(None)._plan  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match=r"\['nope'\]"):
        _ = UnknownField(None)._plan  # type: ignore[arg-type]


def test_naive_datetime_filter_values_are_a_query_error() -> None:
    class DatedRepository(ItemRepository):
        filterable_fields = {"created_at"}

    r = DatedRepository(None)  # type: ignore[arg-type]
    naive, aware = datetime(2024, 1, 1), datetime(2024, 1, 1, tzinfo=UTC)
    for bad in (Filter("created_at", "gt", naive), Filter("created_at", "in", [aware, naive])):
        with pytest.raises(InvalidQueryError, match="naive datetime 2024-01-01T00:00:00"):
            r._condition(bad)
    assert r._condition(Filter("created_at", "lt", aware))[1].value == aware
