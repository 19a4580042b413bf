"""Fixtures for the UI tests."""

from __future__ import annotations

import pytest
from ui_fakes import FakeClient


@pytest.fixture
def fake() -> FakeClient:
    return FakeClient()
