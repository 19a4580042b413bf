"""Prometheus metrics, one set per app (created in ``create_app``, nothing at import).

With several uvicorn workers ``digits serve`` sets ``PROMETHEUS_MULTIPROC_DIR`` before the
workers start; every worker then writes its samples there and ``/metrics``, whichever worker
answers, aggregates all of them (the spool depth is summed over live workers).
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

LATENCY_BUCKETS = (0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1, 2, 5)
CONTENT_TYPE = CONTENT_TYPE_LATEST


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.request_latency = Histogram(
            "digits_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.predictions = Counter(
            "digits_predictions", "Predictions answered", ["digit", "status"], registry=r
        )
        self.numbers = Counter("digits_numbers", "Written numbers answered", ["status"], registry=r)
        self.corrections = Counter("digits_corrections", "Corrections recorded", registry=r)
        self.errors = Counter(
            "digits_http_errors", "Error responses (4xx and 5xx)", ["status"], registry=r
        )
        self.db_errors = Counter(
            "digits_db_errors", "Database operations that failed to connect", registry=r
        )
        self.spooled = Counter(
            "digits_spooled_writes", "Writes sent to the local spool", ["kind"], registry=r
        )
        self.replayed = Counter(
            "digits_spool_replayed", "Spooled writes replayed into the database", registry=r
        )
        self.spool_depth = Gauge(
            "digits_spool_depth",
            "Writes acknowledged but not yet in the database",
            registry=r,
            multiprocess_mode="livesum",
        )

    def render(self) -> bytes:
        path = multiprocess_dir()
        if path is None:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=path)
        return generate_latest(registry)

    @staticmethod
    def process_exited() -> None:
        if multiprocess_dir() is not None:
            multiprocess.mark_process_dead(os.getpid())
