"""Inference that covers both sources of noise, and the corrections a report of many comparisons needs.

* ``hierarchical_bootstrap``: the difference of two arms' means when both the training run (seed)
  and the test users vary.  Each resample draws seeds with replacement (the same seed indices for
  both arms when the seeds are paired), then users with replacement (the same users for both arms:
  they are evaluated on one test set), and takes mean(treatment) - mean(baseline) over the drawn
  seeds and users.  The per-user bootstrap of analysis/significance.py conditions on the trained
  models (it keeps every seed and resamples users only), so it answers "is this difference larger
  than the spread between users, for these runs"; this one answers "would it hold for new runs".
* ``tost``: two one-sided paired t-tests for equivalence within ``±margin`` (Schuirmann 1987): a
  "no difference" claim needs p < alpha here, not p > alpha in a difference test.
* ``holm``: Holm's step-down adjustment of a family of p-values (controls the family-wise error rate
  without assuming independence).

Pure numpy/scipy; every function says what an empty or degenerate input gives (NaN, never a number
that looks like evidence).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np
from scipy import stats as sps

N_RESAMPLES = 2000
# Paired differences whose spread is below this share of their size have no spread: floating-point
# noise on equal differences (0.024 - 0.023 vs 0.021 - 0.020) would otherwise give t ~ 1e13, p = 0.
ZERO_SPREAD_RTOL = 1e-9


def zero_variance(diff) -> bool:
    """True when the paired differences are all equal (to floating-point noise), or fewer than 2:
    a paired t statistic is then undefined (0/0 or x/0), not infinitely significant."""
    d = np.asarray(diff, dtype=float)
    if d.size < 2 or not np.isfinite(d).all():
        return d.size < 2
    return float(np.ptp(d)) <= ZERO_SPREAD_RTOL * max(float(np.max(np.abs(d))), np.finfo(float).tiny)
CONFIDENCE = 0.95
SEED = 0


@dataclass(frozen=True)
class HierarchicalResult:
    mean_diff: float  # mean(treatment) - mean(baseline) over every seed and user
    ci_low: float
    ci_high: float
    pvalue: float  # two-sided bootstrap p of "no difference"
    n_seeds_treatment: int
    n_seeds_baseline: int
    n_users: int
    paired_seeds: bool
    n_resamples: int

    def as_dict(self) -> dict:
        return asdict(self)


def hierarchical_bootstrap(treatment: np.ndarray, baseline: np.ndarray, paired_seeds: bool = True,
                           n_resamples: int = N_RESAMPLES, confidence: float = CONFIDENCE,
                           seed: int = SEED) -> HierarchicalResult:
    """treatment [S_t, U], baseline [S_b, U]: per-user values, one row per seed, the same users in the
    same column order.  paired_seeds: row i of both arms shares seed i (S_t == S_b), so seeds are drawn
    together.  p = 2 * min(share of resampled differences <= 0, share >= 0), with the +1 correction,
    capped at 1.  NaN everywhere for fewer than 2 seeds per arm or no users (a single seed has no seed
    variance to resample: use the per-user bootstrap and say it conditions on that run)."""
    t = np.atleast_2d(np.asarray(treatment, dtype=np.float64))
    b = np.atleast_2d(np.asarray(baseline, dtype=np.float64))
    if t.shape[1] != b.shape[1]:
        raise ValueError(f"the arms must hold the same users: {t.shape[1]} vs {b.shape[1]} columns")
    if paired_seeds and t.shape[0] != b.shape[0]:
        raise ValueError(f"paired seeds need as many seeds per arm: {t.shape[0]} vs {b.shape[0]}")
    st, sb, u = t.shape[0], b.shape[0], t.shape[1]
    nan = math.nan
    if u == 0 or min(st, sb) < 2 or not (np.isfinite(t).all() and np.isfinite(b).all()):
        return HierarchicalResult(nan if u == 0 else float(t.mean() - b.mean()), nan, nan, nan, st, sb, u,
                                  paired_seeds, 0)
    rng = np.random.default_rng(seed)
    diffs = np.empty(n_resamples)
    for r in range(n_resamples):
        seeds_t = rng.integers(0, st, st)
        seeds_b = seeds_t if paired_seeds else rng.integers(0, sb, sb)
        users = rng.integers(0, u, u)
        diffs[r] = t[:, users].mean(axis=1)[seeds_t].mean() - b[:, users].mean(axis=1)[seeds_b].mean()
    alpha = 1.0 - confidence
    lo, hi = np.quantile(diffs, [alpha / 2, 1 - alpha / 2])
    below, above = int((diffs <= 0).sum()), int((diffs >= 0).sum())
    p = min(1.0, 2 * (min(below, above) + 1) / (n_resamples + 1))
    return HierarchicalResult(float(t.mean() - b.mean()), float(lo), float(hi), p, st, sb, u, paired_seeds,
                              n_resamples)


@dataclass(frozen=True)
class TostResult:
    mean_diff: float
    margin: float
    p_lower: float  # H0: mean diff <= -margin
    p_upper: float  # H0: mean diff >= +margin
    pvalue: float  # max of the two: equivalence is shown when it is below alpha
    n: int

    def as_dict(self) -> dict:
        return asdict(self)


def tost(treatment: Sequence[float], baseline: Sequence[float], margin: float) -> TostResult:
    """Paired equivalence test of treatment - baseline within (-margin, +margin), margin > 0 in the
    metric's units.  NaN p for fewer than 2 pairs; differences without spread give p 0 inside the
    margin and 1 outside it (the one-sided tests' limits)."""
    if not (math.isfinite(margin) and margin > 0):
        raise ValueError(f"the equivalence margin must be a positive number, got {margin!r}")
    d = np.asarray(treatment, dtype=np.float64) - np.asarray(baseline, dtype=np.float64)
    n = int(d.size)
    mean = float(d.mean()) if n else math.nan
    if n < 2 or not np.isfinite(d).all():
        return TostResult(mean, margin, math.nan, math.nan, math.nan, n)
    se = float(d.std(ddof=1)) / math.sqrt(n)
    if zero_variance(d):
        inside = -margin < mean < margin
        p = 0.0 if inside else 1.0
        return TostResult(mean, margin, p, p, p, n)
    p_lower = float(sps.t.sf((mean + margin) / se, n - 1))
    p_upper = float(sps.t.cdf((mean - margin) / se, n - 1))
    return TostResult(mean, margin, p_lower, p_upper, max(p_lower, p_upper), n)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values, in the input order.  NaN p-values (tests that could not run) stay NaN
    and do not count in the family size."""
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    m = len(ok)
    order = ok[np.argsort(p[ok], kind="stable")]
    running = 0.0
    for i, idx in enumerate(order):
        running = max(running, min(1.0, (m - i) * p[idx]))
        out[idx] = running
    return out.tolist()
