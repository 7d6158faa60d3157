#!/usr/bin/env bash
# Build the wheel, install it into a fresh virtual environment outside the source tree, and
# use it from an empty folder as a new user would: proves that the command, the Alembic
# templates and the shell completions ship inside the wheel, not only in the checkout.
#
#   scripts/check_wheel.sh            (KEEP=1 keeps the temporary folder for a look)
#
# Network: only the package registry, for the build backend and the dependencies (the pip
# cache is reused). Exits non-zero, naming the failed step, on any failure.
set -euo pipefail

# --- what runs after installation, in order, inside the empty folder ----------------------
# Each entry is one shell command line; extend these lists as commands land.
POST_INSTALL=(
  "qxdb --version"
  "qxdb --help"
  "qxdb cursor --help"
  # A reading command on the embedded default creates no database file: exit 3, no file.
  "code=0; qxdb doctor || code=\$?; test \$code -eq 3 && test ! -e qxdb.sqlite3"
)
# The demo, then the commands it suggests, run inside the workspace it made; the demo runs
# twice because running it again must work.
DEMO_STEPS=(
  "qxdb demo"
  "qxdb demo"
  "cd qxdb-demo && qxdb doctor"
  "cd qxdb-demo && qxdb doctor --json"
  "cd qxdb-demo && qxdb outbox stats"
  "cd qxdb-demo && qxdb outbox inspect --status pending --limit 5"
  "cd qxdb-demo && qxdb migrate current"
  "cd qxdb-demo && qxdb migrate check"
  "cd qxdb-demo && qxdb migrate lint --all"
  "cd qxdb-demo && qxdb schema check"
)
# -------------------------------------------------------------------------------------------

repo="$(cd "$(dirname "$0")/.." && pwd)"
python="${PYTHON:-python3}"
work="$(mktemp -d "${TMPDIR:-/tmp}/qxdb-wheel.XXXXXX")"
if [ "${KEEP:-0}" = 1 ]; then
  echo "check_wheel: keeping $work"
else
  trap 'rm -rf "$work"' EXIT
fi
started=$(date +%s)

fail() {
  echo "check_wheel: FAILED: $*" >&2
  exit 1
}
say() { printf 'check_wheel: %s (%ss)\n' "$1" "$(($(date +%s) - started))"; }

case "$work" in "$repo"/*) fail "the temporary folder $work is inside the source tree" ;; esac

say "building the wheel"
# Without isolation when the build backend is already at hand (fast, offline); otherwise
# the usual isolated build fetches it.
build_args=(--wheel --outdir "$work/dist")
if "$python" -c "import build, hatchling" 2>/dev/null; then build_args+=(--no-isolation); fi
"$python" -m build "${build_args[@]}" "$repo" >"$work/build.log" 2>&1 ||
  { tail -20 "$work/build.log" >&2; fail "python -m build --wheel (log above)"; }
wheels=("$work"/dist/*.whl)
[ "${#wheels[@]}" -eq 1 ] && [ -f "${wheels[0]}" ] || fail "expected exactly one wheel in $work/dist"
wheel="${wheels[0]}"
say "built $(basename "$wheel")"

say "installing it into a fresh virtual environment"
"$python" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install -q "$wheel" >"$work/install.log" 2>&1 ||
  { tail -20 "$work/install.log" >&2; fail "pip install $(basename "$wheel") (log above)"; }

# A clean environment: the fresh venv first on PATH, no project settings, no source tree.
mkdir "$work/empty"
cd "$work/empty"
run_env=(env -u PYTHONPATH -u VIRTUAL_ENV -u QX_DB__URL
  "PATH=$work/venv/bin:/usr/local/bin:/usr/bin:/bin" "NO_COLOR=1" "HOME=${HOME:-$work}")
while IFS= read -r name; do run_env+=(-u "$name"); done < <(env | sed -n 's/^\(QX_DB__[A-Z0-9_]*\)=.*/\1/p')

step() {
  local line="$1"
  echo "+ $line"
  "${run_env[@]}" bash -euo pipefail -c "$line" >"$work/step.log" 2>&1 || {
    local code=$?
    tail -20 "$work/step.log" >&2
    fail "\`$line\` exited $code in a fresh install (output above)"
  }
}

"${run_env[@]}" bash -c 'command -v qxdb' | grep -qx "$work/venv/bin/qxdb" ||
  fail "qxdb is not the freshly installed console script"

say "running the installed command from an empty folder"
for line in "${POST_INSTALL[@]}"; do step "$line"; done

say "checking the shipped resource folders"
"${run_env[@]}" python - "$repo" <<'PY' || fail "resource folders (see above)"
import sys
import sysconfig
from pathlib import Path

import qxdb
import qxdb_cli
from qxdb.resources import resource_dir

repo = Path(sys.argv[1]).resolve()
site = Path(sysconfig.get_paths()["purelib"]).resolve()
problems = []
for module in (qxdb, qxdb_cli):
    where = Path(module.__file__).resolve()
    if not where.is_relative_to(site):
        problems.append(f"{module.__name__} imported from {where}, not from {site}")
for name in ("alembic_templates", "completions"):
    folder = resource_dir(name).resolve()
    if not folder.is_relative_to(site):
        problems.append(f"resource_dir({name!r}) is {folder}, outside {site}")
        continue
    shipped = sorted(
        str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts
    )
    expected = sorted(
        str(p.relative_to(repo / name)) for p in (repo / name).rglob("*") if p.is_file() and "__pycache__" not in p.parts
    )
    if shipped != expected:
        problems.append(f"{name}: the wheel has {shipped}, the repository {expected}")
    else:
        print(f"{name}: {len(shipped)} files in {folder}")
if problems:
    sys.exit("\n".join(problems))
PY

say "running the demo and the commands it suggests"
for line in "${DEMO_STEPS[@]}"; do step "$line"; done

say "ok: the wheel works on a fresh install"
