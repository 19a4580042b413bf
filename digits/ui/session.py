"""Per-browser-session plumbing: which API client to use, and how failures are shown.

Each person and device is one API session. Its token is kept in a cookie, so a reload, a new
tab or a phone waking a sleeping tab resumes the same session (and history) until it expires;
another browser is another session.
"""

from __future__ import annotations

import json

import streamlit as st
from pydantic import ValidationError

from digits.config import InsecureSettingsError, get_settings
from digits.ui.client import ApiClient, ApiError

# Tests (and embedders) put their own client here before the script runs.
CLIENT_KEY = "api_client"
FLASH_KEY = "flash"
TOKEN_KEY = "session_token"
ADMIN_KEY = "admin_token"  # the operator view's admin token (History and Models pages)
_ADMIN_INPUT = "admin_token_input"
COOKIE = "digits_session"


@st.cache_resource(show_spinner=False)
def _shared_client(base_url: str, timeout_s: float) -> ApiClient:
    # httpx.Client is thread-safe: one connection pool serves every session.
    return ApiClient(base_url, timeout_s=timeout_s)


def get_client() -> ApiClient:
    injected = st.session_state.get(CLIENT_KEY)
    if isinstance(injected, ApiClient):
        return injected
    try:
        settings = get_settings()
    except (ValidationError, InsecureSettingsError) as err:
        show_error(
            f"This app's settings are invalid: {err}. Fix the DIGITS_* environment variables "
            "(DIGITS_API_URL gives the prediction service's address) and restart `digits ui`."
        )
        st.stop()
    shared = _shared_client(settings.api_url, settings.api_timeout_s)
    token = st.session_state.get(TOKEN_KEY) or _resume_or_start(shared)
    return shared.with_credentials(
        session_token=token, admin_token=st.session_state.get(ADMIN_KEY) or None
    )


def remember_in_browser() -> None:
    """Keep the session's token in a cookie. Streamlit cannot set one from the server; a line
    of script in the page does, on every run until the browser sends it back (a run's elements
    can be replaced by the next run's before the browser ever mounts them). The app calls this
    last, so the empty element sits below the page, never pushing it down."""
    token = st.session_state.get(TOKEN_KEY)
    if not token or _cookie() == token:
        return
    age = get_settings().session_ttl_days * 86400
    cookie = f"{COOKIE}={token}; path=/; max-age={age}; SameSite=Strict"
    st.html(
        f"<script>document.cookie = {json.dumps(cookie)};</script>", unsafe_allow_javascript=True
    )


def _cookie() -> str | None:
    """The session token the browser sent when this Streamlit session connected."""
    token = st.context.cookies.get(COOKIE)
    return token if isinstance(token, str) else None  # no browser behind a headless test run


def _resume_or_start(shared: ApiClient) -> str:
    """The browser's session from its cookie, or a new one when it has none (or it expired)."""
    token = _cookie()
    try:
        if not token or not shared.with_credentials(session_token=token).session_is_valid():
            token = shared.create_session().session_token
    except ApiError as err:
        show_error(err)
        st.stop()
    st.session_state[TOKEN_KEY] = token
    return token


def operator_view(what: str) -> bool:
    """The admin token field; whether the operator view is on. The token is kept under a key
    of its own: Streamlit drops a widget's state on a page that does not show the widget."""
    with st.expander("Operator view", icon=":material/admin_panel_settings:"):
        st.text_input(
            "Admin token",
            type="password",
            key=_ADMIN_INPUT,
            value=st.session_state.get(ADMIN_KEY, ""),
            on_change=_keep_admin_token,
            help=f"DIGITS_ADMIN_TOKEN: {what}",
        )
    return bool(st.session_state.get(ADMIN_KEY))


def _keep_admin_token() -> None:
    st.session_state[ADMIN_KEY] = st.session_state[_ADMIN_INPUT]


def show_error(error: ApiError | str) -> None:
    st.error(str(error), icon=":material/error:")


def flash(message: str) -> None:
    """Show `message` once, at the top of the next run (a callback's confirmation)."""
    st.session_state[FLASH_KEY] = message


def show_flash() -> None:
    message = st.session_state.pop(FLASH_KEY, None)
    if message:
        st.success(message, icon=":material/check_circle:")
