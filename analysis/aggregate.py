"""Mean ± std over seeds per group of settings, for any metric columns."""
from __future__ import annotations

import logging
from typing import Sequence

import pandas as pd

from analysis.store import only_ok, require_columns

log = logging.getLogger(__name__)

# What identifies one configuration; the seed is what varies inside a group.
DEFAULT_KEYS = ("dataset", "backbone", "variant", "alpha", "beta", "k", "mask_history", "max_len")
METHOD_KEYS = ("dataset", "backbone", "variant")


def aggregate(
    df: pd.DataFrame, metrics: Sequence[str], keys: Sequence[str] = DEFAULT_KEYS
) -> pd.DataFrame:
    """Long table ``[*keys, metric, mean, std, n, n_seeds]``; std is the sample std (ddof=1).

    Only trials whose status is ok count; runs without a value for a metric are left out of that
    metric's group; NaN keys form groups of their own; ``std`` is NaN for a single run.
    """
    keys, metrics = list(keys), list(metrics)
    require_columns(df, [*keys, *metrics, "seed"])
    df = only_ok(df)
    long = df.melt(id_vars=[*keys, "seed"], value_vars=metrics, var_name="metric", value_name="value")
    long = long.dropna(subset=["value"])
    long["value"] = long["value"].astype(float)
    grouped = long.groupby([*keys, "metric"], dropna=False, sort=True)
    out = grouped["value"].agg(mean="mean", std="std", n="count")
    out["n_seeds"] = grouped["seed"].nunique()
    out = out.reset_index()
    dup = out[out["n"] != out["n_seeds"]]
    if not dup.empty:
        log.warning("%d group(s) hold several runs with the same seed; all are averaged: %s",
                    len(dup), dup[[*keys, "metric"]].head(5).to_dict("records"))
    return out


def lookup(agg: pd.DataFrame, metric: str, **where: object) -> pd.Series:
    """The one aggregated row for ``metric`` and ``where``; raises when none or several match."""
    mask = agg["metric"] == metric
    for col, value in where.items():
        mask &= agg[col] == value
    rows = agg[mask]
    if len(rows) != 1:
        raise LookupError(f"{len(rows)} aggregated rows for metric={metric} {where} (expected 1)")
    return rows.iloc[0]
