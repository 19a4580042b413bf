"""History and Statistics pages, and the app's navigation, under AppTest against the real API."""

from __future__ import annotations

from pathlib import Path

from live_api import LiveApi
from streamlit.testing.v1 import AppTest

from digits.ui import present
from digits.ui.client import ApiClient, HistoryFilter
from digits.ui.views import history

# Nothing listens on port 9 (discard).
UNREACHABLE = "http://127.0.0.1:9"


def _history() -> None:
    from digits.ui.views import history

    history.render()


def _stats() -> None:
    from digits.ui.views import stats

    stats.render()


def run(script: object, api: LiveApi) -> AppTest:
    at = AppTest.from_function(script, default_timeout=30)  # type: ignore[arg-type]
    at.session_state["api_client"] = api.client
    return at.run()


def table(at: AppTest) -> object:
    frames = at.dataframe
    assert len(frames) == 1
    return frames[0].value


def test_history_lists_newest_first_with_thumbnails_and_labels(api: LiveApi) -> None:
    api.add(3, confidence=0.99, true_label=3)
    api.add(5, confidence=0.7, true_label=6)
    api.add(1, confidence=0.93)
    at = run(_history, api)

    assert not at.exception
    df = table(at)
    assert list(df["Predicted"]) == [1, 5, 3]
    assert list(df["True label"]) == ["", "6", "3"]
    assert list(df["Outcome"]) == ["not labelled", "wrong", "correct"]
    assert all(str(t).startswith("data:image/png;base64,") for t in df["Drawing"])
    assert list(df["Model"]) == ["v1"] * 3
    assert "Showing 1-3 of 3 predictions." in at.caption[0].value


def test_history_outcome_filters(api: LiveApi) -> None:
    api.add(3, true_label=3)
    api.add(5, true_label=6)
    api.add(1)
    at = run(_history, api)
    for show, expected in [("Wrong only", [5]), ("Unlabelled only", [1]), ("Correct only", [3])]:
        at.selectbox(key="history_show").set_value(show).run()
        assert list(table(at)["Predicted"]) == expected, show


def test_history_digit_filter_and_pagination(api: LiveApi) -> None:
    for i in range(25):
        api.add(i % 3)
    at = run(_history, api)
    assert len(table(at)) == 20
    assert at.get("pagination")[0].value == 1

    at.get("pagination")[0].set_value(2).run()
    assert len(table(at)) == 5
    assert "Showing 21-25 of 25" in at.caption[0].value
    # Newest first: the oldest five, 4..0, read as i % 3.
    assert list(table(at)["Predicted"]) == [1, 0, 2, 1, 0]

    at.selectbox(key="history_digit").set_value(1).run()  # a new filter starts on page 1
    assert at.get("pagination")[0].value == 1
    assert list(table(at)["Predicted"]) == [1] * 8
    assert "Showing 1-8 of 8 predictions." in at.caption[0].value


def test_history_corrects_a_label(api: LiveApi) -> None:
    first = api.add(4)
    api.add(9)
    at = run(_history, api)
    next(s for s in at.selectbox if s.label.startswith("Prediction")).set_value(first).run()
    at.selectbox(key=f"history_label_{first}").set_value(9).run()
    at.button(key="history_save").click().run()

    assert api.labels() == [(first, 9, False)]
    assert "a 9; the model was wrong (it read 4)" in at.success[0].value
    assert list(table(at)["True label"]) == ["", "9"]


def test_history_filters_on_the_answer_and_the_not_a_digit_label(api: LiveApi) -> None:
    api.add(3, true_label=3)
    api.add(5, status="not_a_digit")
    api.add(8, not_a_digit=True)
    at = run(_history, api)
    assert list(table(at)["True label"]) == ["not a digit", "", "3"]
    assert list(table(at)["Answer"]) == ["ok", "not a digit", "ok"]
    at.selectbox(key="history_status").set_value("not a digit").run()
    assert list(table(at)["Predicted"]) == [5]
    at.selectbox(key="history_status").set_value("Any").run()
    at.selectbox(key="history_show").set_value("Labelled not a digit").run()
    assert list(table(at)["Predicted"]) == [8]
    assert list(table(at)["Outcome"]) == ["wrong"]  # the model read a digit


def test_history_labels_a_drawing_not_a_digit(api: LiveApi) -> None:
    first = api.add(4)
    at = run(_history, api)
    at.selectbox(key=f"history_label_{first}").set_value(history.NOT_A_DIGIT_OPTION).run()
    at.button(key="history_save").click().run()
    assert api.labels() == [(first, None, True)]
    assert "not a digit (the model read 4)" in at.success[0].value
    assert list(table(at)["True label"]) == ["not a digit"]


def test_history_csv_export_has_every_matching_row(api: LiveApi) -> None:
    for i in range(130):
        api.add(i % 10, true_label=(i % 10) if i % 3 else None)
    csv_text = history._export(api.client, HistoryFilter(outcome="unlabelled"))
    lines = csv_text.strip().splitlines()
    assert lines[0].startswith("id,digit,confidence,p0,")
    assert len(lines) == 1 + sum(1 for i in range(130) if i % 3 == 0)
    label = present.CSV_COLUMNS.index("true_label")
    assert all(line.split(",")[label] == "" for line in lines[1:])


def test_history_empty_and_failure_messages(api: LiveApi) -> None:
    at = run(_history, api)
    assert "No predictions match" in at.info[0].value

    at.session_state["api_client"] = ApiClient(UNREACHABLE)
    at.run()
    assert not at.exception
    assert "The history could not be loaded" in at.error[0].value
    assert f"{UNREACHABLE} cannot be reached" in at.error[0].value


def test_statistics_draws_charts_from_corrections(api: LiveApi) -> None:
    for i in range(20):
        api.add(i % 10, confidence=0.5 + (i % 5) / 10, true_label=(i + (i % 4 == 0)) % 10)
    at = run(_stats, api)

    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Predictions"] == "20"
    assert metrics["Labelled by people"] == "20"
    assert metrics["Accuracy"] == "75%"
    # per-digit accuracy, confusion matrix, confidence histogram, reliability, over time
    assert len(at.get("vega_lite_chart")) == 5


def test_statistics_without_labels_explains_accuracy(api: LiveApi) -> None:
    api.add(2)
    at = run(_stats, api)
    assert "Accuracy needs labels" in at.info[0].value
    assert len(at.get("vega_lite_chart")) == 2  # histogram and time: no reliability yet


def test_statistics_empty_and_failure(api: LiveApi, tmp_path: Path) -> None:
    at = run(_stats, api)
    assert "No predictions yet" in at.info[0].value
    with api.storage_down(tmp_path):
        at.run()
    assert not at.exception
    assert "The statistics could not be loaded" in at.error[0].value
    assert "failed (503)" in at.error[0].value


def test_app_opens_on_the_draw_page_with_navigation(api: LiveApi) -> None:
    at = AppTest.from_file("../../digits/ui/app.py", default_timeout=30)
    at.session_state["api_client"] = api.client
    at.run()
    assert not at.exception
    assert at.title[0].value == "Draw a digit"
