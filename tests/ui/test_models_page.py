"""The Models page under AppTest against the real API: a registry with a promoted retraining,
and corrections of each version's predictions over several hours."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from pathlib import Path

from live_api import LiveApi, promote_a_retraining
from streamlit.testing.v1 import AppTest

from digits import checkpoint as ckpt
from digits.loop import jobs
from digits.ui import present
from digits.ui.client import ApiClient
from digits.ui.session import ADMIN_KEY
from digits.ui.views import models


def _page() -> None:
    from digits.ui.views import models

    models.render()


def run(client: ApiClient) -> AppTest:
    at = AppTest.from_function(_page, default_timeout=30)
    at.session_state["api_client"] = client
    return at.run()


def test_models_page_shows_the_active_model_history_and_versions(
    api: LiveApi, shipped_checkpoint: ckpt.Checkpoint, tmp_path: Path
) -> None:
    shipped = shipped_checkpoint.version
    child = promote_a_retraining(api.app.state.registry, shipped_checkpoint, tmp_path)
    # Ten corrections an hour: the shipped model's, 4 right each hour; then the child's, 9 right.
    start = api.clock
    for hour in range(3):
        version, right = (shipped, 4) if hour < 2 else (child, 9)
        api.clock = start + timedelta(hours=hour)
        for i in range(10):
            api.add(3, true_label=3 if i < right else 5, model_version=version, minutes=5)
    at = run(api.client)

    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    # This process serves what the test loaded; the registry's active model is the child.
    assert metrics["Active model"] == shipped
    assert f"The registry's active model is {child}" in at.warning[0].value
    assert metrics["Origin"] == "retrain"
    assert metrics["MNIST test accuracy"] == present.percent(0.9943)
    assert "Retraining report" in at.expander[0].markdown[0].value
    versions, events = (frame.value for frame in at.dataframe)
    assert list(versions["Version"]) == [child, shipped]
    assert [c for c in versions.columns if "fold" in c or "Held" in c] == ["Sessions, out of fold"]
    assert versions["Sessions, out of fold"].iloc[0] == 0.93
    assert list(versions["Judged on (sessions / samples)"]) == ["4 / 40", ""]
    assert list(events["What"]) == ["promote", "initial"]
    [chart] = at.get("vega_lite_chart")
    assert '"line"' in chart.proto.spec  # three hours: accuracy over time
    assert "per hour of the prediction" in at.caption[0].value


def test_corrections_from_one_hour_are_a_bar_per_version_not_one_point(
    api: LiveApi, shipped_checkpoint: ckpt.Checkpoint, tmp_path: Path
) -> None:
    shipped = shipped_checkpoint.version
    child = promote_a_retraining(api.app.state.registry, shipped_checkpoint, tmp_path)
    for version, right in ((shipped, 4), (child, 9)):
        for i in range(10):
            api.add(3, true_label=3 if i < right else 5, model_version=version, minutes=2)
    at = run(api.client)

    [chart] = at.get("vega_lite_chart")
    assert '"line"' not in chart.proto.spec
    assert chart.proto.spec.count('"bar"') == 1
    bars = models.accuracy_bars(api.client.model_accuracy()).data
    assert sorted(zip(bars["version"], bars["text"], strict=True)) == sorted(
        [(shipped, "40% of 10"), (child, "90% of 10")]
    )
    assert "the chart over time appears once they span more than one hour" in (at.caption[0].value)


def test_models_page_reports_an_unreachable_api() -> None:
    at = run(ApiClient("http://127.0.0.1:9"))
    assert not at.exception
    assert "could not be loaded" in at.error[0].value


def test_models_page_shows_each_retrainings_folds(
    api: LiveApi, shipped_checkpoint: ckpt.Checkpoint, tmp_path: Path
) -> None:
    registry = api.app.state.registry
    registry.ensure()
    folds = [
        {
            "fold": k,
            "sessions": 3,
            "samples": 48,
            "active_accuracy": 0.5,
            "candidate_accuracy": 0.5 + k / 10,
            "difference": k / 10,
        }
        for k in range(2)
    ]
    child = dataclasses.replace(
        shipped_checkpoint,
        temperature=shipped_checkpoint.temperature * 1.2,
        parent=shipped_checkpoint.version,
        data={"corrections_train": 96, "folds": folds},
    )
    ckpt.save(child, tmp_path / "child.pt")
    version, _ = registry.register(tmp_path / "child.pt", origin="retrain", report="# Report\n")
    at = run(api.client)

    assert not at.exception
    _, fold_table, _ = (frame.value for frame in at.dataframe)
    # The retrained version's folds, one row each; the shipped version has none.
    assert list(fold_table["Version"]) == [version] * 2
    assert list(fold_table["Fold"]) == [1, 2]
    assert list(fold_table["Change (pp)"]) == [0.0, 10.0]


def test_the_operator_retrains_now_and_follows_the_job(api: LiveApi) -> None:
    token = "operator-" + "x" * 32
    state = api.app.state
    state.settings = state.settings.model_copy(update={"admin_token": token})
    session_only = run(api.client)
    assert not [b for b in session_only.button if b.label == "Retrain now"]

    at = AppTest.from_function(_page, default_timeout=30)
    at.session_state["api_client"] = api.client.with_credentials(admin_token=token)
    at.session_state[ADMIN_KEY] = token
    at.run()
    assert "No retraining yet" in " ".join(c.value for c in at.caption)
    [retrain] = [b for b in at.button if b.label == "Retrain now"]
    retrain.click().run()
    assert not at.exception
    with api.database.read() as session:
        [job] = jobs.latest(session, 10)
    assert job.origin == "admin" and job.state == "queued"
    assert "queued" in at.get("progress")[0].proto.text

    # The trainer takes it and reports; the page shows how far it got, then its report.
    assert jobs.claim(api.database, "trainer-1") == job.id
    jobs.report_progress(api.database, job.id, "trainer-1", 0.5)
    at.run()
    [bar] = at.get("progress")
    assert bar.proto.value == 50 and "running" in bar.proto.text
    jobs.finish(api.database, job.id, "trainer-1", report={"decision": "rejected"})
    at.run()
    assert "done" in at.get("progress")[0].proto.text
    assert '"rejected"' in at.get("json")[0].proto.body
