"""One typed settings object for every process (CLI, API, UI), read from ``DIGITS_*``."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from digits.decode import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS, InputLimits

PACKAGE_DIR = Path(__file__).resolve().parent
SHIPPED_WEIGHTS = PACKAGE_DIR / "weights" / "model.pt"

# The drawing canvas, in its own pixels: the UI's, and the one synthetic drawings imitate.
CANVAS_SIZE = 280
BRUSH_RANGE = (8, 40)  # the thinnest and thickest brush a person can pick
DEFAULT_BRUSH = 18  # the brush the canvas starts with, and the synthetic drawings' default

# Below this calibrated confidence an answer is reported as "uncertain" (with its best guess).
DEFAULT_UNCERTAIN_THRESHOLD = 0.6
# Production refuses shorter secrets: 32 characters of `openssl rand -hex 16` carry 128 bits.
MIN_SECRET_CHARS = 32
_DEFAULT_SECRETS = {"changeme", "admin", "secret", "password", "postgres", ""}
# A written number with more pieces than this is refused (digits.numbers; a 422 in the API).
DEFAULT_MAX_NUMBER_DIGITS = 12


class InsecureSettingsError(RuntimeError):
    """Production mode was asked for with a default or missing secret."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DIGITS_", env_file=None, extra="ignore")

    env: Literal["development", "test", "production"] = "development"
    data_dir: Path = Path("var")
    database_url: str | None = None  # None: SQLite file in data_dir
    db_wait_s: float = Field(default=60.0, ge=0.0)  # how long `digits serve` waits for it
    mnist_dir: Path | None = None  # a local folder with the four canonical .gz files
    retrain_after: int | None = None  # queue a retraining (for `digits trainer`) after N new labels
    # Sessions with fewer labelled rows share one capped pool with anonymous rows, never evidence.
    retrain_min_session: int = Field(default=10, ge=1)
    retrain_folds: int = Field(default=5, ge=2)  # the promotion gate's cross-validation folds
    cache_dir: Path | None = None  # where downloads go; default data_dir/mnist
    model_path: Path | None = None  # None: the active registry model, else the shipped weights
    uncertain_threshold: float = Field(default=DEFAULT_UNCERTAIN_THRESHOLD, ge=0.0, le=1.0)
    # None: the threshold fitted on `validation` writers and stored in the checkpoint.
    not_a_digit_threshold: float | None = Field(default=None, ge=0.0, le=1.0)
    max_number_digits: int = Field(default=DEFAULT_MAX_NUMBER_DIGITS, ge=1)

    max_body_bytes: int = DEFAULT_MAX_BYTES
    max_pixels: int = DEFAULT_MAX_PIXELS
    stored_image_max_side: int = 560

    api_url: str = "http://127.0.0.1:8000"
    api_timeout_s: float = 10.0
    host: str = "127.0.0.1"
    port: int = 8000
    ui_port: int = 8501
    # Two worker processes: on a small machine one process cannot keep two cores busy (the event
    # loop and the prediction thread share one interpreter lock); compose uses the same default.
    workers: int = 2

    cors_origins: list[str] = Field(default_factory=list)
    trusted_hosts: list[str] = Field(default_factory=lambda: ["*"])
    admin_token: str | None = None
    database_password: str | None = None
    # Signs session tokens; every worker and replica must share it. Unset outside production:
    # a random key kept in data_dir/secret_key.
    secret_key: str | None = None
    session_ttl_days: int = Field(default=30, ge=1)  # a session unused this long expires
    rate_limit: int = Field(default=120, ge=0)  # writes per minute per session or address; 0: off
    # Proxies whose X-Forwarded-For names the client (JSON list of CIDRs).
    trusted_proxies: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = Field(
        default_factory=list
    )
    retention_days: int | None = None  # drop stored drawings after N days, keep inputs/labels
    # Session memory (digits.memory): a session's labelled drawings adapt its later answers;
    # the last session_memory_size of them count.
    session_memory: bool = True
    session_memory_size: int = Field(default=200, ge=1)
    spool_dir: Path | None = None  # default data_dir/spool
    log_level: str = "INFO"
    log_json: bool = True

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _networks(cls, value: object) -> object:
        if isinstance(value, list):
            return [ipaddress.ip_network(str(item), strict=False) for item in value]
        return value

    @model_validator(mode="after")
    def _enforce_production_secrets(self) -> Settings:
        if self.env != "production":
            return self
        problems = []
        for name, value in (("ADMIN_TOKEN", self.admin_token), ("SECRET_KEY", self.secret_key)):
            if not value or value.lower() in _DEFAULT_SECRETS or len(value) < MIN_SECRET_CHARS:
                problems.append(
                    f"DIGITS_{name} must be a secret of at least {MIN_SECRET_CHARS} characters"
                )
        if self.database_url is None or self.database_url.startswith("sqlite"):
            problems.append("DIGITS_DATABASE_URL must name a server database")
        else:
            in_url = urlsplit(self.database_url).password  # no SQLAlchemy: the UI reads this too
            given = {unquote(in_url or ""), self.database_password or ""} - {""}
            if not given or given & _DEFAULT_SECRETS:
                problems.append("the database password must be set and not a default")
        if problems:
            raise InsecureSettingsError("refusing to start in production: " + "; ".join(problems))
        return self

    @property
    def input_limits(self) -> InputLimits:
        return InputLimits(max_bytes=self.max_body_bytes, max_pixels=self.max_pixels)

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'digits.sqlite3').resolve()}"

    @property
    def resolved_cache_dir(self) -> Path:
        return self.cache_dir or self.data_dir / "mnist"

    @property
    def resolved_spool_dir(self) -> Path:
        return self.spool_dir or self.data_dir / "spool"

    def resolved_secret_key(self) -> bytes:
        """DIGITS_SECRET_KEY, else a random key made once in data_dir (so every worker of one
        `digits serve` shares it, and tokens survive a restart)."""
        if self.secret_key:
            return self.secret_key.encode()
        path = self.data_dir / "secret_key"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            draft = path.with_name(f"secret_key.{os.getpid()}")
            draft.write_text(secrets.token_hex(32))
            draft.chmod(0o600)
            # A hard link appears whole or not at all: the first process to link wins.
            with contextlib.suppress(FileExistsError):
                os.link(draft, path)
            draft.unlink()
        return path.read_bytes().strip()


@lru_cache
def get_settings() -> Settings:
    return Settings()
