"""``--help`` must not pay for SQLAlchemy, Alembic or a driver: startup stays close to Typer.

Each case runs in a fresh interpreter (imports are process-wide), calls the command's own
``main(argv)`` and then lists every module that got imported. The lazy command tree and the
pydantic-free coercion of plain options (:mod:`qxdb_cli.lazy`) must not change what any
command shows or does: the tests at the end compare them with Typer's own behaviour.
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Any

import pytest
import typer

from qxdb_cli.lazy import LazyTyperGroup, plain_coercion

# rich too: command modules import it inside the commands, and help is plain Click
# (qxdb_cli.main sets rich_markup_mode=None), so help never needs it. pydantic: Typer's
# coercion would import it for any option (qxdb_cli.lazy passes plain values through).
HEAVY = ("sqlalchemy", "alembic", "asyncpg", "aiosqlite", "nats", "rich", "pydantic")
# A cursor with {"id": 42}, unsigned.
TOKEN = "v1.eyJrIjp7ImlkIjo0Mn0sImQiOiJuIiwidCI6MTcwMDAwMDAwMH0"

_PROBE = """
import contextlib, io, json, sys
from qxdb_cli.main import main
with contextlib.redirect_stdout(io.StringIO()) as shown:
    code = main(json.loads(sys.argv[1]))
print(json.dumps({"code": code, "help": shown.getvalue(), "modules": sorted(sys.modules)}))
"""


def _modules_after(
    argv: list[str], cwd: Path | None = None, env: dict[str, str] | None = None
) -> tuple[str, set[str]]:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(argv)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        env={"NO_COLOR": "1", "PATH": "/usr/bin:/bin", **(env or {})},
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["code"] == 0, result
    return result["help"], set(result["modules"])


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["migrate", "--help"],
        ["outbox", "--help"],
        ["schema", "--help"],
        ["cursor", "--help"],
    ],
    ids=lambda argv: " ".join(argv),
)
def test_help_imports_no_database_stack(argv: list[str]) -> None:
    shown, modules = _modules_after(argv)
    assert "Usage: qxdb" in shown
    heavy = sorted(m for m in modules if m.split(".")[0] in HEAVY)
    assert heavy == [], f"qxdb {' '.join(argv)} imported {heavy}"


@pytest.mark.parametrize(
    ("argv", "allowed"),
    [
        (["cursor", "decode", "--json", TOKEN], ()),
        (["cursor", "decode", "--allow-unsigned", "--secret", "s3cret", "--json", TOKEN], ()),
        (["cursor", "decode", TOKEN], ("rich",)),  # the human tables are Rich's
        (["cursor", "encode", '{"id": 42}'], ()),
        (["--database-url", "sqlite+aiosqlite:///x.db", "cursor", "encode", '{"id": 1}'], ()),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else ",".join(v),
)
def test_cursor_commands_import_no_database_stack_nor_pydantic(
    argv: list[str], allowed: tuple[str, ...]
) -> None:
    shown, modules = _modules_after(argv)
    assert "42" in shown or "v1." in shown
    heavy = sorted(m for m in modules if m.split(".")[0] in set(HEAVY) - set(allowed))
    assert heavy == [], f"qxdb {' '.join(argv)} imported {heavy}"


def test_help_imports_only_the_module_of_the_command_shown() -> None:
    _, modules = _modules_after(["--help"])
    assert not {m for m in modules if m.startswith("qxdb_cli.") and m != "qxdb_cli.main"} - {
        "qxdb_cli.errors",
        "qxdb_cli.state",
        "qxdb_cli.lazy",
        "qxdb_cli._click_compat",
        # shared options, Ctrl-C accounting and output helpers: standard library + Typer
        "qxdb_cli.common",
        "qxdb_cli.render",
    }
    _, modules = _modules_after(["outbox", "--help"])
    assert "qxdb_cli.outbox" in modules
    assert not {"qxdb_cli.migrate", "qxdb_cli.schema", "qxdb_cli.cursor"} & modules


def test_the_probe_sees_heavy_imports_when_they_happen(tmp_path: Path) -> None:
    # A command that does touch the (embedded) database must show up, or the test above
    # could never fail.
    (tmp_path / "qxdb.sqlite3").touch()  # reading commands never create the file
    _, modules = _modules_after(["doctor", "--json"], cwd=tmp_path)
    assert {"sqlalchemy", "aiosqlite"} <= modules


# -- the lazy tree and the coercion change nothing a user sees ---------------------------


def _root() -> Any:
    from qxdb_cli.main import app

    return typer.main.get_command(app)


def test_each_lazy_summary_is_the_first_paragraph_of_the_real_help() -> None:
    root = _root()
    assert isinstance(root, LazyTyperGroup)
    assert [e.name for e in root.lazy] == root.list_commands(typer.Context(root))[: len(root.lazy)]
    for entry in root.lazy:
        real = root.get_command(typer.Context(root), entry.name)
        assert real is not None
        first_paragraph = (real.help or "").split("\n\n", 1)[0]
        assert entry.summary == " ".join(first_paragraph.split()), entry.name


def _help(root: Any, width: int) -> str:
    ctx = typer.Context(root, info_name="qxdb", terminal_width=width, max_content_width=width)
    return str(root.get_help(ctx))


@pytest.mark.parametrize("width", [40, 80, 200])
def test_root_help_lists_the_same_text_as_the_built_commands(width: int) -> None:
    lazy = _root()
    built = _root()
    for name in built.list_commands(typer.Context(built)):
        built.get_command(typer.Context(built), name)  # every placeholder replaced
    assert _help(lazy, width) == _help(built, width)
    assert "outbox" in _help(lazy, width)


def _tiny_app() -> typer.Typer:
    app = typer.Typer(add_completion=False)

    @app.command()
    def run(
        name: Annotated[str, typer.Option("--name", envvar="TINY_NAME")] = "x",
        loud: Annotated[bool, typer.Option("--loud", envvar="TINY_LOUD")] = False,
        count: Annotated[int, typer.Option("--count")] = 1,
    ) -> None:
        typer.echo(f"{name!r} {loud!r} {count!r}")

    return app


@pytest.mark.parametrize(
    ("args", "env"),
    [
        ([], {}),
        (["--name", "élan"], {}),
        (["--name", ""], {}),
        (["--loud", "--count", "3"], {}),
        (["--count", "three"], {}),  # not ours: Typer's own error
        ([], {"TINY_LOUD": "yes"}),  # a bool from text: Typer's adapter decides
        ([], {"TINY_LOUD": "maybe"}),
        ([], {"TINY_NAME": "from-env"}),
        (["--name"], {}),
    ],
)
def test_plain_coercion_gives_what_typer_gives(
    args: list[str], env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    outcomes = [_outcome(_tiny_app(), args, plain=True), _outcome(_tiny_app(), args, plain=False)]
    assert outcomes[0] == outcomes[1]
    assert outcomes[0][0] in (0, 2)


def _outcome(app: typer.Typer, args: list[str], *, plain: bool) -> tuple[Any, str, str]:
    """Exit code, stdout and stderr of a run as the installed command would make it."""
    command = typer.main.get_command(app)
    if plain:
        plain_coercion(command)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            command.main(args, prog_name="tiny")
            code: Any = 0
        except SystemExit as exc:
            code = exc.code
    return code, out.getvalue(), err.getvalue()


def test_text_that_is_not_valid_unicode_goes_to_typers_coercion() -> None:
    # argv bytes that are not UTF-8 arrive as lone surrogates; Typer's adapter owns them.
    bad = b"caf\xe9".decode("utf-8", "surrogateescape")
    ours = _outcome(_tiny_app(), ["--name", bad], plain=True)
    assert ours == _outcome(_tiny_app(), ["--name", bad], plain=False)
