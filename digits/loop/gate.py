"""Which corrections retraining may learn from and judge by, and whether a candidate is better.

Everything here is a decision over arrays: no database, no model, no files.

- Corrections are grouped by session (the browser session that sent them). Rows without a
  session, and sessions with fewer than ``DIGITS_RETRAIN_MIN_SESSION`` labelled rows, share one
  pool (``POOL``), which is capped and screened as one session: a visitor who sends corrections
  anonymously, or from many small sessions, weighs no more than one person.
- A session (or the pool) whose labels disagree with the active model far more often than
  sessions typically do is left out: that is what one visitor labelling every 3 as 8 looks like.
  A session's share of each label's training corrections is capped as well, so no session that
  passes the screen outweighs the rest.
- The evidence is every session the screen kept, except the pool: they are dealt into K folds;
  each fold is judged by a candidate fine-tuned on everything else, so every evidence session
  counts once, judged by a model that never saw that person.
- The candidate is promoted only when, on that out-of-fold evidence, it is better than the
  active model by more than the noise: the lower end of a one-sided 95 % interval of the paired
  difference, bootstrapped over sessions (a session's samples are not independent of each
  other), must be above zero; and MNIST may fall by at most ``MNIST_TOLERANCE``.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field

import numpy as np

MNIST_TOLERANCE = 0.001  # 0.1 percentage point
SESSION_CAP = 0.05  # the most any one session weighs among one label's training corrections
# The screen: a session is "far more" disagreeing when its rate is at least this many times the
# typical rate (and this much above it), and the binomial chance of so many disagreements from a
# typical session is below SCREEN_P divided by the number of sessions screened.
SCREEN_RATIO, SCREEN_MARGIN, SCREEN_P = 3.0, 0.2, 1e-3
SCREEN_MIN = 10  # sessions with fewer corrections cannot be told apart from chance
BOOTSTRAP = 2000
CONFIDENCE = 0.95


# The key of the pool: anonymous rows and sessions too small to be told apart from chance.
POOL = "pool"


def session_key(session_id: object | None) -> str:
    """The session a correction belongs to; a row without a session id is in the pool."""
    return f"session:{session_id}" if session_id is not None else POOL


def pooled(sessions: np.ndarray, min_session: int) -> np.ndarray:
    """``sessions`` with every session of fewer than ``min_session`` rows folded into the pool."""
    _, inverse, counts = np.unique(sessions, return_inverse=True, return_counts=True)
    keys: np.ndarray = np.where(counts[inverse] < min_session, POOL, sessions)
    return keys


def _fold_order(key: str) -> bytes:
    """A session's place when sessions are dealt into folds: a hash, so the folds owe nothing
    to when or in which order sessions came."""
    return hashlib.sha256(b"fold:" + key.encode()).digest()


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

    sessions: np.ndarray  # (N,) str: the key each row is capped, screened and judged by
    kept: np.ndarray  # (N,) bool: not screened out; what the promoted model is fine-tuned on
    fold: np.ndarray  # (N,) int: the evidence fold of the row's session; -1: never evidence
    folds: int  # how many folds the evidence is dealt into (0: too few sessions for two)
    typical_rate: float
    excluded: dict[str, SessionStats] = field(default_factory=dict)

    @property
    def evidence(self) -> np.ndarray:
        """Rows that judge a candidate: kept sessions, not the pool."""
        result: np.ndarray = self.fold >= 0
        return result

    def train(self, fold: int | None = None) -> np.ndarray:
        """The rows a candidate is fine-tuned on: every kept row, less ``fold``'s."""
        rows: np.ndarray = self.kept if fold is None else self.kept & (self.fold != fold)
        return rows

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
    """Sampling weights over the training rows: every label present weighs the same (balance by
    class), and within a label no session weighs more than ``SESSION_CAP`` of that label's rows.
    Capping per label keeps one session's pile of one label (every 3 labelled 8) from growing
    into a large share of that label once the labels are balanced."""
    weights = np.zeros(len(labels), dtype=np.float64)
    if not train.any():
        return weights
    train_sessions, train_labels = sessions[train], labels[train]
    row = np.zeros(len(train_labels), dtype=np.float64)
    for label in np.unique(train_labels):
        mask = train_labels == label
        _, inverse, counts = np.unique(
            train_sessions[mask], return_inverse=True, return_counts=True
        )
        share = np.minimum(1.0, max(SESSION_CAP * int(mask.sum()), 1.0) / counts)[inverse]
        row[mask] = share / share.sum()
    weights[train] = row / row.sum()
    return weights


def split(
    sessions: np.ndarray,
    labels: np.ndarray,
    active_predictions: np.ndarray,
    *,
    folds: int,
    min_session: int,
) -> Split:
    """Pool the small sessions, screen, deal the kept sessions (not the pool) into folds."""
    keys = pooled(sessions, min_session)
    stats = session_stats(keys, labels != active_predictions)
    typical, excluded = screen(stats)
    kept = ~np.isin(keys, list(excluded))
    evidence = sorted((str(k) for k in np.unique(keys[kept]) if k != POOL), key=_fold_order)
    used = min(folds, len(evidence)) if len(evidence) >= 2 else 0
    fold_of = {key: i % used for i, key in enumerate(evidence)} if used else {}
    fold = np.array([fold_of.get(str(k), -1) for k in keys], dtype=np.int64)
    return Split(
        sessions=keys,
        kept=kept,
        fold=fold,
        folds=used,
        typical_rate=typical,
        excluded=excluded,
    )


@dataclass(frozen=True)
class Interval:
    difference: float  # candidate accuracy minus active accuracy on the evidence
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
        f"out-of-fold sessions: accuracy {interval.difference * 100:+.2f} pp "
        f"(one-sided {CONFIDENCE:.0%} bound {interval.low * 100:+.2f} pp, bootstrap over "
        f"{interval.sessions} sessions, {interval.samples} samples: "
        f"{'better beyond the noise' if better else 'not better beyond the noise'})",
        f"MNIST test: {mnist_candidate:.3%} vs {mnist_active:.3%} "
        f"({'within' if kept else 'outside'} the {MNIST_TOLERANCE:.1%} tolerance)",
    ]
    return Decision(better and kept, reasons)
