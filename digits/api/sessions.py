"""Who is asking: a server-issued session (``X-Session-Token``) or the admin (Bearer token).

A session token is ``<payload>.<signature>``, both base64url: the payload is the session id
and the time it was issued, the signature their HMAC-SHA256 under DIGITS_SECRET_KEY. Any
worker of any replica checks it without the database, so a valid session keeps being served
(its writes spooled) while the database is down. The sessions table says which sessions were
deleted and when each was last used; no token is ever stored or logged.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request
from sqlalchemy.exc import SQLAlchemyError

from digits.config import Settings
from digits.db import sessions as session_rows
from digits.db.models import utcnow
from digits.db.session import Database, is_connection_error

logger = logging.getLogger(__name__)

HEADER = "X-Session-Token"
_CONTEXT = b"digits-session-v1\x00"
_PAYLOAD_BYTES = 16 + 8  # session id, issued at (Unix seconds, big-endian)

REFUSED = (
    f"the {HEADER} header is missing, malformed, expired or of a deleted session; "
    "POST /api/sessions (or a POST /api/predictions without it) gives a new one"
)
MISSING = (
    f"send the {HEADER} header (from POST /api/sessions, or the session_token of a "
    "POST /api/predictions made without it), or the admin's 'Authorization: Bearer' token"
)

TokenHeader = Annotated[
    str | None,
    Header(
        alias=HEADER,
        description="the session_token of POST /api/sessions (or of a token-less "
        "POST /api/predictions); the request acts as that session",
    ),
]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def token_fingerprint(token: str) -> str:
    """The first 8 hex characters of the token's SHA-256: names a token in logs, reveals none."""
    return hashlib.sha256(token.encode()).hexdigest()[:8]


class SessionAuthority:
    """Issues and checks session tokens; one per worker, in ``app.state.sessions``."""

    def __init__(self, key: bytes, database: Database, ttl: timedelta) -> None:
        self._key = key
        self.database = database  # tests replace it to simulate outages
        self.ttl = ttl
        self.schema_ready = True  # False while the database was down since startup

    def _sign(self, payload: bytes) -> bytes:
        return hmac.new(self._key, _CONTEXT + payload, hashlib.sha256).digest()

    def issue(self) -> tuple[uuid.UUID, str]:
        """A new session and its token. Nothing is written: the row comes with the first use."""
        session_id = uuid.uuid4()
        issued = int(utcnow().timestamp()).to_bytes(8, "big")
        payload = session_id.bytes + issued
        return session_id, f"{_b64(payload)}.{_b64(self._sign(payload))}"

    def verify(self, token: str) -> tuple[uuid.UUID, datetime] | None:
        """The session and issue time a genuine token names; None for anything else."""
        payload_text, dot, signature_text = token.partition(".")
        if not dot or len(token) > 128:
            return None
        try:
            payload, signature = _unb64(payload_text), _unb64(signature_text)
        except (binascii.Error, ValueError):
            return None
        if len(payload) != _PAYLOAD_BYTES or not hmac.compare_digest(
            signature, self._sign(payload)
        ):
            return None
        issued_at = datetime.fromtimestamp(int.from_bytes(payload[16:], "big"), UTC)
        return uuid.UUID(bytes=payload[:16]), issued_at

    def authenticate(self, token: str) -> Authenticated:
        """The session the token acts as; 401 for an unknown, expired or deleted one."""
        verified = self.verify(token)
        if verified is None:
            raise HTTPException(401, REFUSED)
        session_id, issued_at = verified
        if not self.schema_ready:
            return Authenticated(session_id, None)
        now = utcnow()
        try:
            with self.database.read_one() as connection:
                checked = session_rows.standing(
                    connection, session_id=session_id, issued_at=issued_at, now=now, ttl=self.ttl
                )
            if checked.record_use:
                with self.database.write() as session:
                    session_rows.use(session, session_id=session_id, issued_at=issued_at, now=now)
        except SQLAlchemyError as exc:
            if not is_connection_error(exc):
                raise
            # The signature is proof enough while the database is down: deletions and expiry
            # are checked again once it is back.
            logger.debug("database unreachable; session accepted on its signature")
            return Authenticated(session_id, None)
        if checked.standing is not session_rows.Standing.VALID:
            raise HTTPException(401, REFUSED)
        return Authenticated(session_id, checked.memory_generation)


@dataclass(frozen=True)
class Authenticated:
    """A session a request acts as, and its memory's generation (None: unknown, the database
    is down; digits.api.memory then answers with the plain model)."""

    session_id: uuid.UUID
    memory_generation: int | None


@dataclass(frozen=True)
class PredictionSession(Authenticated):
    """The session a new prediction or number belongs to; ``new_token`` when it was made for
    this request (then it has no memory yet)."""

    new_token: str | None = None


@dataclass(frozen=True)
class Caller:
    """A session, or the admin (``session_id`` None), who sees and labels every row."""

    session_id: uuid.UUID | None

    @property
    def is_admin(self) -> bool:
        return self.session_id is None

    def may_act_as(self, session_id: uuid.UUID) -> bool:
        return self.is_admin or self.session_id == session_id


def make_authority(settings: Settings, database: Database) -> SessionAuthority:
    return SessionAuthority(
        settings.resolved_secret_key(), database, timedelta(days=settings.session_ttl_days)
    )


def check_admin(request: Request, settings: Settings) -> None:
    """Bearer ``DIGITS_ADMIN_TOKEN``: 403 when none is configured or it is wrong, 401 when
    absent. The access log names the token by its fingerprint (``admin_token_fp``)."""
    if not settings.admin_token:
        raise HTTPException(403, "admin operations are disabled: DIGITS_ADMIN_TOKEN is not set")
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise HTTPException(
            401,
            "admin operations need 'Authorization: Bearer <DIGITS_ADMIN_TOKEN>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    request.state.admin_token_fp = token_fingerprint(token)
    if not secrets.compare_digest(token.encode(), settings.admin_token.encode()):
        raise HTTPException(403, "the admin token is wrong")


async def get_caller(request: Request, x_session_token: TokenHeader = None) -> Caller:
    """The admin (any Authorization header is checked as the admin token), else the session of
    ``X-Session-Token``; 401 without either."""
    if "authorization" in request.headers:
        check_admin(request, request.app.state.settings)
        return Caller(None)
    if x_session_token is None:
        raise HTTPException(401, MISSING)
    return Caller(request.app.state.sessions.authenticate(x_session_token).session_id)


CallerDep = Annotated[Caller, Depends(get_caller)]


async def prediction_session(
    request: Request, x_session_token: TokenHeader = None
) -> PredictionSession:
    """The session a new prediction belongs to, and its token when the request came without
    one (a new session, so a plain API client can read and label what it sent)."""
    authority: SessionAuthority = request.app.state.sessions
    if x_session_token is not None:
        known = authority.authenticate(x_session_token)
        return PredictionSession(known.session_id, known.memory_generation)
    session_id, token = authority.issue()
    return PredictionSession(session_id, 0, token)


PredictionSessionDep = Annotated[PredictionSession, Depends(prediction_session)]


async def own_session(request: Request, x_session_token: TokenHeader = None) -> uuid.UUID:
    """The session of ``X-Session-Token``, which this request must carry (the admin has none);
    401 without it."""
    if x_session_token is None:
        raise HTTPException(401, f"send the {HEADER} header of the session")
    authority: SessionAuthority = request.app.state.sessions
    return authority.authenticate(x_session_token).session_id


OwnSessionDep = Annotated[uuid.UUID, Depends(own_session)]
