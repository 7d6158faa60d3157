"""`qxdb cursor decode|encode`, run as the installed command."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from uuid import UUID

from qxdb import CursorCodec
from tests.cli.conftest import QXDB, run_qxdb

VALUES = {
    "created_at": datetime(2024, 5, 1, 12, 0, 0, 1, tzinfo=timezone(timedelta(hours=-3))),
    "price": Decimal("10.50"),
    "id": UUID("0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"),
    "n": 7,
    "gone": None,
}


def _one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("qxdb: error: ")
    return lines[0]


def test_decode_json_shows_types_and_verification() -> None:
    token = CursorCodec(secret="k1").encode(VALUES, fingerprint="fp", direction="previous")
    result = run_qxdb("cursor", "decode", token, "--json", env={"QX_DB__CURSOR_SECRET": "k1"})
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert (doc["version"], doc["signed"], doc["verified"], doc["key"]) == (
        1,
        True,
        True,
        "current",
    )
    assert (doc["fingerprint"], doc["direction"]) == ("fp", "previous")
    assert doc["values"] == [
        {"field": "created_at", "type": "datetime", "value": "2024-05-01T12:00:00.000001-03:00"},
        {"field": "price", "type": "decimal", "value": "10.50"},
        {"field": "id", "type": "uuid", "value": "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"},
        {"field": "n", "type": "int", "value": 7},
        {"field": "gone", "type": "null", "value": None},
    ]


def test_decode_human_from_stdin_without_a_secret_says_unverified() -> None:
    token = CursorCodec(secret="k1").encode({"id": 1})
    result = run_qxdb("cursor", "decode", "-", input=token + "\n")
    assert result.returncode == 0, result.stderr
    assert "NOT verified (no secret given)" in result.stdout
    assert "id" in result.stdout
    assert "int" in result.stdout


def test_previous_key_verifies_via_option_and_environment() -> None:
    token = CursorCodec(secret="old").encode({"id": 1})
    result = run_qxdb(
        "cursor", "decode", token, "--secret", "new", "--json",
        env={"QX_DB__CURSOR_PREVIOUS_SECRETS": '["old"]'},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["key"] == "previous #1"


def test_reference_token_decodes() -> None:
    token = base64.urlsafe_b64encode(b'{"id":"abc","created_at":"2024-01-01T00:00:00"}')
    result = run_qxdb("cursor", "decode", token.decode().rstrip("="), "--json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["version"] == 0
    assert doc["values"][0] == {"field": "id", "type": "str", "value": "abc"}


def test_bad_tokens_exit_2_with_one_line_naming_the_reason() -> None:
    signed = CursorCodec(secret="k1").encode({"id": 1})
    cases = {
        "malformed": run_qxdb("cursor", "decode", "not a cursor!"),
        "tampered": run_qxdb("cursor", "decode", signed, "--secret", "other"),
        "unsigned": run_qxdb(
            "cursor", "decode", CursorCodec().encode({"id": 1}), env={"QX_DB__CURSOR_SECRET": "k1"}
        ),
        "too_large": run_qxdb("cursor", "decode", "-", input="A" * 10_000),
        "wrong_version": run_qxdb("cursor", "decode", "v9.AAAA", "--json"),
        "expired": run_qxdb(
            "cursor", "decode", CursorCodec(clock=lambda: 1_000.0).encode({"id": 1}),
            env={"QX_DB__CURSOR_MAX_AGE_SECONDS": "60"},
        ),
    }  # fmt: skip
    for reason, result in cases.items():
        line = _one_error_line(result)
        assert f"({reason})" in line, (reason, line)
    assert "k1" not in cases["tampered"].stderr


def test_allow_unsigned_shows_an_unsigned_token() -> None:
    token = CursorCodec().encode({"id": 1})
    result = run_qxdb(
        "cursor", "decode", token, "--allow-unsigned", env={"QX_DB__CURSOR_SECRET": "k1"}
    )
    assert result.returncode == 0, result.stderr
    assert "signed" in result.stdout


def test_encode_typed_json_signed_and_round_trip_through_decode() -> None:
    document = {
        "created_at": {"type": "datetime", "value": "2024-05-01T12:00:00.000001-03:00"},
        "price": {"type": "decimal", "value": "10.50"},
        "id": {"type": "uuid", "value": "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"},
        "n": 7,
        "gone": None,
    }
    result = run_qxdb(
        "cursor", "encode", json.dumps(document), "--secret", "k1", "--fingerprint", "fp"
    )
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    decoded = CursorCodec(secret="k1").decode(token)
    assert decoded.values == VALUES
    assert decoded.verified
    assert decoded.fingerprint == "fp"
    # decode --json | encode - gives a token with the same content.
    shown = run_qxdb("cursor", "decode", token, "--json", "--secret", "k1")
    again = run_qxdb("cursor", "encode", "-", "--secret", "k1", input=shown.stdout)
    assert again.returncode == 0, again.stderr
    redecoded = CursorCodec(secret="k1").decode(again.stdout.strip())
    assert (redecoded.values, redecoded.fingerprint) == (VALUES, "fp")


def test_encode_bad_json_exits_2() -> None:
    for bad in ("{not json", "[1, 2]", '{"a": {"type": "uuid", "value": "nope"}}', '{"a": 1.5}'):
        line = _one_error_line(run_qxdb("cursor", "encode", bad))
        assert "Traceback" not in line


def test_cursor_commands_import_no_sqlalchemy_alembic_or_driver() -> None:
    token = CursorCodec(secret="k").encode({"at": datetime(2024, 1, 1, tzinfo=UTC)})
    runner = (
        "import sys\n"
        "from qxdb_cli.main import main\n"
        "codes = [main(['cursor', 'decode', sys.argv[1], '--secret', 'k']),\n"
        "         main(['cursor', 'decode', sys.argv[1], '--json']),\n"
        "         main(['cursor', 'decode', 'garbage!']),\n"
        "         main(['cursor', 'encode', '{\"id\": 1}', '--secret', 'k'])]\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & "
        "{'sqlalchemy', 'alembic', 'asyncpg', 'aiosqlite', 'psycopg', 'psycopg2', 'pydantic_settings'})\n"
        "print('RESULT', codes, heavy, file=sys.stderr)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", runner, token], capture_output=True, text=True, timeout=60
    )
    assert "RESULT [0, 0, 2, 0] []" in result.stderr, result.stderr


def test_encode_refusals_exit_2_with_one_line() -> None:
    """Over the cap, a lone surrogate (JSON escape or undecodable argv byte), a bad fingerprint."""
    over_cap = json.dumps({"s": "x" * 5000})
    for args in (
        ("cursor", "encode", over_cap),
        ("cursor", "encode", '{"s": "\\ud800"}'),
        ("cursor", "encode", '{"\\udc80": 1}'),
        ("cursor", "encode", '{"a": 1}', "--fingerprint", "\udcff"),
    ):
        line = _one_error_line(run_qxdb(*args))
        assert "internal error" not in line
    assert "over the cap" in _one_error_line(run_qxdb("cursor", "encode", "-", input=over_cap))
    # Bytes that are not UTF-8 on the command line reach Python as lone surrogates.
    raw = subprocess.run(
        [QXDB, "cursor", "encode", b'{"s": "\xff"}'],
        capture_output=True,
        timeout=120,
    )
    assert raw.returncode == 2, raw.stderr
    assert b"surrogate" in raw.stderr and raw.stdout == b""


def test_decode_of_lone_surrogate_token_exits_2_in_both_outputs() -> None:
    for text in (rb'{"k":{"a":"\ud800"},"d":"n","t":1700000000}', rb'{"\ud800":1}'):
        body = base64.urlsafe_b64encode(text).decode().rstrip("=")
        token = f"v1.{body}" if text.startswith(b'{"k"') else body
        for extra in ((), ("--json",)):
            line = _one_error_line(run_qxdb("cursor", "decode", token, *extra))
            assert "malformed" in line and "surrogate" in line


def test_decode_prints_odd_text_as_written() -> None:
    """Markup-like, emoji and control text in a token prints; it is data, not rich markup."""
    document = {"[/]": "[bold]x[/bold]", "a": "[/]", "e": "\U0001f600", "c": "\x07x"}
    for token in (
        base64.urlsafe_b64encode(json.dumps(document).encode()).decode().rstrip("="),
        CursorCodec().encode(document, fingerprint="[/red]"),
    ):
        result = run_qxdb("cursor", "decode", token)
        assert result.returncode == 0, result.stderr
        assert "[bold]x[/bold]" in result.stdout and "[/]" in result.stdout
        assert "\U0001f600" in result.stdout
    assert "[/red]" in result.stdout
    as_json = run_qxdb("cursor", "decode", token, "--json")
    assert as_json.returncode == 0, as_json.stderr
    values = {v["field"]: v["value"] for v in json.loads(as_json.stdout)["values"]}
    assert values == document


def test_non_utf8_stdin_exits_2() -> None:
    for command in ("decode", "encode"):
        result = subprocess.run(
            [QXDB, "cursor", command, "-"], input=b"\xff\xfe{}", capture_output=True, timeout=120
        )
        assert result.returncode == 2, result.stderr
        assert result.stderr.decode().startswith("qxdb: error: ") and b"not UTF-8" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
