"""Per-user significance of the difference between two runs (or two arms of runs) on the same test users.

The over-seeds paired t-test (analysis/stats.py) needs several seeds per arm and says whether a
difference survives training noise.  This module uses the per-user ranks every trial stores
(``ranks.parquet``: ``rank_<split>`` = 0-based rank with ties against the target, ``ties_<split>``)
and asks whether the difference between the two arms' per-user metric values is larger than the
variation between users: with one seed per arm it already says whether a difference is noise.

What is compared, exactly:
  * each trial's per-user metric values come from ``sracl_ray.training.evaluate.per_user`` under
    the trial's own tie policy (store column ``ties``; a ranks file without ``ties_*`` columns
    counts no ties);
  * an arm with several seeds is reduced to one value per user, the mean over its seeds;
  * the two arms are then paired by user: d_u = treatment_u - baseline_u.
  * **paired bootstrap**: users resampled with replacement (``N_RESAMPLES`` times, seeded), the
    mean of d over each resample; the CI is the percentile interval of those means.
  * **Wilcoxon signed-rank**: ``scipy.stats.wilcoxon(treatment, baseline)``, two-sided, zero
    differences dropped (``zero_method="wilcox"``, scipy's default); when every difference is zero
    there is nothing to rank and p = 1.
Both describe variation between users for these trained models; they say nothing about a new
training run (that is the over-seeds t-test's question).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

from analysis.methods import select, trial_ties
from analysis.stats import higher_is_better, significance_mark
from analysis.store import only_ok
from sracl_ray import metrics as M
from sracl_ray.errors import UserError

N_RESAMPLES = 10_000
HIERARCHICAL_RESAMPLES = 2_000  # each draws seeds, then users: U x S values per resample
CONFIDENCE = 0.95
BOOTSTRAP_SEED = 0
METHOD_NOTE = ("Per-user tests: each arm's per-user values averaged over its seeds, then paired over the "
               "same test users; Δ = mean over users of (first - second); CI: paired bootstrap over users "
               f"({N_RESAMPLES:,} resamples, percentile, seed {BOOTSTRAP_SEED}); p (Wilcoxon): two-sided "
               "signed-rank test over users, zero differences dropped (p = 1 when all are zero). They measure "
               "variation between users for these trained models; the over-seeds paired t-test measures "
               "variation between training runs.")


class NotComparableError(UserError):
    """The two arms were not evaluated on the same test users."""


@dataclass(frozen=True)
class PerUserResult:
    """One per-user comparison of a treatment arm against a baseline arm."""

    metric: str
    n_users: int
    n_treatment: int  # runs averaged per user in the treatment arm
    n_baseline: int
    mean_treatment: float
    mean_baseline: float
    mean_diff: float  # mean over users of treatment - baseline
    ci_low: float
    ci_high: float
    confidence: float
    n_resamples: int
    n_nonzero: int  # users whose two values differ (the ones the Wilcoxon test ranks)
    wilcoxon_statistic: float
    wilcoxon_p: float
    better: str  # "treatment" | "baseline" | "tie"
    mark: str  # from the Wilcoxon p: "**" p < 0.01, "*" p < 0.05
    # seeds and users resampled together (analysis/inference.hierarchical_bootstrap); NaN below 2 seeds per arm
    seeds_ci_low: float = math.nan
    seeds_ci_high: float = math.nan
    seeds_p: float = math.nan
    paired_seeds: bool = False

    def as_dict(self) -> dict:
        """Plain dict, for DataFrames."""
        return asdict(self)

    @property
    def ci_contains_zero(self) -> bool:
        return self.ci_low <= 0.0 <= self.ci_high


def parse_metric(metric: str) -> tuple[str, str, int]:
    """``test/hr@20`` -> ("test", "hr", 20); UserError for a metric without per-user ranks."""
    try:
        split, name, k = M.parse(metric)
    except ValueError:
        split = None
    if split not in M.SPLITS:
        raise UserError(f"metric {metric!r} has no per-user values: expected {' or '.join(f'{s}/' for s in M.SPLITS)} "
                        f"{', '.join(f'{n}@k' for n in M.NAMES)} (e.g. test/ndcg@20)")
    return split, name, k


def user_values(ranks_path: str | Path, metric: str, ties: str = "pessimistic") -> pd.Series:
    """Per-user values of ``metric`` from one trial's ranks file, indexed by user id."""
    split, _, _ = parse_metric(metric)
    path = Path(ranks_path)
    try:
        ranks = pd.read_parquet(path)
    except FileNotFoundError:
        raise UserError(f"ranks file {path} not found (moved or deleted?)") from None
    rank_col = f"rank_{split}"
    if rank_col not in ranks.columns:
        raise UserError(f"ranks file {path} has no column {rank_col} (has {', '.join(map(str, ranks.columns))})")
    values = M.from_ranks_table(ranks, split, metric, ties or "pessimistic")  # the engine's own metric code
    users = ranks["user"].to_numpy() if "user" in ranks.columns else np.arange(1, len(values) + 1)
    return pd.Series(values, index=pd.Index(users, name="user"), name=str(metric))


def paired_bootstrap_ci(diff: Sequence[float], n_resamples: int = N_RESAMPLES, confidence: float = CONFIDENCE,
                        seed: int = BOOTSTRAP_SEED) -> tuple[float, float]:
    """Percentile CI of mean(diff) with users resampled with replacement; (nan, nan) when empty."""
    d = np.asarray(diff, dtype=np.float64)
    n = d.size
    if n == 0:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    means = np.empty(n_resamples)
    chunk = max(1, (1 << 22) // n)  # resamples per draw: about 4M indices (32 MB) at a time
    for s in range(0, n_resamples, chunk):
        m = min(chunk, n_resamples - s)
        means[s:s + m] = d[rng.integers(0, n, size=(m, n), dtype=np.int32 if n < 2**31 else np.int64)].mean(axis=1)
    tail = (1.0 - confidence) / 2.0 * 100.0
    lo, hi = np.percentile(means, [tail, 100.0 - tail])
    return float(lo), float(hi)


def wilcoxon_test(treatment: Sequence[float], baseline: Sequence[float]) -> tuple[float, float, int]:
    """(statistic, two-sided p, number of non-zero differences); p = 1 when all differences are zero."""
    t = np.asarray(treatment, dtype=np.float64)
    b = np.asarray(baseline, dtype=np.float64)
    nonzero = int(np.count_nonzero(t - b))
    if nonzero == 0:
        return math.nan, 1.0, 0
    res = sps.wilcoxon(t, b, zero_method="wilcox", alternative="two-sided")
    return float(res.statistic), float(res.pvalue), nonzero


def compare_values(treatment: Sequence[float], baseline: Sequence[float], metric: str = "",
                   n_treatment: int = 1, n_baseline: int = 1, n_resamples: int = N_RESAMPLES,
                   confidence: float = CONFIDENCE, seed: int = BOOTSTRAP_SEED) -> PerUserResult:
    """Bootstrap CI and Wilcoxon test for two aligned per-user value arrays."""
    t = np.asarray(treatment, dtype=np.float64)
    b = np.asarray(baseline, dtype=np.float64)
    if t.shape != b.shape or t.ndim != 1:
        raise ValueError(f"per-user values need equal 1-d shapes, got {t.shape} and {b.shape}")
    diff = t - b
    lo, hi = paired_bootstrap_ci(diff, n_resamples, confidence, seed)
    stat, p, nonzero = wilcoxon_test(t, b)
    mean_diff = float(diff.mean()) if diff.size else math.nan
    better = "tie" if mean_diff == 0 or math.isnan(mean_diff) else (
        "treatment" if (mean_diff > 0) == higher_is_better(metric) else "baseline")
    return PerUserResult(
        metric=str(metric), n_users=int(t.size), n_treatment=int(n_treatment), n_baseline=int(n_baseline),
        mean_treatment=float(t.mean()) if t.size else math.nan,
        mean_baseline=float(b.mean()) if b.size else math.nan, mean_diff=mean_diff, ci_low=lo, ci_high=hi,
        confidence=float(confidence), n_resamples=int(n_resamples), n_nonzero=nonzero,
        wilcoxon_statistic=stat, wilcoxon_p=p, better=better, mark=significance_mark(p))


def _describe(where: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in where.items())


def check_same_users(arms: Mapping[str, pd.DataFrame]) -> None:
    """NotComparableError unless every trial of every arm is on the same data (fingerprint)."""
    if not all("data_fingerprint" in rows.columns for rows in arms.values()):
        return  # an old store: the per-user check in arm_values still compares the users
    seen = {name: sorted({str(v) for v in rows["data_fingerprint"].dropna()}) for name, rows in arms.items()}
    allfp = sorted({fp for fps in seen.values() for fp in fps})
    if len(allfp) > 1:
        shown = "; ".join(f"{name}: {', '.join(fps) or 'unknown'}" for name, fps in seen.items())
        raise NotComparableError(f"cannot compare per user: the runs were evaluated on different data "
                                 f"(data_fingerprint {shown}); per-user tests need the same test users")


def arm_matrix(rows: pd.DataFrame, metric: str, label: str, cache: dict | None = None) -> pd.DataFrame:
    """Per-user values of each of the arm's runs: users x runs (columns: each run's seed, in the rows'
    order); every run must have the same users."""
    if rows.empty:
        raise UserError(f"no ok runs for the {label} arm")
    cache = {} if cache is None else cache
    series = []
    for _, row in rows.iterrows():
        path = row.get("ranks_path")
        if not isinstance(path, str) or not path:
            raise UserError(f"trial {row.get('trial_id')} ({label}) has no ranks file: per-user tests need the "
                            f"ranks.parquet every finished trial writes")
        key = (path, metric, trial_ties(row))
        if key not in cache:
            cache[key] = user_values(path, metric, key[2])
        series.append((row.get("trial_id"), row.get("seed"), cache[key]))
    first_id, _, first = series[0]
    for tid, _, s in series[1:]:
        if len(s) != len(first) or not np.array_equal(s.index.to_numpy(), first.index.to_numpy()):
            raise NotComparableError(f"cannot compare per user: trials {first_id} ({len(first)} users) and {tid} "
                                     f"({len(s)} users) of the {label} arm were not evaluated on the same test users")
    out = pd.concat([s for _, _, s in series], axis=1)
    out.columns = [seed for _, seed, _ in series]
    return out


def arm_values(rows: pd.DataFrame, metric: str, label: str,
               cache: dict | None = None) -> tuple[pd.Series, int]:
    """(per-user values averaged over the arm's runs, number of runs); every run must have the same users."""
    m = arm_matrix(rows, metric, label, cache)
    return m.mean(axis=1), m.shape[1]


def compare_arms(df: pd.DataFrame, metric: str, treatment: Mapping[str, Any], baseline: Mapping[str, Any],
                 n_resamples: int = N_RESAMPLES, confidence: float = CONFIDENCE, seed: int = BOOTSTRAP_SEED,
                 cache: dict | None = None) -> PerUserResult:
    """Per-user comparison of the ok runs matching ``treatment`` with those matching ``baseline``.

    Refuses (NotComparableError, a UserError) when the two arms were not evaluated on the same
    test users: different data fingerprints, user counts or user ids.
    """
    parse_metric(metric)
    df = only_ok(df)
    arms = {"treatment": select(df, treatment), "baseline": select(df, baseline)}
    for name, rows in arms.items():
        if rows.empty:
            where = treatment if name == "treatment" else baseline
            raise UserError(f"per-user comparison: no ok runs match the {name} selection ({_describe(where)})")
    check_same_users(arms)
    tm = arm_matrix(arms["treatment"], metric, f"treatment ({_describe(treatment)})", cache)
    bm = arm_matrix(arms["baseline"], metric, f"baseline ({_describe(baseline)})", cache)
    t, b = tm.mean(axis=1), bm.mean(axis=1)
    if len(t) != len(b) or not np.array_equal(t.index.to_numpy(), b.index.to_numpy()):
        raise NotComparableError(f"cannot compare per user: the treatment ({_describe(treatment)}) has {len(t)} test "
                                 f"users and the baseline ({_describe(baseline)}) {len(b)}, or other user ids; "
                                 f"per-user tests need the same test users")
    res = compare_values(t.to_numpy(), b.to_numpy(), metric, tm.shape[1], bm.shape[1], n_resamples, confidence, seed)
    if min(tm.shape[1], bm.shape[1]) < 2:
        return res
    from analysis.inference import hierarchical_bootstrap

    paired = tm.columns.is_unique and bm.columns.is_unique and set(tm.columns) == set(bm.columns)
    if paired:  # row i of both arms is the same seed
        bm = bm[list(tm.columns)]
    h = hierarchical_bootstrap(tm.to_numpy().T, bm.to_numpy().T, paired_seeds=paired,
                               n_resamples=min(n_resamples, HIERARCHICAL_RESAMPLES), confidence=confidence, seed=seed)
    return dataclasses.replace(res, seeds_ci_low=h.ci_low, seeds_ci_high=h.ci_high, seeds_p=h.pvalue,
                               paired_seeds=paired)

