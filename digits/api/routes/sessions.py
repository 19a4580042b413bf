"""``/api/sessions``: a new session, and deleting one with every prediction it made."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response

from digits.api.deps import MemoryDep, PredictorDep, StoreDep
from digits.api.sessions import CallerDep, OwnSessionDep, SessionAuthority
from digits.db import sessions as session_rows
from digits.db.models import utcnow
from digits.memory import store as memory_store
from digits.schemas import SessionOut, SessionSummary

router = APIRouter(prefix="/api/sessions", tags=["sessions"])
logger = logging.getLogger(__name__)
_UNKNOWN: dict[int | str, dict[str, Any]] = {
    401: {"description": "No X-Session-Token (or admin token), or an unknown, expired one"},
    403: {"description": "A wrong admin token"},
    404: {"description": "Unknown, or not the caller's"},
}


@router.post("", status_code=201, response_model=SessionOut)
async def create_session(request: Request) -> SessionOut:
    """A new session: send ``session_token`` as the ``X-Session-Token`` header."""
    authority: SessionAuthority = request.app.state.sessions
    session_id, token = authority.issue()
    return SessionOut(session_id=session_id, session_token=token)


@router.get(
    "/me",
    response_model=SessionSummary,
    responses={
        401: {"description": "No X-Session-Token, or an unknown, expired or deleted one"},
        503: {"description": "The database is unavailable"},
    },
)
def get_own_session(
    session_id: OwnSessionDep, store: StoreDep, memory: MemoryDep, predictor: PredictorDep
) -> SessionSummary:
    """The caller's session: how many drawings it sent and labelled, and how many of them its
    memory learns from for the model served now."""
    with store.database.read() as session:
        drawings, labelled = session_rows.activity(session, session_id=session_id)
        learned_from = memory.learned_from(session, session_id, predictor.version)
    return SessionSummary(
        session_id=session_id, drawings=drawings, labelled=labelled, learned_from=learned_from
    )


# :uuid so that DELETE /api/sessions/me is a 405, not this route.
@router.delete("/{session_id:uuid}", status_code=204, responses=_UNKNOWN)
def delete_session(
    session_id: uuid.UUID, caller: CallerDep, store: StoreDep, memory: MemoryDep
) -> Response:
    """Delete the session's predictions and forget its memory; its token is refused from then
    on. Only the session itself or the admin may; anyone else gets a 404, as for an unknown
    session."""
    if not caller.may_act_as(session_id):
        raise HTTPException(404, f"no session with id {session_id}")
    with store.database.write() as session:
        memory_store.forget(session, session_id=session_id)  # the cascade would, made explicit
        known = session_rows.delete_session(session, session_id=session_id, now=utcnow())
    if not known:
        raise HTTPException(404, f"no session with id {session_id}")
    memory.forget(session_id)  # this worker's copy; other workers' are never read again
    logger.warning("session deleted", extra={"session_id": str(session_id)})
    return Response(status_code=204)
