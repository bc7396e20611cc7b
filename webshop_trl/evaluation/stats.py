"""Statistics for comparing agents on the same goals: bootstrap intervals, paired differences,
pooling over training seeds. Pure numpy, no environment.

Why a bootstrap over goals: an evaluation runs every agent once on a fixed list of goals, so the
uncertainty that matters for "would this hold on other goals like these?" is which goals were
drawn. Resampling goals with replacement and recomputing the mean gives that spread without
assuming a distribution for the rewards (they are bounded, skewed and often piled at 0 and 1).
Intervals are percentile intervals of the resampled means (equal tails); with hundreds of goals
they agree with BCa intervals to within a fraction of a point, and they are easy to check.

Why paired: every agent plays the same goals, so goal difficulty is shared. Resampling the
per-goal differences (B's reward minus A's on the same goal) cancels it, which gives a much
narrower interval for B - A than two independent intervals would suggest. Rows and differences of
one view are computed from the *same* resampled goal lists (`bootstrap_means` on all rows at
once), so adding an agent leaves the other rows' intervals unchanged.

Why pool seeds per goal: several training seeds of one agent are one method. Each goal's value is
the mean over the seeds, and the bootstrap resamples goals of those means, so the pooled interval
holds goal noise for the seed-averaged agent; it does not resample seeds (three seeds are too few
to resample), so seed-to-seed spread is reported beside it (`seed_spread`: mean, std, min, max of
the per-seed estimates) rather than folded in.

Everything is deterministic given the seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

DEFAULT_RESAMPLES = 10_000
DEFAULT_LEVEL = 0.95
TIE_TOLERANCE = 1e-9  # |B - A| at or below this (in the values' units) counts as a tie, not a win
_CHUNK = 1_000  # resamples drawn per block (bounds memory: rows x block x goals floats)


@dataclass(frozen=True)
class Estimate:
    """A mean over goals with its bootstrap interval (``level`` equal-tailed percentile)."""

    value: float
    ci: tuple[float, float]
    level: float

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "ci": list(self.ci), "level": self.level}


@dataclass(frozen=True)
class Difference:
    """B minus A from per-goal differences resampled together.

    ``p_better`` is the share of resamples where B - A > 0; a resample with |B - A| <=
    `TIE_TOLERANCE` is a tie and counts as *not* better (its share is ``p_tie``), so
    p_better + p_tie + p_worse = 1 and identical agents get p_better 0, p_tie 1.
    ``settled`` is True when the interval excludes 0.
    """

    value: float
    ci: tuple[float, float]
    level: float
    p_better: float
    p_tie: float

    @property
    def p_worse(self) -> float:
        return max(0.0, 1.0 - self.p_better - self.p_tie)

    @property
    def settled(self) -> bool:
        return self.ci[0] > 0 or self.ci[1] < 0

    def verdict(self, a: str = "A", b: str = "B") -> str:
        """Plain words: who is ahead and whether the interval excludes 0."""
        if self.ci[0] > 0:
            return f"{b} better (settled)"
        if self.ci[1] < 0:
            return f"{a} better (settled)"
        return "not settled"

    def to_dict(self) -> dict[str, Any]:
        return {
            "value": self.value, "ci": list(self.ci), "level": self.level,
            "p_better": self.p_better, "p_tie": self.p_tie, "p_worse": self.p_worse, "settled": self.settled,
        }


def _as_rows(values: Any) -> np.ndarray:
    rows = np.asarray(values, dtype=float)
    if rows.ndim == 1:
        rows = rows[None, :]
    if rows.ndim != 2 or rows.shape[1] == 0:
        raise ValueError(f"need a non-empty (rows, goals) array of per-goal values, got shape {rows.shape}")
    if not np.all(np.isfinite(rows)):
        raise ValueError("per-goal values must be finite")
    return rows


def bootstrap_means(values: Any, resamples: int = DEFAULT_RESAMPLES, seed: int | Sequence[int] = 0) -> np.ndarray:
    """Means of ``values`` (rows x goals) over ``resamples`` resampled goal lists, shape
    (resamples, rows). Every row uses the same resampled goals (what makes differences paired),
    and the goal lists depend only on the number of goals and ``seed``, not on the rows."""
    rows = _as_rows(values)
    if resamples < 1:
        raise ValueError(f"resamples must be >= 1, got {resamples}")
    n = rows.shape[1]
    rng = np.random.default_rng(seed)
    out = np.empty((resamples, rows.shape[0]))
    for start in range(0, resamples, _CHUNK):
        size = min(_CHUNK, resamples - start)
        picks = rng.integers(0, n, size=(size, n))
        for r, row in enumerate(rows):  # row by row: a row's means are bit-identical whatever rows go with it
            out[start:start + size, r] = row[picks].mean(axis=1)
    return out


def percentile_interval(samples: Any, level: float = DEFAULT_LEVEL) -> tuple[float, float]:
    """The equal-tailed ``level`` interval of bootstrap samples."""
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    tail = 100 * (1 - level) / 2
    lo, hi = np.percentile(np.asarray(samples, float), [tail, 100 - tail])
    return float(lo), float(hi)


def estimate(values: Any, samples: Any, level: float = DEFAULT_LEVEL) -> Estimate:
    """The observed mean of ``values`` (one row) with the interval of its bootstrap ``samples``."""
    return Estimate(float(np.mean(values)), percentile_interval(samples, level), level)


def difference(a: Any, b: Any, samples_a: Any, samples_b: Any, level: float = DEFAULT_LEVEL) -> Difference:
    """B - A: observed mean difference of the per-goal values ``a``, ``b`` and its interval and
    P(better) from bootstrap means ``samples_a``, ``samples_b`` drawn on the same resampled goals."""
    diffs = np.asarray(samples_b, float) - np.asarray(samples_a, float)
    tie = np.abs(diffs) <= TIE_TOLERANCE
    return Difference(
        value=float(np.mean(b) - np.mean(a)),
        ci=percentile_interval(diffs, level),
        level=level,
        p_better=float(np.mean(~tie & (diffs > 0))),
        p_tie=float(np.mean(tie)),
    )


def mean_interval(values: Any, level: float = DEFAULT_LEVEL, resamples: int = DEFAULT_RESAMPLES, seed: int | Sequence[int] = 0) -> Estimate:
    """Mean of one list of per-goal values with its bootstrap interval."""
    row = _as_rows(values)[0]
    return estimate(row, bootstrap_means(row, resamples, seed)[:, 0], level)


def paired_difference(
    a: Any, b: Any, level: float = DEFAULT_LEVEL, resamples: int = DEFAULT_RESAMPLES, seed: int | Sequence[int] = 0,
) -> Difference:
    """B - A for per-goal values of two agents on the same goals (same order)."""
    a_arr, b_arr = np.asarray(a, float), np.asarray(b, float)
    if a_arr.ndim != 1 or a_arr.shape != b_arr.shape:
        raise ValueError(f"a and b must be per-goal values of the same goals, got shapes {a_arr.shape} and {b_arr.shape}")
    samples = bootstrap_means(np.vstack([a_arr, b_arr]), resamples, seed)
    return difference(a_arr, b_arr, samples[:, 0], samples[:, 1], level)


def pool_seeds(per_seed: Any) -> np.ndarray:
    """Per-goal means over training seeds: (seeds, goals) -> (goals,). Every seed must have run
    every goal (same order); the result is what a pooled agent's rows and pairs are computed on."""
    arr = np.asarray(per_seed, dtype=float)
    if arr.ndim == 1:
        return arr.copy()
    if arr.ndim != 2 or arr.shape[0] == 0:
        raise ValueError(f"need a (seeds, goals) array, got shape {arr.shape}")
    return arr.mean(axis=0)


def seed_spread(estimates: Sequence[float]) -> dict[str, Any]:
    """Spread of per-seed point estimates: values, mean, std (ddof 1; 0 for one seed), min, max."""
    arr = np.asarray(list(estimates), dtype=float)
    if arr.size == 0:
        raise ValueError("need at least one per-seed estimate")
    return {
        "values": arr.tolist(), "mean": float(arr.mean()), "std": float(arr.std(ddof=1)) if arr.size > 1 else 0.0,
        "min": float(arr.min()), "max": float(arr.max()),
    }


__all__ = [
    "Estimate", "Difference", "bootstrap_means", "percentile_interval", "estimate", "difference",
    "mean_interval", "paired_difference", "pool_seeds", "seed_spread", "DEFAULT_RESAMPLES", "DEFAULT_LEVEL", "TIE_TOLERANCE",
]
