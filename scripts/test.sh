#!/usr/bin/env bash
# Set up (first run only), then run the whole test suite in two phases: everything but the fault
# test, then the fault test alone, because it stops the machine's PostgreSQL. PostgreSQL is
# started again whatever happens. Extra arguments go to pytest in both phases; a -m of the
# user's narrows each phase's own filter and never replaces it.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/setup.sh
source "$here/setup.sh"
cd "$repo_root"

ensure_postgres() {
    command -v pg_ctlcluster >/dev/null 2>&1 || return 0
    pg_isready -q -h 127.0.0.1 && return 0
    local version
    version="$(find /etc/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' | sort -V | tail -1)"
    echo "test.sh: starting PostgreSQL $version" >&2
    pg_ctlcluster --skip-systemctl-redirect "$version" main start \
        || echo "test.sh: could not start PostgreSQL $version" >&2
}

reports="$(mktemp -d)"
trap 'ensure_postgres; rm -rf "$reports"' EXIT

# A user's -m EXPR is taken out of the arguments and and-ed with each phase's filter, so that the
# fault test can never run in the main phase.
user_marks=""
pytest_args=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        -m | --markexpr)
            [[ $# -ge 2 ]] || { echo "test.sh: $1 needs an expression" >&2; exit 2; }
            user_marks="$2"
            shift 2
            ;;
        --markexpr=*) user_marks="${1#--markexpr=}"; shift ;;
        -m?*) user_marks="${1#-m}"; shift ;;
        *) pytest_args+=("$1"); shift ;;
    esac
done

phase_marks() {
    if [[ -n "$user_marks" ]]; then echo "$1 and ($user_marks)"; else echo "$1"; fi
}

# pytest's exit code 5 means "nothing collected". Locally that is a filter that matched nothing;
# under CI (CI=true) a phase that runs no test is a broken suite, so it fails.
run_phase() {
    local name="$1" marks="$2" rc=0
    .venv/bin/pytest --junitxml="$reports/$name.xml" --durations=10 -m "$marks" \
        ${pytest_args[@]+"${pytest_args[@]}"} || rc=$?
    if [[ $rc -eq 5 ]]; then
        if [[ "${CI:-}" == "true" ]]; then
            echo "test.sh: phase '$name' collected no test (a failure under CI)" >&2
        else
            echo "test.sh: no tests selected in phase '$name'" >&2
            rc=0
        fi
    fi
    return "$rc"
}

main_rc=0
run_phase main "$(phase_marks "not fault")" || main_rc=$?
ensure_postgres
fault_rc=0
run_phase fault "$(phase_marks fault)" || fault_rc=$?

# One closing line for the two phases together.
if .venv/bin/python - "$reports" <<'PY'
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
for report in sorted(Path(sys.argv[1]).glob("*.xml")):
    for suite in ET.parse(report).getroot().iter("testsuite"):
        for key in totals:
            totals[key] += int(suite.get(key, 0))
failed = totals["failures"] + totals["errors"]
passed = totals["tests"] - failed - totals["skipped"]
print(f"total: {passed} passed, {failed} failed, {totals['skipped']} skipped")
PY
then :; else echo "test.sh: no summary (unreadable reports)" >&2; fi

if [[ $main_rc -ne 0 || $fault_rc -ne 0 ]]; then
    echo "test.sh: FAILED (main suite exit $main_rc, fault test exit $fault_rc)" >&2
    exit 1
fi
