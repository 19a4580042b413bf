"""DIGITS_RETRAIN_AFTER through the API: corrections sent as PATCHes claim one retraining job
under the database lease, and no second one while that job holds it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from api_helpers import MakeClient, drawing, post_drawing
from sqlalchemy import delete

from digits.db.models import RetrainLeaseRow
from digits.db.session import Database
from digits.loop import autoretrain


def _drop_lease(url: str) -> None:
    database = Database(url)
    try:
        with database.write() as session:
            session.execute(delete(RetrainLeaseRow))
    finally:
        database.dispose()


@pytest.fixture(autouse=True)
def no_lease(database_url: str) -> Iterator[None]:
    """The database outlives the test: start, and leave it, with no lease taken."""
    _drop_lease(database_url)
    yield
    _drop_lease(database_url)


def _lease(url: str) -> RetrainLeaseRow | None:
    database = Database(url)
    try:
        with database.read() as session:
            return session.get(RetrainLeaseRow, autoretrain.LEASE)
    finally:
        database.dispose()


def test_every_third_correction_claims_one_retraining_under_the_lease(
    make_client: MakeClient, database_url: str
) -> None:
    launched: list[str] = []
    with make_client(retrain_after=3, retrain_launch=launched.append) as client:
        ids = [post_drawing(client, drawing(200 + i)).json()["id"] for i in range(7)]

        def correct(prediction_id: str) -> None:
            response = client.patch(f"/api/predictions/{prediction_id}", json={"true_label": 7})
            assert response.status_code == 200

        for prediction_id in ids[:2]:
            correct(prediction_id)
        assert launched == []  # two corrections: nothing is due
        lease = _lease(database_url)
        assert lease is None or lease.last_started_at is None

        before = datetime.now(UTC)
        correct(ids[2])
        assert len(launched) == 1
        lease = _lease(database_url)
        assert lease is not None and lease.holder == launched[0]
        assert lease.expires_at is not None and lease.last_started_at is not None
        assert lease.expires_at.replace(tzinfo=UTC) > before
        assert lease.last_started_at.replace(tzinfo=UTC) >= before.replace(microsecond=0)

        for prediction_id in ids[3:6]:
            correct(prediction_id)
        assert len(launched) == 1  # due again, but the first job still holds the lease

        database = client.app.state.store.database  # type: ignore[attr-defined]
        with database.write() as session:
            autoretrain.release(session, launched[0])  # the job ends
        correct(ids[6])
        assert len(launched) == 2 and launched[1] != launched[0]
        lease = _lease(database_url)
        assert lease is not None and lease.holder == launched[1]


def test_without_the_setting_corrections_claim_nothing(
    make_client: MakeClient, database_url: str
) -> None:
    launched: list[str] = []
    with make_client(retrain_launch=launched.append) as client:
        for i in range(3):
            prediction = post_drawing(client, drawing(200 + i)).json()
            client.patch(f"/api/predictions/{prediction['id']}", json={"true_label": 1})
    assert launched == []
    assert _lease(database_url) is None
