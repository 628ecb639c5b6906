"""Figures 4-6: each backbone with and without SRA-CL (grouped bars), metric vs alpha/beta and vs k
(lines).  Bars and points are means over seeds; error bars are the sample std over seeds (none
for a single seed).  Every function returns the Figure and writes a PNG atomically.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from sracl_ray import variants as V
from analysis.aggregate import METHOD_KEYS, aggregate
from analysis.methods import (
    at_reference, backbone_name, backbone_order, method_name, metric_label, resolve_reference,
)
from analysis.tables import FOCUS_METRICS

SRACL_VARIANTS = (V.BASELINE, V.METHOD)


def new_figure(
    nrows: int, ncols: int, cell: tuple[float, float] = (3.6, 2.8)
) -> tuple[Any, np.ndarray]:
    """A (Figure, 2-d array of Axes) on the Agg backend, outside pyplot's global figure list."""
    import matplotlib
    matplotlib.use("Agg")  # headless; set here, not at import, so importing analysis is free
    from matplotlib.figure import Figure

    fig = Figure(figsize=(cell[0] * ncols, cell[1] * nrows), layout="constrained")
    axes = np.atleast_2d(fig.subplots(nrows, ncols, squeeze=False))
    return fig, axes


def save_figure(fig: Any, path: str | Path, dpi: int = 120) -> Path:
    """Write ``fig`` as PNG via a temp file + rename, so readers never see half a file."""
    from sracl_ray.manifest import atomic_write  # the one atomic writer: follows the user's umask

    path = Path(path)
    atomic_write(path, lambda p: fig.savefig(p, format="png", dpi=dpi))
    return path


def _err(std: Sequence[float]) -> np.ndarray:
    """Std with NaN (single seed) drawn as no error bar."""
    return np.nan_to_num(np.asarray(std, dtype=float), nan=0.0)


def grouped_bars(ax: Any, categories: Sequence[str], series: Mapping[str, tuple[list, list]]) -> None:
    """Bars grouped by category, one labelled BarContainer per series, std error bars."""
    x = np.arange(len(categories))
    width = 0.8 / max(len(series), 1)
    for i, (label, (means, stds)) in enumerate(series.items()):
        offset = (i - (len(series) - 1) / 2) * width
        ax.bar(x + offset, np.asarray(means, dtype=float), width, yerr=_err(stds), capsize=3,
               label=label)
    ax.set_xticks(x, list(categories))


def figure_legend(fig: Any, axes: np.ndarray, ncols: int | None = None) -> None:
    """One legend below the panels, with every label used in any panel once (``ncols`` default: up to 4)."""
    seen: dict[str, Any] = {}
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(label, handle)
    if seen:
        fig.legend(list(seen.values()), list(seen), loc="outside lower center",
                   ncols=min(len(seen), ncols or 4), fontsize="small")


def _cell(agg: pd.DataFrame, metric: str, **where: Any) -> tuple[float, float]:
    """(mean, std) of one aggregated cell, NaNs when absent."""
    m = agg["metric"] == metric
    for col, value in where.items():
        m &= agg[col] == value
    rows = agg[m]
    return (float(rows["mean"].iloc[0]), float(rows["std"].iloc[0])) if len(rows) else (
        np.nan, np.nan)


def plot_model_agnostic(
    df: pd.DataFrame,
    path: str | Path,
    metrics: Sequence[str] = FOCUS_METRICS,
    reference: Mapping[str, Any] | None = None,
) -> Any:
    """Fig. 4: per dataset (columns) and metric (rows), each backbone alone vs ``+SRA-CL``."""
    df = at_reference(df[df["variant"].isin(SRACL_VARIANTS)], reference)
    if df.empty:
        raise ValueError("Fig. 4 needs runs with variant 'no_cl' or 'full' at the reference setting")
    agg = aggregate(df, metrics, METHOD_KEYS)
    datasets = sorted(agg["dataset"].unique())
    backbones = backbone_order(agg["backbone"])
    fig, axes = new_figure(len(metrics), len(datasets))
    for r, metric in enumerate(metrics):
        for c, dataset in enumerate(datasets):
            ax = axes[r, c]
            series = {}
            for variant, label in ((V.BASELINE, "original"), (V.METHOD, "+SRA-CL")):
                cells = [_cell(agg, metric, dataset=dataset, backbone=b, variant=variant)
                         for b in backbones]
                series[label] = ([m for m, _ in cells], [s for _, s in cells])
            grouped_bars(ax, [backbone_name(b) for b in backbones], series)
            ax.set_title(dataset)
            ax.set_ylabel(metric_label(metric))
    figure_legend(fig, axes)
    save_figure(fig, path)
    return fig


def _varied(agg: pd.DataFrame, param: str) -> pd.DataFrame:
    """Aggregated rows of the (dataset, backbone) groups that have two or more ``param`` values."""
    agg = agg[agg[param].notna()]
    n = agg.groupby(["dataset", "backbone"])[param].transform("nunique")
    return agg[n >= 2]


def hparam_values(
    df: pd.DataFrame, param: str, reference: Mapping[str, Any] | None = None
) -> list:
    """Values of ``param`` in full runs of (dataset, backbone)s that have two or more of them.

    Other settings stay at the reference; ``[]`` means there is no curve to draw.
    """
    if param not in df.columns:
        return []
    rows = at_reference(df[df["variant"] == V.METHOD], reference, ignore=(param,))
    rows = _varied(rows[[*METHOD_KEYS, param]].drop_duplicates(), param)
    return sorted(rows[param].unique().tolist())


def plot_hparam(
    df: pd.DataFrame,
    path: str | Path,
    params: Sequence[str] = ("alpha", "beta"),
    metrics: Sequence[str] = FOCUS_METRICS,
    reference: Mapping[str, Any] | None = None,
) -> Any:
    """Figs. 5/6: rows (param, metric), columns datasets, one line per backbone with SRA-CL.

    Only ``full`` runs; the plotted param varies, every other setting stays at the reference;
    a backbone with a single value of the param on a dataset draws no line there.
    x positions are the sorted distinct values, evenly spaced and labelled with the value.
    """
    ref = resolve_reference(df, reference)
    full = df[df["variant"] == V.METHOD]
    panels = [(p, m, _varied(aggregate(at_reference(full, ref, ignore=(p,)), [m],
                                       [*METHOD_KEYS, p]), p))
              for p in params for m in metrics]
    datasets = sorted(set().union(*(set(agg["dataset"]) for _, _, agg in panels)))
    if not datasets:
        raise ValueError(f"no backbone has two or more values of {list(params)} at the reference")
    fig, axes = new_figure(len(panels), len(datasets))
    for r, (param, metric, agg) in enumerate(panels):
        values = sorted(agg[param].unique().tolist())
        for c, dataset in enumerate(datasets):
            ax = axes[r, c]
            d = agg[agg["dataset"] == dataset]
            for b in backbone_order(d["backbone"]):
                line = d[d["backbone"] == b].sort_values(param)
                x = [values.index(v) for v in line[param]]
                ax.errorbar(x, line["mean"].to_numpy(float), yerr=_err(line["std"]), marker="o",
                            capsize=3, label=method_name(b, V.METHOD))
            ax.set_xticks(range(len(values)), [f"{v:g}" for v in values])
            ax.set_xlabel(param)
            ax.set_ylabel(metric_label(metric))
            ax.set_title(dataset)
    figure_legend(fig, axes)
    save_figure(fig, path)
    return fig

