#!/usr/bin/env bash
# Create .venv (Python 3.11) and install the project into it; skip the install when
# pyproject.toml has not changed since the last one. Sourced by run.sh and test.sh.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$repo_root/.venv"
stamp="$venv/.digits-install-stamp"

find_python() {
    local candidate
    for candidate in "${PYTHON:-}" python3.11 python3; do
        [[ -n "$candidate" ]] || continue
        if command -v "$candidate" >/dev/null 2>&1 \
            && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] < (3, 11))'; then
            echo "$candidate"
            return 0
        fi
    done
    echo "setup: Python 3.11 or newer is required (set PYTHON=/path/to/python3.11)" >&2
    return 1
}

# A .venv whose creation was cut short (Ctrl-C, a killed job) has no pip; nothing was
# installed into it yet (no stamp), so it is made again rather than failing every run.
if [[ -x "$venv/bin/python" && ! -f "$stamp" ]] \
    && ! "$venv/bin/python" -m pip --version >/dev/null 2>&1; then
    echo "setup: $venv is incomplete (no pip); creating it again" >&2
    rm -rf "$venv"
fi
if [[ ! -x "$venv/bin/python" ]]; then
    python="$(find_python)"
    echo "setup: creating $venv with $python" >&2
    "$python" -m venv "$venv"
fi

# The stamp holds what the installed environment was built from; anything else re-installs.
wanted="$(sha256sum < "$repo_root/pyproject.toml" | cut -d' ' -f1) $("$venv/bin/python" -V 2>&1)"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$wanted" && -x "$venv/bin/digits" ]]; then
    echo "setup: .venv is up to date" >&2
else
    echo "setup: installing the project into $venv (first run takes a few minutes)" >&2
    # torch first and pinned: pip then takes the CPU build (a local wheel where the machine has
    # one) instead of resolving torch as a dependency, which can pull a multi-GB CUDA build.
    "$venv/bin/python" -m pip install --quiet "torch==2.13.0"
    "$venv/bin/python" -m pip install --quiet -e "${repo_root}[train,dev]"
    echo "$wanted" > "$stamp"
fi
