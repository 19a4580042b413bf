"""Retraining through the API: an admin queues a job and follows it; DIGITS_RETRAIN_AFTER
queues one after N labels. The API only queues: `digits trainer` runs them."""

from __future__ import annotations

import uuid

from api_helpers import MakeClient, post_drawing
from sqlalchemy import delete

from digits.config import Settings
from digits.db.models import RetrainJobRow
from digits.db.session import Database

ADMIN = {"Authorization": "Bearer s3cret-token"}


def clear_jobs(url: str) -> None:
    database = Database(url)
    try:
        with database.write() as session:
            session.execute(delete(RetrainJobRow))
    finally:
        database.dispose()


def test_an_admin_queues_a_retraining_and_follows_it(
    make_client: MakeClient, settings: Settings
) -> None:
    clear_jobs(settings.resolved_database_url)
    with make_client(admin_token="s3cret-token") as client:
        assert client.post("/api/admin/retrain").status_code == 401
        assert (
            client.post("/api/admin/retrain", headers={"Authorization": "Bearer no"}).status_code
            == 403
        )
        queued = client.post("/api/admin/retrain", headers=ADMIN)
        assert queued.status_code == 202
        job_id = queued.json()["job_id"]
        again = client.post("/api/admin/retrain", headers=ADMIN)
        assert again.json() == {"job_id": job_id}  # the waiting job, not a second one
        job = client.get(f"/api/admin/retrain/{job_id}", headers=ADMIN)
        assert job.status_code == 200
        body = job.json()
        assert (body["state"], body["progress"], body["report"], body["origin"]) == (
            "queued",
            0.0,
            None,
            "admin",
        )
        assert client.get(f"/api/admin/retrain/{job_id}").status_code == 401
        missing = uuid.uuid4()
        unknown = client.get(f"/api/admin/retrain/{missing}", headers=ADMIN)
        assert unknown.status_code == 404 and unknown.json() == {
            "detail": f"no retraining job {missing}"
        }


def test_labels_queue_a_retraining_after_n(make_client: MakeClient, settings: Settings) -> None:
    url = settings.resolved_database_url
    clear_jobs(url)
    with make_client(retrain_after=2) as client:
        first, second = post_drawing(client).json(), post_drawing(client).json()
        assert client.patch(f"/api/predictions/{first['id']}", json={"true_label": 7}).is_success
        database = Database(url)
        try:
            with database.read() as session:
                assert session.query(RetrainJobRow).count() == 0
            assert client.patch(
                f"/api/predictions/{second['id']}", json={"true_label": 1}
            ).is_success
            with database.read() as session:
                [job] = session.query(RetrainJobRow).all()
                assert (job.origin, job.state) == ("auto", "queued")  # queued, not run here
        finally:
            database.dispose()
