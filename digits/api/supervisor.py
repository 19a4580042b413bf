"""A worker of `digits serve --workers N` ends when its supervisor does."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import signal

logger = logging.getLogger(__name__)

SUPERVISOR_ENV = "DIGITS_SUPERVISOR_PID"
_PR_SET_PDEATHSIG = 1


def die_with_supervisor() -> None:
    """In a worker of `digits serve --workers N`: end when the supervisor does, even when it was
    killed outright (SIGKILL, the OOM killer). uvicorn's workers would otherwise keep serving
    as orphans that nothing stops. Linux only; elsewhere a no-op."""
    supervisor = os.environ.get(SUPERVISOR_ENV)
    if supervisor is None or os.getpid() == int(supervisor):
        return
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return
    libc = ctypes.CDLL(libc_name, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        logger.warning("could not tie this worker to its supervisor's lifetime")
        return
    if os.getppid() != int(supervisor):  # it died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)
