"""Entities, tables and repositories shared by the repository and unit-of-work tests."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Boolean, Column, Integer, String, Table
from sqlalchemy.ext.asyncio import AsyncEngine

from qxdb import (
    AggregateRoot,
    DomainEvent,
    Entity,
    IntegrationEvent,
    Repository,
    include_outbox_table,
    make_metadata,
    standard_audit_columns,
    uuid_column,
)

metadata = make_metadata()

users_table = Table(
    "users",
    metadata,
    uuid_column("id", primary_key=True),
    Column("email", String(255), nullable=False),
    Column("name", String(100), nullable=False),
    Column("is_active", Boolean, nullable=False, default=True),
    Column("score", Integer, nullable=True),
    *standard_audit_columns(),
)

tags_table = Table(
    "tags",
    metadata,
    uuid_column("id", primary_key=True),
    Column("label", String(100), nullable=False),
    *standard_audit_columns(include_tenant=False),
)

outbox = include_outbox_table(metadata)


class UserRegistered(IntegrationEvent):
    event_name = "users.registered"
    email: str


class UserRenamed(DomainEvent):
    event_name = "users.renamed"
    name: str


@dataclass(kw_only=True, eq=False)
class User(AggregateRoot):
    email: str
    name: str
    is_active: bool = True
    score: int | None = None

    @classmethod
    def register(cls, email: str, name: str) -> User:
        user = cls(email=email, name=name)
        user.record_event(UserRegistered(email=email))
        return user

    def rename(self, name: str) -> None:
        self.name = name
        self.record_event(UserRenamed(name=name))


@dataclass(kw_only=True, eq=False)
class Tag(Entity):
    label: str


class UserRepository(Repository[User]):
    entity_cls = User
    table = users_table
    filterable_fields = {"email", "name", "is_active", "score", "created_at"}
    sortable_fields = {"created_at", "email", "name", "score"}
    tenanted = True


class TagRepository(Repository[Tag]):
    entity_cls = Tag
    table = tags_table
    filterable_fields = {"label"}
    sortable_fields = {"label"}
    tenanted = False


async def create_tables(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
