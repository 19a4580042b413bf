"""The two commands and .ci/run: lint-clean, in the README, and test.sh's phases and exit codes
(driven with a stand-in pytest in a scratch copy of the repository)."""

from __future__ import annotations

import hashlib
import platform
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from ops_support import REPO_ROOT, require

SCRIPTS = [
    REPO_ROOT / "scripts" / name for name in ("setup.sh", "run.sh", "test.sh", "test-containers.sh")
]
CI_RUN = REPO_ROOT / ".ci" / "run"
RUN_COMMAND = "./scripts/run.sh"
TEST_COMMAND = "./scripts/test.sh"

# Records the arguments test.sh passes through (not its own --junitxml/--durations), one call
# per line, writes a JUnit report of 3 tests (1 skipped, 1 failed if it fails), and exits with
# the code the test asked for.
FAKE_PYTEST = """#!/usr/bin/env bash
args=()
for arg in "$@"; do
    case "$arg" in
        --junitxml=*) report="${arg#--junitxml=}" ;;
        --durations=*) ;;
        *) args+=("$arg") ;;
    esac
done
set -- "${args[@]}"
echo "$*" >> "$CALLS"
if [[ "$*" == *"not fault"* ]]; then rc="${MAIN_RC:-0}"; else rc="${FAULT_RC:-0}"; fi
failures=$(( rc == 1 ? 1 : 0 ))
echo "<testsuites><testsuite tests='3' failures='$failures' errors='0' skipped='1'/></testsuites>" \
    > "$report"
exit "$rc"
"""


def test_shell_scripts_pass_shellcheck() -> None:
    binary = shutil.which("shellcheck")
    require(binary is not None, "shellcheck is not installed (apt-get install shellcheck)")
    assert binary is not None
    result = subprocess.run(
        [binary, "-x", *map(str, SCRIPTS), str(CI_RUN)],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stdout


def test_readme_opens_with_the_two_commands_and_ci_runs_the_test_one() -> None:
    head = "\n".join((REPO_ROOT / "README.md").read_text().splitlines()[:20])
    assert RUN_COMMAND in head and TEST_COMMAND in head
    lines = CI_RUN.read_text().splitlines()
    # The container checks run on every CI run, after the test suite, whatever it gave.
    tests = lines.index(f"{TEST_COMMAND} || rc=1")
    assert lines[tests + 1] == "./scripts/test-containers.sh || rc=1"


@pytest.fixture
def scratch_repo(tmp_path: Path) -> Path:
    """scripts/ and pyproject.toml beside a .venv whose install stamp is current."""
    shutil.copytree(REPO_ROOT / "scripts", tmp_path / "scripts")
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[project]\nname = "scratch"\n')
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "python").symlink_to(sys.executable)
    executables = {"digits": "#!/usr/bin/env bash\n", "pytest": FAKE_PYTEST}
    for name, text in executables.items():
        path = bin_dir / name
        path.write_text(text)
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    digest = hashlib.sha256(pyproject.read_bytes()).hexdigest()
    version = f"Python {platform.python_version()}"
    (tmp_path / ".venv" / ".digits-install-stamp").write_text(f"{digest} {version}\n")
    return tmp_path


def run_test_sh(repo: Path, *args: str, **codes: str) -> tuple[int, list[str], str]:
    calls = repo / "calls.txt"
    env = {"PATH": "/usr/bin:/bin", "CALLS": str(calls), **codes}
    result = subprocess.run(
        ["bash", str(repo / "scripts" / "test.sh"), *(args or ("-q",))],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return result.returncode, calls.read_text().splitlines(), result.stdout


def test_test_sh_runs_the_suite_then_the_fault_test_alone(scratch_repo: Path) -> None:
    rc, calls, stdout = run_test_sh(scratch_repo)
    assert rc == 0
    assert calls == ["-m not fault -q", "-m fault -q"]
    # One closing line that counts both phases.
    assert stdout.splitlines()[-1] == "total: 4 passed, 0 failed, 2 skipped"


def test_test_sh_treats_nothing_collected_as_success_outside_ci(scratch_repo: Path) -> None:
    rc, _, _ = run_test_sh(scratch_repo, FAULT_RC="5")
    assert rc == 0


@pytest.mark.parametrize(("main_rc", "fault_rc"), [("5", "0"), ("0", "5")])
def test_test_sh_fails_under_ci_when_a_phase_collects_nothing(
    scratch_repo: Path, main_rc: str, fault_rc: str
) -> None:
    rc, calls, _ = run_test_sh(scratch_repo, MAIN_RC=main_rc, FAULT_RC=fault_rc, CI="true")
    assert rc == 1
    assert len(calls) == 2


@pytest.mark.parametrize(
    "user_filter", [("-m", "slow"), ("-mslow",), ("--markexpr", "slow"), ("--markexpr=slow",)]
)
def test_a_users_marker_filter_narrows_each_phase_and_never_replaces_it(
    scratch_repo: Path, user_filter: tuple[str, ...]
) -> None:
    rc, calls, _ = run_test_sh(scratch_repo, *user_filter, "-q")
    assert rc == 0
    assert calls == ["-m not fault and (slow) -q", "-m fault and (slow) -q"]


@pytest.mark.parametrize(("main_rc", "fault_rc"), [("1", "0"), ("0", "1"), ("2", "5")])
def test_test_sh_fails_when_either_phase_fails(
    scratch_repo: Path, main_rc: str, fault_rc: str
) -> None:
    rc, calls, stdout = run_test_sh(scratch_repo, MAIN_RC=main_rc, FAULT_RC=fault_rc)
    assert rc == 1
    assert len(calls) == 2, "the fault phase runs even after a failing main phase"
    if "1" in (main_rc, fault_rc):
        assert stdout.splitlines()[-1] == "total: 3 passed, 1 failed, 2 skipped"
