"""History and Statistics pages, and the app's navigation, under AppTest with a fake client."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest
from ui_fakes import FakeClient

from digits.ui import present
from digits.ui.client import ApiError, HistoryFilter
from digits.ui.pages import history


@pytest.fixture
def fake() -> FakeClient:
    return FakeClient()


def _history() -> None:
    from digits.ui.pages import history

    history.render()


def _stats() -> None:
    from digits.ui.pages import stats

    stats.render()


def run(script: object, fake: FakeClient) -> AppTest:
    at = AppTest.from_function(script, default_timeout=30)  # type: ignore[arg-type]
    at.session_state["api_client"] = fake
    return at.run()


def table(at: AppTest) -> object:
    frames = at.dataframe
    assert len(frames) == 1
    return frames[0].value


def test_history_lists_newest_first_with_thumbnails_and_labels(fake: FakeClient) -> None:
    fake.add(3, confidence=0.99, true_label=3)
    fake.add(5, confidence=0.7, true_label=6)
    fake.add(1, confidence=0.93)
    at = run(_history, fake)

    assert not at.exception
    df = table(at)
    assert list(df["Predicted"]) == [1, 5, 3]
    assert list(df["True label"]) == ["", "6", "3"]
    assert list(df["Outcome"]) == ["not labelled", "wrong", "correct"]
    assert all(str(t).startswith("data:image/png;base64,") for t in df["Drawing"])
    assert list(df["Model"]) == ["v1"] * 3
    assert "Showing 1-3 of 3 predictions." in at.caption[0].value


@pytest.mark.parametrize(
    ("show", "expected"),
    [("Wrong only", [5]), ("Unlabelled only", [1]), ("Correct only", [3])],
)
def test_history_outcome_filters(fake: FakeClient, show: str, expected: list[int]) -> None:
    fake.add(3, true_label=3)
    fake.add(5, true_label=6)
    fake.add(1)
    at = run(_history, fake)
    at.selectbox(key="history_show").set_value(show).run()
    assert list(table(at)["Predicted"]) == expected


def test_history_digit_filter_and_pagination(fake: FakeClient) -> None:
    for i in range(25):
        fake.add(i % 2)
    at = run(_history, fake)
    assert len(table(at)) == 20
    assert at.get("pagination")[0].value == 1

    at.get("pagination")[0].set_value(2).run()
    assert len(table(at)) == 5
    assert "Showing 21-25 of 25" in at.caption[0].value

    at.selectbox(key="history_digit").set_value(1).run()  # a new filter starts on page 1
    assert at.get("pagination")[0].value == 1
    assert set(table(at)["Predicted"]) == {1}
    assert "of 12 predictions" in at.caption[0].value


def test_history_corrects_a_label(fake: FakeClient) -> None:
    first = fake.add(4)
    fake.add(9)
    at = run(_history, fake)
    at.selectbox(key="history_fix_id").set_value(str(first.id)).run()
    at.selectbox(key=f"history_label_{first.id}").set_value(9).run()
    at.button(key="history_save").click().run()

    assert fake.labels == [(str(first.id), 9)]
    assert "a 9; the model was wrong (it read 4)" in at.success[0].value
    assert list(table(at)["True label"])[1] == "9"


def test_history_filters_on_the_answer_and_the_not_a_digit_label(fake: FakeClient) -> None:
    fake.add(3, true_label=3)
    fake.add(5, status="not_a_digit")
    fake.add(8, not_a_digit=True)
    at = run(_history, fake)
    assert list(table(at)["True label"]) == ["not a digit", "", "3"]
    assert list(table(at)["Answer"]) == ["ok", "not a digit", "ok"]
    at.selectbox(key="history_status").set_value("not a digit").run()
    assert list(table(at)["Predicted"]) == [5]
    at.selectbox(key="history_status").set_value("Any").run()
    at.selectbox(key="history_show").set_value("Labelled not a digit").run()
    assert list(table(at)["Predicted"]) == [8]
    assert list(table(at)["Outcome"]) == ["wrong"]  # the model read a digit


def test_history_labels_a_drawing_not_a_digit(fake: FakeClient) -> None:
    first = fake.add(4)
    at = run(_history, fake)
    at.selectbox(key=f"history_label_{first.id}").set_value(history.NOT_A_DIGIT_OPTION).run()
    at.button(key="history_save").click().run()
    assert fake.labels == [(str(first.id), None)]
    assert "not a digit (the model read 4)" in at.success[0].value
    assert list(table(at)["True label"]) == ["not a digit"]


def test_history_csv_export_has_every_matching_row(fake: FakeClient) -> None:
    for i in range(130):
        fake.add(i % 10, true_label=(i % 10) if i % 3 else None)
    csv_text = history._export(fake, HistoryFilter(outcome="unlabelled"))
    lines = csv_text.strip().splitlines()
    assert lines[0].startswith("id,digit,confidence,p0,")
    assert len(lines) == 1 + sum(1 for i in range(130) if i % 3 == 0)
    label = present.CSV_COLUMNS.index("true_label")
    assert all(line.split(",")[label] == "" for line in lines[1:])


def test_history_empty_and_failure_messages(fake: FakeClient) -> None:
    at = run(_history, fake)
    assert "No predictions match" in at.info[0].value

    fake.fail = ApiError(
        "The prediction service at http://x cannot be reached.", kind="unreachable"
    )
    at.run()
    assert not at.exception
    assert "The history could not be loaded" in at.error[0].value
    assert "cannot be reached" in at.error[0].value


def test_statistics_draws_charts_from_corrections(fake: FakeClient) -> None:
    for i in range(20):
        fake.add(i % 10, confidence=0.5 + (i % 5) / 10, true_label=(i + (i % 4 == 0)) % 10)
    at = run(_stats, fake)

    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Predictions"] == "20"
    assert metrics["Labelled by people"] == "20"
    assert metrics["Accuracy"] == "75%"
    # per-digit accuracy, confusion matrix, confidence histogram, reliability, over time
    assert len(at.get("vega_lite_chart")) == 5


def test_statistics_without_labels_explains_accuracy(fake: FakeClient) -> None:
    fake.add(2)
    at = run(_stats, fake)
    assert "Accuracy needs labels" in at.info[0].value
    assert len(at.get("vega_lite_chart")) == 2  # histogram and time: no reliability yet


def test_statistics_empty_and_failure(fake: FakeClient) -> None:
    at = run(_stats, fake)
    assert "No predictions yet" in at.info[0].value
    fake.fail = ApiError("The prediction service failed (503): db down.", kind="server")
    at.run()
    assert not at.exception
    assert "db down" in at.error[0].value


def test_app_opens_on_the_draw_page_with_navigation(fake: FakeClient) -> None:
    at = AppTest.from_file("../../digits/ui/app.py", default_timeout=30)
    at.session_state["api_client"] = fake
    at.run()
    assert not at.exception
    assert at.title[0].value == "Draw a digit"
