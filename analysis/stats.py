"""Paired t-tests between two methods, pairing runs by (dataset, seed).

Direction matters: ``scipy.stats.ttest_rel(a, b, alternative="greater")`` tests H1: mean(a - b) > 0.
We always pass (treatment, baseline) in that order, so the one-sided test of "treatment is better"
uses ``"greater"`` for higher-is-better metrics (HR, NDCG, MRR) and ``"less"`` for losses.  (RecBole's
``alternative="less"`` with the same argument order tests the opposite hypothesis.)
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

from analysis.inference import zero_variance
from analysis.methods import select
from sracl_ray import metrics as M
from analysis.store import only_ok, require_columns

PAIR_KEYS = ("dataset", "seed")
# (threshold, mark), strictest first: p < 0.01 -> "**", p < 0.05 -> "*".
SIGNIFICANCE_LEVELS = ((0.01, "**"), (0.05, "*"))


class UnmatchedSeedsError(ValueError):
    """Treatment and baseline runs do not pair up one-to-one on (dataset, seed)."""

    def __init__(self, message: str, missing_baseline: list, missing_treatment: list,
                 duplicated: list) -> None:
        super().__init__(message)
        self.missing_baseline = missing_baseline  # pairs the treatment has and the baseline lacks
        self.missing_treatment = missing_treatment  # pairs the baseline has and the treatment lacks
        self.duplicated = duplicated  # pairs with several runs, or no metric value, on one side


@dataclass(frozen=True)
class TTestResult:
    """One paired comparison; ``better`` is which side has the better mean for this metric."""

    metric: str
    n: int
    mean_treatment: float
    mean_baseline: float
    mean_diff: float  # mean of treatment - baseline
    statistic: float
    pvalue: float
    alternative: str
    better: str  # "treatment" | "baseline" | "tie"
    improvement_pct: float
    mark: str

    def as_dict(self) -> dict:
        """Plain dict, for DataFrames."""
        return asdict(self)


def higher_is_better(metric: str) -> bool:
    """True for ranking metrics (HR, NDCG, MRR, ...); False for losses (sracl_ray/metrics.py)."""
    return M.higher_is_better(metric)


def one_sided_alternative(metric: str) -> str:
    """scipy ``alternative`` for H1 "treatment better", given (treatment, baseline) order."""
    return "greater" if higher_is_better(metric) else "less"


def significance_mark(p: float, levels: Sequence[tuple[float, str]] = SIGNIFICANCE_LEVELS) -> str:
    """``**`` for p < 0.01, ``*`` for p < 0.05, else ``""`` (NaN gives ``""``)."""
    if p is None or math.isnan(p):
        return ""
    for threshold, mark in sorted(levels):
        if p < threshold:
            return mark
    return ""


def improvement_pct(treatment_mean: float, baseline_mean: float, higher_better: bool = True) -> float:
    """Relative improvement of treatment over baseline in %, positive when treatment is better."""
    if baseline_mean == 0 or math.isnan(baseline_mean):
        return math.nan
    rel = (treatment_mean - baseline_mean) / abs(baseline_mean) * 100.0
    return rel if higher_better else -rel


def _fmt_pairs(pairs: list[tuple]) -> str:
    """``(beauty, 3), (beauty, 4)``."""
    return ", ".join("(" + ", ".join(str(v) for v in p) + ")" for p in pairs)


def _keys(rows: pd.DataFrame, on: list[str]) -> list[tuple]:
    """The rows' pairing keys as tuples."""
    return [tuple(r) for r in rows[on].itertuples(index=False)]


def pair_runs(
    df: pd.DataFrame,
    metric: str,
    treatment: Mapping[str, Any],
    baseline: Mapping[str, Any],
    on: Sequence[str] = PAIR_KEYS,
) -> pd.DataFrame:
    """``[*on, treatment, baseline]``, one row per pair; raises UnmatchedSeedsError naming gaps.

    Nothing is dropped silently: a (dataset, seed) present on one side only, several runs for
    one key on one side, or a run without a value for ``metric`` is an error listing the keys.
    """
    on = list(on)
    require_columns(df, [*on, metric])
    df = only_ok(df)
    sides = {}
    for name, where in (("treatment", treatment), ("baseline", baseline)):
        rows = select(df, where)
        if rows.empty:
            raise UnmatchedSeedsError(f"no runs match the {name} selection {dict(where)}", [], [], [])
        sides[name] = rows[[*on, metric]].rename(columns={metric: name})
    t_keys, b_keys = (set(_keys(s, on)) for s in sides.values())
    missing_b, missing_t = sorted(t_keys - b_keys, key=str), sorted(b_keys - t_keys, key=str)
    dup = sorted({k for s in sides.values() for k in _keys(s[s.duplicated(on, keep=False)], on)},
                 key=str)
    no_value = sorted({k for n, s in sides.items() for k in _keys(s[s[n].isna()], on)}, key=str)
    if missing_b or missing_t or dup or no_value:
        msg = [f"cannot pair {dict(treatment)} with {dict(baseline)} on {tuple(on)} for {metric}:"]
        if missing_b:
            msg.append(f"baseline has no run for {_fmt_pairs(missing_b)}")
        if missing_t:
            msg.append(f"treatment has no run for {_fmt_pairs(missing_t)}")
        if dup:
            msg.append(f"several runs on one side for {_fmt_pairs(dup)} "
                       "(narrow the selection, e.g. by alpha/beta/k)")
        if no_value:
            msg.append(f"no {metric} value for {_fmt_pairs(no_value)}")
        raise UnmatchedSeedsError("; ".join(msg), missing_b, missing_t, dup + no_value)
    return sides["treatment"].merge(sides["baseline"], on=on, how="inner").sort_values(on)


def paired_ttest(
    treatment: Sequence[float],
    baseline: Sequence[float],
    metric: str = "",
    alternative: str = "two-sided",
) -> TTestResult:
    """``scipy.stats.ttest_rel(treatment, baseline, alternative=...)`` plus direction and marks.
    Undefined (statistic and p NaN, no mark) for fewer than 2 pairs or differences without spread."""
    t = np.asarray(treatment, dtype=float)
    b = np.asarray(baseline, dtype=float)
    if t.shape != b.shape or t.ndim != 1:
        raise ValueError(f"paired samples need equal 1-d shapes, got {t.shape} and {b.shape}")
    hib = higher_is_better(metric)
    diff = float(np.mean(t - b)) if t.size else math.nan
    if t.size >= 2 and not zero_variance(t - b):
        res = sps.ttest_rel(t, b, alternative=alternative)
        stat, p = float(res.statistic), float(res.pvalue)
    else:  # one pair, or differences without spread (identical, or all equal): t is undefined
        stat, p = math.nan, math.nan
    better = "tie" if diff == 0 or math.isnan(diff) else (
        "treatment" if (diff > 0) == hib else "baseline")
    mt, mb = float(np.mean(t)) if t.size else math.nan, float(np.mean(b)) if b.size else math.nan
    return TTestResult(
        metric=metric, n=int(t.size), mean_treatment=mt, mean_baseline=mb, mean_diff=diff,
        statistic=stat, pvalue=p, alternative=alternative, better=better,
        improvement_pct=improvement_pct(mt, mb, hib), mark=significance_mark(p),
    )


def min_detectable_difference(diff: Sequence[float], alpha: float = 0.05, power: float = 0.8) -> float:
    """The smallest true mean difference a two-sided paired t-test at level ``alpha`` detects with
    probability ``power``, given the spread of the observed paired differences:
    (t_{1-alpha/2, n-1} + t_{power, n-1}) * sd(diff) / sqrt(n).  nan below 2 pairs.

    Over seeds, n is the number of seed pairs; over users (the per-user tests), n is the number of
    test users and the t quantiles are the normal ones in effect.
    """
    d = np.asarray(diff, dtype=float)
    d = d[np.isfinite(d)]
    if d.size < 2:
        return math.nan
    q = sps.t.ppf(1 - alpha / 2, d.size - 1) + sps.t.ppf(power, d.size - 1)
    return float(q * d.std(ddof=1) / math.sqrt(d.size))


def compare(
    df: pd.DataFrame,
    metric: str,
    treatment: Mapping[str, Any],
    baseline: Mapping[str, Any],
    by: str | None = "dataset",
    one_sided: bool = False,
) -> pd.DataFrame:
    """One paired t-test per ``by`` value (or one pooled test if None); two-sided by default."""
    pairs = pair_runs(df, metric, treatment, baseline)
    alternative = one_sided_alternative(metric) if one_sided else "two-sided"
    groups = pairs.groupby(by, sort=True) if by else [(None, pairs)]
    rows = []
    for value, g in groups:
        res = paired_ttest(g["treatment"], g["baseline"], metric, alternative).as_dict()
        rows.append(({by: value} if by else {}) | res)
    return pd.DataFrame(rows)
