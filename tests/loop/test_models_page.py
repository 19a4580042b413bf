"""The Models page under AppTest, with a client that answers from memory."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from streamlit.testing.v1 import AppTest

from digits.schemas import ModelAccuracy, ModelRegistry
from digits.ui import present
from digits.ui.client import ApiClient, ApiError

T0 = datetime(2026, 11, 28, 1, 0, tzinfo=UTC)


class RegistryClient(ApiClient):
    def __init__(self, fail: bool = False) -> None:
        def refuse(request: httpx.Request) -> httpx.Response:
            raise AssertionError(f"unexpected request {request.url}")

        super().__init__("http://fake.test", transport=httpx.MockTransport(refuse))
        self.fail = fail

    def models(self) -> ModelRegistry:
        if self.fail:
            raise ApiError("The API is not reachable.", kind="unreachable")
        model: dict[str, Any] = {"parent": None, "data": {}, "created_at": T0, "registered_at": T0}
        return ModelRegistry.model_validate(
            {
                "active": "bbbbbbbbbbbb",
                "serving": "bbbbbbbbbbbb",
                "models": [
                    model
                    | {
                        "version": "aaaaaaaaaaaa",
                        "origin": "shipped",
                        "active": False,
                        "metrics": {"mnist_accuracy": 0.9941},
                    },
                    model
                    | {
                        "version": "bbbbbbbbbbbb",
                        "origin": "retrain",
                        "active": True,
                        "parent": "aaaaaaaaaaaa",
                        "data": {
                            "corrections_train": 240,
                            "folds": [
                                {
                                    "fold": k,
                                    "sessions": 3,
                                    "samples": 48,
                                    "active_accuracy": 0.5,
                                    "candidate_accuracy": 0.5 + k / 10,
                                    "difference": k / 10,
                                }
                                for k in range(2)
                            ],
                        },
                        "metrics": {"mnist_accuracy": 0.9943, "heldout_accuracy": 0.93},
                    },
                ],
                "events": [
                    {
                        "at": T0,
                        "action": "initial",
                        "version": "aaaaaaaaaaaa",
                        "previous": None,
                        "reason": "shipped weights",
                    },
                    {
                        "at": T0 + timedelta(hours=2),
                        "action": "promote",
                        "version": "bbbbbbbbbbbb",
                        "previous": "aaaaaaaaaaaa",
                        "reason": "better",
                    },
                ],
                "card": "# Retraining report\n\nDecision: promoted.\n",
            }
        )

    def model_accuracy(self) -> ModelAccuracy:
        return ModelAccuracy.model_validate(
            {
                "bucket": "hour",
                "points": [
                    {
                        "model_version": "aaaaaaaaaaaa",
                        "start": T0 + timedelta(hours=h),
                        "labelled": 10,
                        "correct": 4,
                        "accuracy": 0.4,
                    }
                    for h in (0, 1)
                ]
                + [
                    {
                        "model_version": "bbbbbbbbbbbb",
                        "start": T0 + timedelta(hours=2),
                        "labelled": 10,
                        "correct": 9,
                        "accuracy": 0.9,
                    }
                ],
            }
        )


def _page() -> None:
    from digits.ui.pages import models

    models.render()


def run(client: ApiClient) -> AppTest:
    at = AppTest.from_function(_page, default_timeout=30)
    at.session_state["api_client"] = client
    return at.run()


def test_models_page_shows_the_active_model_history_and_versions() -> None:
    at = run(RegistryClient())
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Active model"] == "bbbbbbbbbbbb"
    assert metrics["Origin"] == "retrain"
    assert metrics["MNIST test accuracy"] == present.percent(0.9943)
    assert "Retraining report" in at.expander[0].markdown[0].value
    versions, folds, events = (frame.value for frame in at.dataframe)
    assert list(versions["Version"]) == ["bbbbbbbbbbbb", "aaaaaaaaaaaa"]
    # The retrained version's folds, one row each; the shipped version has none.
    assert list(folds["Version"]) == ["bbbbbbbbbbbb"] * 2
    assert list(folds["Fold"]) == [1, 2]
    assert list(folds["Change (pp)"]) == [0.0, 10.0]
    assert list(events["What"]) == ["promote", "initial"]
    assert len(at.get("vega_lite_chart")) == 1


def test_models_page_reports_an_unreachable_api() -> None:
    at = run(RegistryClient(fail=True))
    assert not at.exception
    assert "could not be loaded" in at.error[0].value
