"""The served model, swappable while requests run.

Requests read ``holder.predictor`` once and use that object to the end, so replacing it (a new
active model file) never fails or mixes a request: the swap is a single reference assignment.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from digits.checkpoint import CheckpointError
from digits.predict import Predictor
from digits.registry import RegistryError

logger = logging.getLogger(__name__)


def _fingerprint(path: Path | None) -> tuple[int, int, int] | None:
    # The inode catches an atomic replace (write + rename) within one coarse mtime tick.
    if path is None:
        return None
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_ino, stat.st_mtime_ns, stat.st_size


class ModelHolder:
    def __init__(self, loader: Callable[[], Predictor]) -> None:
        self._loader = loader
        self._lock = threading.Lock()
        self._predictor = loader()
        self._fingerprint = _fingerprint(self._predictor.source)

    @property
    def predictor(self) -> Predictor:
        return self._predictor

    def swap(self, predictor: Predictor) -> None:
        with self._lock:
            old = self._predictor.version
            self._predictor = predictor
            self._fingerprint = _fingerprint(predictor.source)
        logger.info("model swapped", extra={"old_version": old, "new_version": predictor.version})

    def reload_if_changed(self) -> bool:
        """Load the model again when its file changed; keep serving the old one if that fails."""
        current = _fingerprint(self._predictor.source)
        if current is None or current == self._fingerprint:
            return False
        try:
            predictor = self._loader()
        except (CheckpointError, RegistryError, OSError) as exc:
            logger.error("model reload failed; still serving the previous model: %s", exc)
            self._fingerprint = current
            return False
        self.swap(predictor)
        return True
