"""docs/cli.md follows the app, and every command documents itself with help and an example."""

from __future__ import annotations

from pathlib import Path

import typer

from tests.cli.cli_scripts import REPO, load_script, root_with_extra_command, run_script

DOCS = REPO / "docs" / "cli.md"


def test_cli_reference_matches_the_app() -> None:
    code, _, stderr = run_script("gen_cli_docs.py", "--check")
    assert code == 0, stderr


def test_check_names_the_stale_file(tmp_path: Path) -> None:
    stale = tmp_path / "cli.md"
    stale.write_text(DOCS.read_text().replace("doctor", "doktor"))
    code, _, stderr = run_script("gen_cli_docs.py", "--check", "--out", str(stale))
    assert code == 1
    assert f"{stale} is stale" in stderr
    assert "doktor" in stale.read_text()  # --check writes nothing


def test_a_new_command_makes_the_reference_stale() -> None:
    gen = load_script("gen_cli_docs")
    text = gen.render(load_script("cli_tree").build_tree(root_with_extra_command()))
    assert text != DOCS.read_text()
    section = text[text.index("### `qxdb load`") :]
    for expected in (
        "Load rows from a file",
        "Usage: qxdb load [OPTIONS]",
        "`--into <dir>`: Folder to write to.",
        "`--format <json|csv>`: Input format.",
        "`-q, --quiet`: Say nothing.",
        "qxdb load rows.csv --format csv --into out",
    ):
        assert expected in section


def test_every_command_has_help_and_an_example() -> None:
    found = load_script("gen_cli_docs").problems(load_script("cli_tree").build_tree())
    assert found == [], "commands to document:\n" + "\n".join(found)


def test_the_documentation_check_finds_each_gap() -> None:
    app = typer.Typer(help="Root.")

    @app.command()
    def silent() -> None:
        pass

    @app.command()
    def unexampled() -> None:
        """Does things."""

    @app.command()
    def misspelt() -> None:
        """Does things.

        Example: qxdb misspelt --nope
        """

    @app.command()
    def elsewhere() -> None:
        """Does things.

        Example: qxdb silent
        """

    @app.command()
    def good(as_json: bool = typer.Option(False, "--json")) -> None:
        """Does things well.

        Example: qxdb good --json
        """

    tree = load_script("cli_tree").build_tree(typer.main.get_command(app))
    assert load_script("gen_cli_docs").problems(tree) == [
        "qxdb silent: no help text",
        "qxdb silent: no 'Example: qxdb ...' line in its docstring",
        "qxdb unexampled: no 'Example: qxdb ...' line in its docstring",
        "qxdb misspelt: example 'qxdb misspelt --nope': `qxdb misspelt` has no option --nope",
        "qxdb elsewhere: example 'qxdb silent' runs `qxdb silent`, not `qxdb elsewhere`",
    ]
