"""The served model, swappable while requests run.

Requests read ``holder.predictor`` once and use that object to the end, so replacing it (a
promotion) never fails or mixes a request: the swap is a single reference assignment.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Hashable
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from digits.checkpoint import CheckpointError
from digits.config import Settings
from digits.db.session import is_connection_error
from digits.loop.registry import Registry, RegistryError
from digits.predict import Predictor

logger = logging.getLogger(__name__)

# What identifies the model that should be served now; a change means load it again.
Token = Callable[[], Hashable | None]


def _fingerprint(path: Path) -> tuple[int, int, int] | None:
    # The inode catches an atomic replace (write + rename) within one coarse mtime tick.
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_ino, stat.st_mtime_ns, stat.st_size


def serving(settings: Settings, registry: Registry) -> tuple[Callable[[], Predictor], Token]:
    """How to load the model to serve, and how to notice it changed: ``DIGITS_MODEL_PATH``'s
    file, else the registry's active version, read from the database by every replica."""
    threshold = settings.uncertain_threshold
    pinned = settings.model_path
    if pinned is not None:
        return (
            lambda: Predictor.from_checkpoint(pinned, uncertain_threshold=threshold),
            lambda: _fingerprint(pinned),
        )

    def load() -> Predictor:
        try:
            return Predictor(
                registry.load_active(),
                uncertain_threshold=threshold,
                not_a_digit_threshold=settings.not_a_digit_threshold,
            )
        except SQLAlchemyError as exc:
            if not is_connection_error(exc):
                raise
            # Predictions keep being answered (and spooled) while the database is away; the
            # token stays unknown meanwhile, so the active model is loaded once it is back.
            logger.warning("database unreachable; serving the shipped weights for now")
            return Predictor.from_checkpoint(registry.shipped, uncertain_threshold=threshold)

    return load, registry.active_version


class ModelHolder:
    def __init__(self, loader: Callable[[], Predictor], token: Token | None = None) -> None:
        self._loader = loader
        self._token = token
        self._lock = threading.Lock()
        self._seen = self._current()
        self._predictor = loader()

    def _current(self) -> Hashable | None:
        if self._token is None:
            return None
        try:
            return self._token()
        except SQLAlchemyError as exc:  # the database is away: keep serving what we have
            logger.warning("could not check the active model: %s", exc)
            return None

    @property
    def predictor(self) -> Predictor:
        return self._predictor

    def swap(self, predictor: Predictor) -> None:
        with self._lock:
            old = self._predictor.version
            self._predictor = predictor
        logger.info("model swapped", extra={"old_version": old, "new_version": predictor.version})

    def reload_if_changed(self) -> bool:
        """Load the model again when the active one changed; keep serving the old one if
        that fails."""
        current = self._current()
        if current is None or current == self._seen:
            return False
        self._seen = current
        try:
            predictor = self._loader()
        except (CheckpointError, RegistryError, SQLAlchemyError, OSError) as exc:
            logger.error("model reload failed; still serving the previous model: %s", exc)
            return False
        self.swap(predictor)
        return True
