"""Which client a page gets, and a broken configuration shown as a message, not a traceback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from streamlit.testing.v1 import AppTest

from digits.config import get_settings


def _stats() -> None:
    from digits.ui.views import stats

    stats.render()


@pytest.fixture
def fresh_settings() -> Iterator[None]:
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_invalid_settings_are_a_message(
    monkeypatch: pytest.MonkeyPatch, fresh_settings: None
) -> None:
    monkeypatch.setenv("DIGITS_API_TIMEOUT_S", "soon")
    at = AppTest.from_function(_stats, default_timeout=30).run()
    assert not at.exception
    assert "settings are invalid" in at.error[0].value
    assert "DIGITS_API_URL" in at.error[0].value


def test_default_client_uses_digits_api_url(
    monkeypatch: pytest.MonkeyPatch, fresh_settings: None
) -> None:
    # Nothing listens on port 9 (discard): the page must say so, naming the configured address.
    monkeypatch.setenv("DIGITS_API_URL", "http://127.0.0.1:9")
    at = AppTest.from_function(_stats, default_timeout=30).run()
    assert not at.exception
    assert "http://127.0.0.1:9 cannot be reached" in at.error[0].value
