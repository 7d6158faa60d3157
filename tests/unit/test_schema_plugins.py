"""Plugin rules: what ``define_rule`` accepts, and clashes found through real entry points
(a dist-info on ``sys.path``, as an installed wheel leaves)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from qxdb.conventions import CheckContext, TableSnapshot, Violation, all_rules, define_rule
from qxdb.conventions.plugins import plugin_rules
from qxdb.errors import ConfigurationError


def nothing(table: TableSnapshot, ctx: CheckContext) -> Iterator[Violation]:
    """Finds nothing."""
    yield from ()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"id": "acme1"}, "rule id 'acme1' must be upper case"),
        ({"id": "1ACME"}, "rule id '1ACME' must be upper case"),
        ({"name": "No_Tmp"}, "rule name 'No_Tmp' must be lower-case-with-dashes"),
        ({"sources": ("mysql",)}, "unknown sources ['mysql']"),
    ],
)
def test_define_rule_refuses_bad_ids_names_and_sources(
    kwargs: dict[str, object], message: str
) -> None:
    args: dict[str, object] = {"id": "ACME1", "name": "no-tmp", "rationale": "r", "hint": "h"}
    args.update(kwargs)
    with pytest.raises(ValueError, match=re.escape(message)):
        define_rule(**args)(nothing)  # type: ignore[arg-type]


def test_define_rule_takes_the_docstring_as_documentation() -> None:
    made = define_rule("ACME1", "no-tmp", rationale="r", hint="h")(nothing)
    assert made.doc == "Finds nothing."
    assert made.origin == "qxdb"  # until an entry point loads it


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.syspath_prepend(str(tmp_path))
    plugin_rules.cache_clear()
    yield tmp_path
    plugin_rules.cache_clear()


def install(site: Path, module: str, source: str, value: str) -> None:
    (site / f"{module}.py").write_text(source, encoding="utf-8")
    info = site / f"{module}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[qxdb.schema_rules]\nx = {value}\n")


RULE_SOURCE = """
from qxdb.conventions import define_rule

@define_rule({id!r}, {name!r}, rationale="r", hint="h")
def check(table, ctx):
    yield from ()
"""


def test_an_installed_plugin_joins_the_rules(site: Path) -> None:
    install(
        site, "qxdb_test_fine", RULE_SOURCE.format(id="FINE1", name="fine"), "qxdb_test_fine:check"
    )
    rules = all_rules()
    assert list(rules)[-1] == "FINE1"
    assert rules["FINE1"].origin == "qxdb_test_fine 1.0"


@pytest.mark.parametrize(
    ("rule_id", "name", "message"),
    [
        ("QX001", "mine", "rule QX001 mine clashes with QX001 pk-uuid-id (qxdb)"),
        ("MINE1", "jsonb", "rule MINE1 jsonb clashes with QX006 jsonb (qxdb)"),
    ],
)
def test_a_clash_with_a_builtin_is_refused(
    site: Path, rule_id: str, name: str, message: str
) -> None:
    module = f"qxdb_test_clash_{rule_id.lower()}"
    install(site, module, RULE_SOURCE.format(id=rule_id, name=name), f"{module}:check")
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        all_rules()


def test_a_plugin_that_fails_to_import_is_named(site: Path) -> None:
    install(site, "qxdb_test_broken", "raise RuntimeError('boom')\n", "qxdb_test_broken:RULES")
    with pytest.raises(
        ConfigurationError,
        match=r"plugin 'x' \(qxdb_test_broken:RULES\) cannot be loaded: RuntimeError: boom",
    ):
        all_rules()
