"""Fig. 7: metrics per user-sparsity group, from the per-user ranks files of each trial.

Users are grouped by a history-length column of ``ranks.parquet`` (``train_len`` by default, the
training-sequence length; ``test_input_len`` = train_len + 1 is the other choice).  Bin semantics
for edges ``(e1, e2, ..., en)`` (integers or floats, increasing):

    group 0: length <  e1                  ("<e1")
    group 1: e1 <= length <= e2            ("e1-e2", both ends closed)
    group i: e_i <  length <= e_{i+1}      ("(e_i,e_{i+1}]", for i = 2..n-1)
    group n: length >  en                  (">en")

So the paper's edges (7, 10) give ``<7``, ``7-10`` and ``>10``: 6 -> "<7", 7 and 10 -> "7-10",
11 -> ">10".  Each group's metric is the mean over its users of the engine's own per-user credit
(sracl_ray/metrics.py), under the trial's own tie policy (``ties_<split>`` in ranks.parquet), so the
figure agrees with the tables under ``eval.ties=expected`` too.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from sracl_ray import metrics as M
from sracl_ray.errors import UserError

from sracl_ray import variants as V
from analysis.figures import figure_legend, grouped_bars, new_figure, save_figure
from analysis.methods import (
    ABLATION_ORDER, at_reference, backbone_order, method_label, metric_label, trial_ties,
)

DEFAULT_EDGES = (7, 10)
DEFAULT_METRICS = ("hr@20", "ndcg@20")
HISTORY_COLUMNS = ("train_len", "test_input_len")
RANK_COLUMNS = {s: f"rank_{s}" for s in M.SPLITS}
TIES_COLUMNS = {s: f"ties_{s}" for s in M.SPLITS}


def check_edges(edges: Sequence[float]) -> np.ndarray:
    """Edges as a strictly increasing 1-d array of at least one value."""
    try:
        e = np.asarray(edges, dtype=float)
    except (TypeError, ValueError):
        e = np.asarray([np.nan])
    if e.ndim != 1 or e.size == 0 or not np.all(np.isfinite(e)) or np.any(np.diff(e) <= 0):
        shown = ",".join(map(str, edges)) if isinstance(edges, (list, tuple)) else str(edges)
        raise UserError(f"--edges {shown!r}: sparsity edges must be finite numbers, strictly increasing and "
                        f"non-empty (e.g. 7,10)")
    return e


def bin_labels(edges: Sequence[float] = DEFAULT_EDGES) -> list[str]:
    """Group labels for ``edges``: ``["<7", "7-10", ">10"]`` for (7, 10)."""
    check_edges(edges)
    g = [f"{v:g}" for v in edges]
    labels = [f"<{g[0]}"]
    labels += [f"{g[0]}-{g[1]}"] if len(g) > 1 else []
    labels += [f"({a},{b}]" for a, b in zip(g[1:-1], g[2:])]
    return labels + [f">{g[-1]}" if len(g) > 1 else f">={g[0]}"]


def assign_groups(lengths: Sequence[float], edges: Sequence[float] = DEFAULT_EDGES) -> np.ndarray:
    """Group index of each length, with the bin semantics in the module docstring."""
    e = check_edges(edges)
    x = np.asarray(lengths, dtype=float)
    # Past e1: one group for [e1, e2], then one more per later edge that x strictly exceeds.
    later = np.searchsorted(e[1:], x, side="left")  # number of edges in e[1:] strictly below x
    return np.where(x < e[0], 0, 1 + later).astype(np.int64)


def rank_metric(ranks: np.ndarray, metric: str, ties: np.ndarray | None = None,
                policy: str = "pessimistic") -> float:
    """HR/NDCG/MRR@k over 0-based pessimistic ranks (``hr@20``; a ``test/`` prefix is ignored), with
    ``ties`` the tied counts (none: ranks without ties) and the tie policy; NaN if empty."""
    _, name, k = M.parse(metric)
    r = np.asarray(ranks, dtype=np.int64)
    if r.size == 0:
        return float("nan")
    t = np.zeros_like(r) if ties is None else np.asarray(ties, dtype=np.int64)
    return float(M.per_user(r - t, t, name, k, policy).mean())


def group_metrics(
    ranks: pd.DataFrame,
    metrics: Sequence[str] = DEFAULT_METRICS,
    edges: Sequence[float] = DEFAULT_EDGES,
    history: str = "train_len",
    split: str = "test",
    ties: str = "pessimistic",
) -> pd.DataFrame:
    """One ranks table -> ``[group, label, n_users, *metrics]``, one row per group (empty ones too)."""
    rank_col = RANK_COLUMNS[split]
    missing = [c for c in (history, rank_col) if c not in ranks.columns]
    if missing:
        raise KeyError(f"ranks table has no column(s) {missing}; has {list(ranks.columns)}")
    groups = assign_groups(ranks[history].to_numpy(), edges)
    values = {m: M.from_ranks_table(ranks, split, m, ties) for m in metrics}  # the engine's per-user credit
    rows = []
    for g, label in enumerate(bin_labels(edges)):
        sel = groups == g
        rows.append({"group": g, "label": label, "n_users": int(sel.sum())}
                    | {m: float(v[sel].mean()) if sel.any() else float("nan") for m, v in values.items()})
    return pd.DataFrame(rows)


def _ranks_files(df: pd.DataFrame) -> list[str]:
    """The rows' ranks paths; raises naming every trial whose file is unset or missing."""
    paths = df["ranks_path"].tolist() if "ranks_path" in df.columns else [None] * len(df)
    paths = [p if isinstance(p, str) and p else None for p in paths]  # None / NaN: unset
    bad = [(t, p) for t, p in zip(df["trial_id"], paths) if p is None or not Path(p).is_file()]
    if bad:
        raise FileNotFoundError("ranks file missing for trial(s): "
                                + ", ".join(f"{t} ({p or 'no ranks_path'})" for t, p in bad))
    return paths


def sparsity_summary(
    df: pd.DataFrame,
    metrics: Sequence[str] = DEFAULT_METRICS,
    edges: Sequence[float] = DEFAULT_EDGES,
    history: str = "train_len",
    split: str = "test",
    reference: Mapping[str, Any] | None = None,
    variants: Sequence[str] | None = (V.BASELINE, V.METHOD),
) -> pd.DataFrame:
    """Per (dataset, backbone, variant, group, metric): mean, std (ddof=1) and n over seeds."""
    sel = df if variants is None else df[df["variant"].isin(variants)]
    sel = at_reference(sel, reference)
    if sel.empty:
        raise ValueError(f"no runs of variants {variants} at the reference setting")
    per_trial = []
    for (_, row), path in zip(sel.iterrows(), _ranks_files(sel)):
        names = pq.read_schema(path).names  # the tie counts when the file has them, no other column
        ranks = pd.read_parquet(path, columns=[c for c in (history, RANK_COLUMNS[split], TIES_COLUMNS[split])
                                               if c in names])
        g = group_metrics(ranks, metrics, edges, history, split, trial_ties(row))
        g = g.melt(id_vars=["group", "label", "n_users"], value_vars=list(metrics),
                   var_name="metric", value_name="value")
        per_trial.append(g.assign(dataset=row["dataset"], backbone=row["backbone"],
                                  variant=row["variant"], seed=row["seed"]))
    long = pd.concat(per_trial, ignore_index=True)
    keys = ["dataset", "backbone", "variant", "group", "label", "metric"]
    out = long.groupby(keys, sort=True).agg(
        mean=("value", "mean"), std=("value", "std"), n=("value", "count"),
        n_users=("n_users", "mean")).reset_index()
    out["method"] = [method_label(b, v) for b, v in zip(out["backbone"], out["variant"])]
    return out


def plot_sparsity(summary: pd.DataFrame, path: str | Path,
                  metrics: Sequence[str] | None = None) -> Any:
    """Fig. 7: per dataset (columns) and metric (rows), bars = methods grouped by user group."""
    metrics = list(metrics or dict.fromkeys(summary["metric"]))
    datasets = sorted(summary["dataset"].unique())
    labels = summary.sort_values("group").drop_duplicates("group")["label"].tolist()
    fig, axes = new_figure(len(metrics), len(datasets), cell=(4.2, 2.8))
    for r, metric in enumerate(metrics):
        for c, dataset in enumerate(datasets):
            d = summary[(summary["dataset"] == dataset) & (summary["metric"] == metric)]
            series = {}
            present = set(d["variant"])
            for v in [v for v in ABLATION_ORDER if v in present] + sorted(present - set(ABLATION_ORDER)):
                for b in backbone_order(d["backbone"]):
                    m = d[(d["backbone"] == b) & (d["variant"] == v)].set_index("label")
                    if not m.empty:
                        series[method_label(b, v)] = (m["mean"].reindex(labels).tolist(),
                                                      m["std"].reindex(labels).tolist())
            grouped_bars(axes[r, c], labels, series)
            axes[r, c].set_title(dataset)
            axes[r, c].set_ylabel(metric_label(metric))
            axes[r, c].set_xlabel("user history length")
    figure_legend(fig, axes)
    save_figure(fig, path)
    return fig
