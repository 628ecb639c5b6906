"""Learning curves: the validation metric per epoch of each arm, mean ± std over seeds.

Each finished trial's ``result.json`` (written by ``fit()`` next to its ``ranks.parquet``, in
``<sweep>/trials/<trial_id>/``) holds ``history``: one dict per epoch with ``epoch``,
``train/loss`` and every ``valid/...`` metric.  At each epoch the mean and std are over the seeds
still training then (a trial stopped early by patience contributes up to its last epoch; ``n``
says how many).  Trials whose best epoch was the last one allowed (``hit_epoch_cap``) were still
improving when stopped; they are counted per arm and marked in the figure.
"""
from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from analysis.methods import EXCLUDE_SAME_USER, arm_label, backbone_order, metric_label
from analysis.store import only_ok
from analysis.tables import Cell, Table

log = logging.getLogger(__name__)

from sracl_ray.results.layout import RESULT_FILENAME, TRIALS_DIRNAME  # noqa: E402
ARM_KEYS = ("dataset", "backbone", "variant", "xsu")
MAX_TABLE_ROWS = 25


def valid_metric(metric: str) -> str:
    """The validation counterpart of a metric column: ``test/ndcg@20`` -> ``valid/ndcg@20``."""
    return "valid/" + str(metric).split("/", 1)[-1]


def result_file(row: pd.Series, storage_dir: str | Path | None = None) -> Path | None:
    """A trial's result.json: beside its ranks file, else ``<sweep>/trials/<trial_id>/``."""
    ranks = row.get("ranks_path")
    if isinstance(ranks, str) and ranks:
        p = Path(ranks).parent / RESULT_FILENAME
        if p.is_file():
            return p
    sweep = row.get("sweep_dir") if isinstance(row.get("sweep_dir"), str) else storage_dir
    if sweep and isinstance(row.get("trial_id"), str):
        p = Path(sweep) / TRIALS_DIRNAME / row["trial_id"] / RESULT_FILENAME
        if p.is_file():
            return p
    return None


def read_history(path: Path) -> list[dict]:
    """The per-epoch history of one result.json ([] when unreadable or absent)."""
    try:
        history = json.loads(path.read_text()).get("history") or []
    except (OSError, ValueError, AttributeError) as e:
        log.warning("cannot read the history in %s: %s", path, e)
        return []
    return [h for h in history if isinstance(h, dict) and "epoch" in h]


def load_curves(df: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame:
    """Long table ``[*ARM_KEYS, experiment, trial_id, seed, hit_epoch_cap, epoch, metric, value]``.

    One row per (ok trial, epoch, metric) found in the trials' histories; trials without a
    result.json (or without the metric in it) add nothing.
    """
    storage = df.attrs.get("storage_dir")
    rows = []
    for _, row in only_ok(df).iterrows():
        path = result_file(row, storage)
        if path is None:
            continue
        xsu = row.get(EXCLUDE_SAME_USER, False)
        base = {"dataset": row["dataset"], "backbone": row["backbone"], "variant": row["variant"],
                "xsu": bool(xsu) if isinstance(xsu, (bool, np.bool_)) else False,
                "experiment": row.get("experiment"), "trial_id": row.get("trial_id"), "seed": row.get("seed"),
                "hit_epoch_cap": bool(row.get("hit_epoch_cap", False))}
        for h in read_history(path):
            for m in metrics:
                v = h.get(m)
                if isinstance(v, (int, float)) and math.isfinite(float(v)):
                    rows.append(base | {"epoch": int(h["epoch"]), "metric": m, "value": float(v)})
    cols = [*ARM_KEYS, "experiment", "trial_id", "seed", "hit_epoch_cap", "epoch", "metric", "value"]
    return pd.DataFrame(rows, columns=cols)


def curve_summary(long: pd.DataFrame) -> pd.DataFrame:
    """``[*ARM_KEYS, arm, metric, epoch, mean, std, n, n_trials, n_capped, last_epoch]`` per arm and epoch.

    ``n`` = trials with a value at that epoch; ``n_trials`` / ``n_capped`` = the arm's trials and
    those of them that stopped at the epoch cap; ``last_epoch`` = the arm's longest run.
    """
    if long.empty:
        return pd.DataFrame(columns=[*ARM_KEYS, "arm", "metric", "epoch", "mean", "std", "n", "n_trials",
                                     "n_capped", "last_epoch"])
    keys = [*ARM_KEYS, "metric"]
    out = long.groupby([*keys, "epoch"], sort=True)["value"].agg(mean="mean", std="std", n="count").reset_index()
    trials = long.drop_duplicates([*keys, "trial_id"]).groupby(keys)
    per_arm = pd.DataFrame({"n_trials": trials["trial_id"].count(), "n_capped": trials["hit_epoch_cap"].sum(),
                            "last_epoch": long.groupby(keys)["epoch"].max()}).reset_index()
    out = out.merge(per_arm, on=keys, how="left")
    out["n_capped"] = out["n_capped"].astype(int)
    out["arm"] = [arm_label(b, v, x) for b, v, x in zip(out["backbone"], out["variant"], out["xsu"])]
    return out


def arm_order(summary: pd.DataFrame) -> list[str]:
    """Arms in the paper's order: backbone, then w/o CL ... SRA-CL, then the other-users runs."""
    from analysis.methods import ABLATION_ORDER

    arms = summary.drop_duplicates("arm")[["backbone", "variant", "xsu", "arm"]]
    border = {b: i for i, b in enumerate(backbone_order(arms["backbone"]))}
    vorder = {v: i for i, v in enumerate(ABLATION_ORDER)}
    arms = arms.assign(_b=arms["backbone"].map(border), _v=arms["variant"].map(vorder).fillna(len(vorder)),
                       _x=arms["xsu"].astype(int))
    return arms.sort_values(["_b", "_x", "_v", "variant"])["arm"].tolist()


def plot_curves(summary: pd.DataFrame, path: str | Path, metrics: Sequence[str]) -> Any:
    """Rows = metrics, columns = datasets; one line per arm with a ±std band; x marks capped arms' last epoch."""
    from analysis.figures import figure_legend, new_figure, save_figure

    from matplotlib.ticker import MaxNLocator

    datasets = sorted(summary["dataset"].unique())
    order = arm_order(summary)
    width = max(4.4, 7.0 / len(datasets))  # room below for a legend of long arm names
    fig, axes = new_figure(len(metrics), len(datasets), cell=(width, 3.0))
    longest = max((len(a) for a in order), default=10)
    ncols = max(1, int(width * len(datasets) * 72 / (longest * 6.5 + 40)))  # ~6.5 pt per character, small font
    for r, metric in enumerate(metrics):
        for c, dataset in enumerate(datasets):
            ax = axes[r, c]
            d = summary[(summary["dataset"] == dataset) & (summary["metric"] == metric)]
            for arm in [a for a in order if a in set(d["arm"])]:
                line = d[d["arm"] == arm].sort_values("epoch")
                x, y = line["epoch"].to_numpy(), line["mean"].to_numpy(float)
                sd = np.nan_to_num(line["std"].to_numpy(float), nan=0.0)
                (handle,) = ax.plot(x, y, label=arm, linewidth=1.2)
                ax.fill_between(x, y - sd, y + sd, alpha=0.2, color=handle.get_color(), linewidth=0)
                if int(line["n_capped"].iloc[0]):
                    ax.plot([x[-1]], [y[-1]], marker="x", markersize=8, color=handle.get_color())
            ax.set_title(dataset)
            ax.set_xlabel("epoch")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_ylabel(f"valid {metric_label(metric)}")
    figure_legend(fig, axes, ncols)
    save_figure(fig, path)
    return fig


def table_epochs(last: int, max_rows: int = MAX_TABLE_ROWS) -> list[int]:
    """Epochs shown in the Markdown table: all up to ``max_rows``, else 1-10 then evenly spaced, and the last."""
    if last <= max_rows:
        return list(range(1, last + 1))
    step = max(1, math.ceil((last - 10) / (max_rows - 11)))
    return sorted(set(range(1, 11)) | set(range(10 + step, last, step)) | {last})


def curve_table(summary: pd.DataFrame, metric: str, max_rows: int = MAX_TABLE_ROWS) -> Table:
    """One Markdown-able table per metric: epochs (rows) x arms (columns), ``mean ± std (n)``."""
    d = summary[summary["metric"] == metric]
    datasets = sorted(d["dataset"].unique())
    arms = [(ds, a) for ds in datasets for a in arm_order(d[d["dataset"] == ds])]
    multi = len(datasets) > 1
    header = [Cell("Epoch")] + [Cell(f"{ds}: {a}" if multi else a) for ds, a in arms]
    cells = {(r.dataset, r.arm, int(r.epoch)): r for r in d.itertuples(index=False)}
    rows = []
    for epoch in table_epochs(int(d["epoch"].max()) if len(d) else 0, max_rows):
        row = [Cell(str(epoch))]
        for ds, a in arms:
            r = cells.get((ds, a, epoch))
            if r is None:
                row.append(Cell("–"))
            elif r.n > 1 and not math.isnan(r.std):
                row.append(Cell(f"{r.mean:.4f} ± {r.std:.4f} ({r.n})"))
            else:
                row.append(Cell(f"{r.mean:.4f} ({r.n})"))
        rows.append(row)
    notes = ["Mean ± std over the seeds still training at that epoch (n in brackets); a seed stopped early by "
             "patience contributes up to its last epoch. Full per-epoch data: learning_curves.csv."]
    capped = d.drop_duplicates(["dataset", "arm"])
    capped = capped[capped["n_capped"] > 0]
    if not capped.empty:
        notes.append("At the epoch cap (best epoch = last allowed: still improving when stopped; x in the "
                     "figure): " + "; ".join(f"{r.dataset} {r.arm}: {r.n_capped} of {r.n_trials}"
                                            for r in capped.itertuples(index=False)) + ".")
    return Table(f"Learning curves: valid {metric_label(metric)} per epoch", header, rows, notes)
