"""``/api/sessions``: a new session, and deleting one with every prediction it made."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response

from digits.api.deps import StoreDep
from digits.api.sessions import CallerDep, SessionAuthority
from digits.db import sessions as session_rows
from digits.db.models import utcnow
from digits.schemas import SessionOut

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


@router.delete("/{session_id}", status_code=204, responses=_UNKNOWN)
def delete_session(session_id: uuid.UUID, caller: CallerDep, store: StoreDep) -> Response:
    """Delete the session's predictions; its token is refused from then on. Only the session
    itself or the admin may; anyone else gets a 404, as for an unknown session."""
    if not caller.may_act_as(session_id):
        raise HTTPException(404, f"no session with id {session_id}")
    with store.database.write() as session:
        known = session_rows.delete_session(session, session_id=session_id, now=utcnow())
    if not known:
        raise HTTPException(404, f"no session with id {session_id}")
    logger.warning("session deleted", extra={"session_id": str(session_id)})
    return Response(status_code=204)
