"""Per-browser-session plumbing: which API client to use, and how failures are shown."""

from __future__ import annotations

import streamlit as st
from pydantic import ValidationError

from digits.config import InsecureSettingsError, get_settings
from digits.ui.client import ApiClient, ApiError

# Tests (and embedders) put their own client here before the script runs.
CLIENT_KEY = "api_client"
FLASH_KEY = "flash"


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
    return _shared_client(settings.api_url, settings.api_timeout_s)


def show_error(error: ApiError | str) -> None:
    st.error(str(error), icon=":material/error:")


def flash(message: str) -> None:
    """Show `message` once, at the top of the next run (a callback's confirmation)."""
    st.session_state[FLASH_KEY] = message


def show_flash() -> None:
    message = st.session_state.pop(FLASH_KEY, None)
    if message:
        st.success(message, icon=":material/check_circle:")
