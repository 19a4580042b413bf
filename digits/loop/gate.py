"""Which corrections retraining may learn from and judge by, and whether a candidate is better.

Everything here is a decision over arrays: no database, no model, no files.

- Corrections are grouped by session (the browser session that sent them; a row without one is a
  session of its own). Whole sessions are held out, by a hash of the session key, so the
  candidate is judged on people it never trained on, and a session held out once stays held out
  as corrections accumulate.
- A session whose labels disagree with the active model far more often than sessions typically
  do is left out of training and of the held-out set: that is what one visitor labelling every 3
  as 8 looks like. A session's share of the training corrections is capped as well, so no
  session that passes the screen outweighs the rest.
- The candidate is promoted only when its accuracy on the held-out sessions is higher than the
  active model's by more than the noise: the lower end of a one-sided 95 % interval of the paired
  difference, bootstrapped over sessions (a session's samples are not independent of each other),
  must be above zero; and MNIST may fall by at most ``MNIST_TOLERANCE``.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field

import numpy as np

HELDOUT_PERCENT = 25
MNIST_TOLERANCE = 0.001  # 0.1 percentage point
SESSION_CAP = 0.05  # the most any one session weighs in the training corrections
# The screen: a session is "far more" disagreeing when its rate is at least this many times the
# typical rate (and this much above it), and the binomial chance of so many disagreements from a
# typical session is below SCREEN_P divided by the number of sessions screened.
SCREEN_RATIO, SCREEN_MARGIN, SCREEN_P = 3.0, 0.2, 1e-3
SCREEN_MIN = 10  # sessions with fewer corrections cannot be told apart from chance
BOOTSTRAP = 2000
CONFIDENCE = 0.95


def session_key(session_id: object | None, prediction_id: object) -> str:
    """The session a correction belongs to; a row without a session id is its own session."""
    return f"session:{session_id}" if session_id is not None else f"prediction:{prediction_id}"


def in_share(key: str, percent: int, salt: bytes = b"") -> bool:
    """Whether a session key falls in a fixed ``percent`` of all keys, by a hash: deterministic
    and stable as corrections grow. A different salt draws an independent share."""
    digest = hashlib.sha256(salt + key.encode()).digest()
    return int.from_bytes(digest[:4], "big") * 100 < percent * 2**32


def is_heldout(key: str) -> bool:
    """Deterministic and stable: a session held out once is held out in every later run."""
    return in_share(key, HELDOUT_PERCENT)


def _binomial_tail(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p), summed in log space (n is a session's size)."""
    if k <= 0:
        return 1.0
    if p <= 0.0:
        return 0.0
    if p >= 1.0:
        return 1.0
    log_p, log_q = math.log(p), math.log1p(-p)
    terms = [
        math.lgamma(n + 1)
        - math.lgamma(i + 1)
        - math.lgamma(n - i + 1)
        + i * log_p
        + (n - i) * log_q
        for i in range(k, n + 1)
    ]
    top = max(terms)
    return min(1.0, math.exp(top) * sum(math.exp(t - top) for t in terms))


@dataclass(frozen=True)
class SessionStats:
    corrections: int
    disagreements: int  # labels that differ from the active model's answer

    @property
    def rate(self) -> float:
        return self.disagreements / self.corrections if self.corrections else 0.0


@dataclass
class Split:
    """Row masks over the corrections, and what the screen found."""

    train: np.ndarray  # bool (N,)
    heldout: np.ndarray  # bool (N,)
    weights: np.ndarray  # float (N,): sampling weight of each training row (0 elsewhere)
    typical_rate: float
    excluded: dict[str, SessionStats] = field(default_factory=dict)

    @property
    def excluded_corrections(self) -> int:
        return sum(s.corrections for s in self.excluded.values())


def session_stats(sessions: np.ndarray, disagree: np.ndarray) -> dict[str, SessionStats]:
    keys, inverse = np.unique(sessions, return_inverse=True)
    counts = np.bincount(inverse, minlength=len(keys))
    wrong = np.bincount(inverse, weights=disagree.astype(np.float64), minlength=len(keys))
    return {
        str(k): SessionStats(int(n), round(float(w)))
        for k, n, w in zip(keys, counts, wrong, strict=True)
    }


def typical_rate(stats: dict[str, SessionStats]) -> float:
    """The median session's disagreement rate (sessions big enough to have one), robust to the
    few sessions the screen is looking for; the pooled rate where too few sessions are big."""
    big = [s.rate for s in stats.values() if s.corrections >= SCREEN_MIN]
    if len(big) >= 5:
        return float(np.median(big))
    total = sum(s.corrections for s in stats.values())
    return sum(s.disagreements for s in stats.values()) / total if total else 0.0


def screen(stats: dict[str, SessionStats]) -> tuple[float, dict[str, SessionStats]]:
    """(typical rate, the sessions that disagree far more often than it)."""
    typical = typical_rate(stats)
    # A floor, so a model that almost never disagrees does not make every slip look hostile.
    base = max(typical, 0.02)
    screened = [s for s in stats.values() if s.corrections >= SCREEN_MIN]
    alpha = SCREEN_P / max(len(screened), 1)
    flagged = {
        key: s
        for key, s in stats.items()
        if s.corrections >= SCREEN_MIN
        and s.rate >= max(SCREEN_RATIO * base, base + SCREEN_MARGIN)
        and _binomial_tail(s.disagreements, s.corrections, base) < alpha
    }
    return typical, flagged


def capped_weights(sessions: np.ndarray, labels: np.ndarray, train: np.ndarray) -> np.ndarray:
    """Sampling weights over the training rows: each session weighs at most ``SESSION_CAP`` of
    the corrections' total, then every label present weighs the same (balance by class)."""
    weights = np.zeros(len(labels), dtype=np.float64)
    if not train.any():
        return weights
    _, inverse, counts = np.unique(sessions[train], return_inverse=True, return_counts=True)
    cap = max(SESSION_CAP * int(train.sum()), 1.0)
    row = np.minimum(1.0, cap / counts)[inverse]
    train_labels = labels[train]
    for label in np.unique(train_labels):
        mask = train_labels == label
        row[mask] /= row[mask].sum()
    weights[train] = row / row.sum()
    return weights


def split(sessions: np.ndarray, labels: np.ndarray, active_predictions: np.ndarray) -> Split:
    """Screen the sessions, hold out whole ones by hash, weigh the training rows."""
    stats = session_stats(sessions, labels != active_predictions)
    typical, excluded = screen(stats)
    kept = ~np.isin(sessions, list(excluded)) if excluded else np.ones(len(labels), bool)
    held = np.array([is_heldout(str(s)) for s in sessions], dtype=bool)
    train = kept & ~held
    return Split(
        train=train,
        heldout=kept & held,
        weights=capped_weights(sessions, labels, train),
        typical_rate=typical,
        excluded=excluded,
    )


@dataclass(frozen=True)
class Interval:
    difference: float  # candidate accuracy minus active accuracy on the held-out samples
    low: float  # one-sided CONFIDENCE lower bound, bootstrapped over sessions
    high: float  # the matching upper bound (reported, not used to decide)
    sessions: int
    samples: int


def paired_interval(
    correct_active: np.ndarray,
    correct_candidate: np.ndarray,
    sessions: np.ndarray,
    *,
    resamples: int = BOOTSTRAP,
    seed: int = 0,
) -> Interval:
    """Bootstrap of the paired accuracy difference, resampling whole sessions."""
    n = len(sessions)
    if n == 0:
        return Interval(0.0, 0.0, 0.0, 0, 0)
    keys, inverse = np.unique(sessions, return_inverse=True)
    gain = np.bincount(
        inverse,
        weights=correct_candidate.astype(np.float64) - correct_active.astype(np.float64),
        minlength=len(keys),
    )
    size = np.bincount(inverse, minlength=len(keys)).astype(np.float64)
    rng = np.random.default_rng(seed)
    picks = rng.integers(len(keys), size=(resamples, len(keys)))
    diffs = gain[picks].sum(axis=1) / size[picks].sum(axis=1)
    low, high = np.quantile(diffs, [1 - CONFIDENCE, CONFIDENCE])
    return Interval(float(gain.sum() / n), float(low), float(high), len(keys), n)


@dataclass(frozen=True)
class Decision:
    accept: bool
    reasons: list[str]


def decide(interval: Interval, mnist_active: float, mnist_candidate: float) -> Decision:
    better = interval.samples > 0 and interval.low > 0.0
    kept = mnist_candidate >= mnist_active - MNIST_TOLERANCE
    reasons = [
        f"held-out sessions: accuracy {interval.difference * 100:+.2f} pp "
        f"(one-sided {CONFIDENCE:.0%} bound {interval.low * 100:+.2f} pp, bootstrap over "
        f"{interval.sessions} sessions, {interval.samples} samples: "
        f"{'better beyond the noise' if better else 'not better beyond the noise'})",
        f"MNIST test: {mnist_candidate:.3%} vs {mnist_active:.3%} "
        f"({'within' if kept else 'outside'} the {MNIST_TOLERANCE:.1%} tolerance)",
    ]
    return Decision(better and kept, reasons)
