"""Retraining through the API: an admin queues a job and follows it; DIGITS_RETRAIN_AFTER
queues one after N labels. The API only queues: `digits trainer` runs them."""

from __future__ import annotations

import uuid

from api_helpers import MakeClient, post_drawing
from sqlalchemy import delete

from digits.config import Settings
from digits.db.models import RetrainJobRow, RetrainLeaseRow, utcnow
from digits.db.session import Database
from digits.loop import jobs

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
        recent = client.get("/api/admin/retrain", headers=ADMIN)
        assert [j["job_id"] for j in recent.json()["jobs"]] == [job_id]
        assert client.get("/api/admin/retrain").status_code == 401
        assert client.get("/api/admin/retrain?limit=101", headers=ADMIN).status_code == 422
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


def test_labels_queue_jobs_that_one_trainer_at_a_time_claims_under_the_lease(
    make_client: MakeClient, settings: Settings
) -> None:
    """Through real PATCHes up to the job a trainer claims; a second trainer gets nothing while
    the first holds the lease, and the next job once it is free."""
    url = settings.resolved_database_url
    clear_jobs(url)
    database = Database(url)
    with database.write() as session:
        session.execute(delete(RetrainLeaseRow))
    try:
        with make_client(retrain_after=2) as client:
            ids = [post_drawing(client).json()["id"] for _ in range(4)]

            def label(prediction_id: str) -> None:
                patched = client.patch(f"/api/predictions/{prediction_id}", json={"true_label": 7})
                assert patched.is_success

            label(ids[0])
            assert jobs.claim(database, "trainer-1") is None  # one label: nothing queued
            label(ids[1])
            first = jobs.claim(database, "trainer-1")
            assert first is not None
            with database.read() as session:
                lease = session.get(RetrainLeaseRow, jobs.LEASE)
                assert lease is not None and lease.holder == "trainer-1"
                assert lease.expires_at is not None and lease.expires_at > utcnow()
                job = jobs.get(session, first)
                assert job is not None and (job.origin, job.state) == ("auto", "running")

            label(ids[2])
            label(ids[3])  # two more since the first started: the next job waits in the queue
            assert jobs.claim(database, "trainer-2") is None  # trainer-1 holds the lease
            jobs.finish(database, first, "trainer-1", report={"decision": "skipped"})
            second = jobs.claim(database, "trainer-2")
            assert second is not None and second != first
            with database.read() as session:
                states = {j.id: j.state for j in session.query(RetrainJobRow)}
            assert states == {first: "done", second: "running"}
    finally:
        with database.write() as session:
            session.execute(delete(RetrainLeaseRow))
        database.dispose()
        clear_jobs(url)
