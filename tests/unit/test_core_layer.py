"""``qxdb.core``: the standard-library-only layer both the library and the command import.

Its rules are checked here once; the modules that use them are checked to use them (not a
copy) by their own behaviour: settings and the cursor codec read the same secret list,
the outbox name limit is the one every derived name fits.
"""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys

import pytest
from hypothesis import given, strategies as st

import qxdb.core
from qxdb import ConfigurationError, CursorCodec, DatabaseSettings
from qxdb.core.env import parse_secret_list
from qxdb.core.identifiers import (
    IDENTIFIER_MAX,
    OUTBOX_INDEX_SUFFIXES,
    OUTBOX_NAME_MAX,
    InvalidIdentifier,
    outbox_index_name,
    split_qualified,
    validate_identifier,
    validate_outbox_name,
)

CORE_MODULES = sorted(f"qxdb.core.{m.name}" for m in pkgutil.iter_modules(qxdb.core.__path__))


def test_the_core_layer_imports_only_the_standard_library() -> None:
    code = (
        "import json, sys\n"
        "before = set(sys.modules)\n"
        f"for name in {CORE_MODULES!r}: __import__(name)\n"
        "top = {m.split('.')[0] for m in set(sys.modules) - before}\n"
        "print(json.dumps(sorted(top - set(sys.stdlib_module_names) - {'qxdb'})))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []
    assert {"qxdb.core.defaults", "qxdb.core.env", "qxdb.core.failures"} <= set(CORE_MODULES)


@pytest.mark.parametrize(
    "name",
    [
        "qx_outbox_events\n",  # re.match with "$" let this through
        "\nqx_outbox_events",
        "qx outbox",
        "events;drop",
        "1events",
        "",
        ".",
        "a..b",
        "a.b.c",
        "é",
        "\uff45vents",  # a full-width e: \w would accept it, SQL would need quoting
        "x" * (IDENTIFIER_MAX + 1),
    ],
)
def test_identifiers_are_matched_whole(name: str) -> None:
    with pytest.raises(InvalidIdentifier):
        validate_identifier(name)


def test_identifier_limits() -> None:
    assert validate_identifier("x" * IDENTIFIER_MAX) == "x" * IDENTIFIER_MAX
    assert validate_identifier("s" * 63 + "." + "t" * 63)
    with pytest.raises(InvalidIdentifier, match="must be a string"):
        validate_identifier(None)
    # Every name derived from the outbox table's fits PostgreSQL's 63 bytes, and no more
    # room is refused than needed: the longest derived name is exactly 63 at the limit.
    longest = max(len(outbox_index_name("x" * OUTBOX_NAME_MAX, s)) for s in OUTBOX_INDEX_SUFFIXES)
    assert longest == IDENTIFIER_MAX
    assert validate_outbox_name("x" * OUTBOX_NAME_MAX)
    with pytest.raises(InvalidIdentifier, match=f"at most {OUTBOX_NAME_MAX}"):
        validate_outbox_name("x" * (OUTBOX_NAME_MAX + 1))
    with pytest.raises(ValueError, match="unknown outbox index suffix"):
        outbox_index_name("t", "nope")


def test_split_qualified() -> None:
    assert split_qualified("audit.events") == ("audit", "events")
    assert split_qualified("events") == (None, "events")


@given(st.text(max_size=80))
def test_identifier_validation_accepts_exactly_plain_ascii_identifiers(text: str) -> None:
    import re

    plain = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
    expected = all(plain.fullmatch(p) for p in text.split(".")) and text.count(".") <= 1
    try:
        validate_identifier(text)
    except InvalidIdentifier:
        assert not expected
    else:
        assert expected


@pytest.mark.parametrize(
    ("text", "secrets"),
    [
        ("", ()),
        ("  ", ()),
        ("old1", ("old1",)),
        ("old1,old2", ("old1", "old2")),
        (" old1 , ,old2 ", ("old1", "old2")),
        ('["old1", "old2"]', ("old1", "old2")),
        ('["old1", ""]', ("old1",)),
        ("[]", ()),
    ],
)
def test_previous_secrets_one_parser_two_readers(
    monkeypatch: pytest.MonkeyPatch, text: str, secrets: tuple[str, ...]
) -> None:
    assert parse_secret_list(text) == secrets
    # The settings (also .env) and the command's light codec read the variable alike.
    monkeypatch.setenv("QX_DB__CURSOR_PREVIOUS_SECRETS", text)
    settings = DatabaseSettings()
    assert tuple(s.get_secret_value() for s in settings.cursor_previous_secrets) == secrets
    assert tuple(CursorCodec.from_env().previous_secrets) == secrets


@pytest.mark.parametrize("text", ["[old1", '["a", 1]', '[{"a": "b"}]', "[null]"])
def test_previous_secrets_bad_json_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch, text: str
) -> None:
    with pytest.raises(ValueError, match="QX_DB__CURSOR_PREVIOUS_SECRETS"):
        parse_secret_list(text)
    monkeypatch.setenv("QX_DB__CURSOR_PREVIOUS_SECRETS", text)
    with pytest.raises(ConfigurationError, match="QX_DB__CURSOR_PREVIOUS_SECRETS"):
        DatabaseSettings()
