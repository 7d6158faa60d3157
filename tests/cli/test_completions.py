"""Shipped completions: current with the app, working in each shell, and Typer's own kept.

The static scripts are run in the real shells (bash always; zsh and fish where installed).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.cli.cli_scripts import REPO, load_script, root_with_extra_command, run_script
from tests.cli.conftest import QXDB

SHIPPED = REPO / "completions"
SHELLS = ("bash", "zsh", "fish")


def test_shipped_completions_match_the_app() -> None:
    code, _, stderr = run_script("gen_completions.py", "--check")
    assert code == 0, stderr


def test_the_installed_package_finds_them() -> None:
    from qxdb.resources import resource_dir

    folder = resource_dir("completions")
    for shell in SHELLS:
        assert (folder / f"qxdb.{shell}").read_text() == (SHIPPED / f"qxdb.{shell}").read_text()


def test_check_names_the_stale_file(tmp_path: Path) -> None:
    for shell in SHELLS:
        shutil.copy(SHIPPED / f"qxdb.{shell}", tmp_path)
    zsh = tmp_path / "qxdb.zsh"
    zsh.write_text(zsh.read_text().replace("doctor", "doktor"))
    code, _, stderr = run_script("gen_completions.py", "--check", "--out", str(tmp_path))
    assert code == 1
    assert "qxdb.zsh is stale" in stderr
    assert "qxdb.bash" not in stderr
    assert "gen_completions.py" in stderr
    assert zsh.read_text().count("doktor") > 0  # --check writes nothing


def test_a_new_command_makes_every_file_stale() -> None:
    gen = load_script("gen_completions")
    tree = load_script("cli_tree").build_tree(root_with_extra_command())
    expected = gen.render_all(tree, SHIPPED)
    assert sorted(p.name for p in load_script("generated_files").stale_files(expected)) == [
        "qxdb.bash",
        "qxdb.fish",
        "qxdb.zsh",
    ]
    for text in expected.values():
        assert "load" in text and "--into" in text


def test_generation_is_deterministic(tmp_path: Path) -> None:
    # Different hash seeds reorder sets: the files must not change with them.
    for seed in ("1", "2"):
        code, _, stderr = run_script(
            "gen_completions.py", "--out", str(tmp_path / seed), hash_seed=seed
        )
        assert code == 0, stderr
    for shell in SHELLS:
        first = (tmp_path / "1" / f"qxdb.{shell}").read_text()
        assert first == (tmp_path / "2" / f"qxdb.{shell}").read_text()


# --- the scripts in the real shells ----------------------------------------------------------

_BASH = """
source "$1"
read -ra COMP_WORDS <<< "$2"
[[ $2 == *" " ]] && COMP_WORDS+=("")
COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
__qxdb_completion
printf '%s\\n' "${COMPREPLY[@]}"
"""

# compsys needs a terminal; these stand-ins print what the script asks it to offer, and
# the prefix filter compsys would apply.
_ZSH = """
_qxdb_offer() { local w; for w in "$@"; do [[ $w == ${words[CURRENT]}* ]] && print -r -- $w; done; return 0 }
_describe() { local -a items; items=("${(@P)4}"); _qxdb_offer "${(@)items%%:*}"; }
compadd() { shift; _qxdb_offer "$@"; }
_files() { local -a found; if [[ $1 == -/ ]]; then found=(*(/)); else found=(*); fi; _qxdb_offer $found; }
_message() { :; }
compdef() { :; }
source "$1"
words=(${(z)2})
[[ $2 == *" " ]] && words+=("")
CURRENT=${#words}
_qxdb
return 0
"""

_FISH = "source $argv[1]; complete -C $argv[2]"


def _complete(shell: str, script: Path, line: str, cwd: Path) -> list[str]:
    argv = {
        "bash": ["bash", "--norc", "--noprofile", "-c", _BASH, "bash"],
        "zsh": ["zsh", "-f", "-c", _ZSH, "zsh"],
        "fish": ["fish", "--no-config", "-c", _FISH],
    }[shell]
    done = subprocess.run(
        [*argv, str(script), line], cwd=cwd, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    return sorted(filter(None, (row.split("\t")[0] for row in done.stdout.splitlines())))


def _shell(shell: str) -> str:
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} is not installed")
    return shell


CASES: list[tuple[str, Callable[[list[str]], bool]]] = [
    ("qxdb ", lambda got: {"doctor", "migrate", "outbox", "cursor", "schema"} <= set(got)),
    ("qxdb out", lambda got: got == ["outbox"]),
    ("qxdb outbox ", lambda got: "relay" in got and "doctor" not in got),
    ("qxdb --database-url sqlite+aiosqlite:///x.db out", lambda got: got == ["outbox"]),
    ("qxdb --database-url ", lambda got: got == []),
    (
        "qxdb doctor --",
        lambda got: {"--help", "--json"} <= set(got) and all(g.startswith("--") for g in got),
    ),
]


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize(("line", "expect"), CASES, ids=[line for line, _ in CASES])
def test_shipped_script_completes(
    shell: str, line: str, expect: Callable[[list[str]], bool], tmp_path: Path
) -> None:
    got = _complete(_shell(shell), SHIPPED / f"qxdb.{shell}", line, tmp_path)
    assert expect(got), got


VALUE_CASES = [
    ("qxdb lo", ["load"]),
    ("qxdb load --format ", ["csv", "json"]),
    ("qxdb load --into ", ["sub"]),  # folders only
    ("qxdb load ", ["rows.csv", "sub"]),  # the file argument
    ("qxdb load --format csv --into sub r", ["rows.csv"]),
    ("qxdb load --q", ["--quiet"]),
]


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize(("line", "expected"), VALUE_CASES, ids=[c[0] for c in VALUE_CASES])
def test_choices_files_and_folders(
    shell: str, line: str, expected: list[str], tmp_path: Path
) -> None:
    _shell(shell)
    tree = load_script("cli_tree").build_tree(root_with_extra_command())
    rendered = load_script("gen_completions").render_all(tree, tmp_path / "completions")
    script = tmp_path / f"qxdb.{shell}"
    script.write_text(rendered[tmp_path / "completions" / f"qxdb.{shell}"])
    work = tmp_path / "work"
    (work / "sub").mkdir(parents=True)
    (work / "rows.csv").write_text("a\n")
    got = [g.rstrip("/") for g in _complete(shell, script, line, work)]
    assert got == expected


# --- Typer's dynamic completion keeps working -------------------------------------------------


def _env(home: Path, **extra: str) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if k in {"PATH", "LANG", "LC_ALL"}}
    return {**keep, "HOME": str(home), "NO_COLOR": "1", **extra}


def test_show_completion_detects_bash(tmp_path: Path) -> None:
    # A real bash parent, as in a terminal ("; :" keeps bash from exec-ing qxdb directly).
    done = subprocess.run(
        ["bash", "--norc", "-c", f'"{QXDB}" --show-completion; :'],
        env=_env(tmp_path, SHELL="/bin/bash"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "complete -o default -F _qxdb_completion qxdb" in done.stdout
    assert list(tmp_path.iterdir()) == []  # showing installs nothing


def test_install_completion_writes_into_home_and_completes(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = _env(home, _TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION="1")
    done = subprocess.run(
        [QXDB, "--install-completion", "bash"], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    installed = home / ".bash_completions" / "qxdb.sh"
    assert f"source '{installed}'" in (home / ".bashrc").read_text()
    # The installed script asks the installed command; it must answer.
    program = (
        f'source "{installed}"; COMP_WORDS=(qxdb outbox ""); COMP_CWORD=2; '
        '_qxdb_completion qxdb; printf "%s\\n" "${COMPREPLY[@]}"'
    )
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    answered = subprocess.run(
        ["bash", "--norc", "-c", program], env=env, capture_output=True, text=True, timeout=60
    )
    assert answered.returncode == 0, answered.stderr
    assert "relay" in answered.stdout.split()
