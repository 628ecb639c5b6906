"""Gain by composition: the per-user difference of two arms against who a user's L_CS neighbours are.

For each test user, the share of its training prefixes' top-k neighbours (the artifact's table, k =
the trials' cl.k_user) that are its own other prefixes (``same_user``) or its own *longer*
prefixes (``longer_same_user``: they hold the prefix's training target).  Users are binned by that
share; per bin the figure shows the mean over users of (treatment - baseline), each arm's per-user
value first averaged over its seeds (analysis/significance.arm_values: the engine's own metric and
tie policy), with the standard error over the bin's users.  If SRA-CL's gain rose with the share of
target-holding prefixes, the gain would be a glimpse of the target rather than cross-user signal.

The shares come from the artifact the treatment's runs used (store column ``semantic_source``);
when it is not at hand (another machine, a cache since deleted) the panel is skipped and the report
says why.  Pure pandas/numpy apart from the plot.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from sracl_ray.errors import UserError

SHARES = ("same_user", "longer_same_user")
DEFAULT_BINS = (0.0, 0.25, 0.5, 0.75, 1.0)
SHARE_LABELS = {"same_user": "share of neighbours: own prefixes",
                "longer_same_user": "share of neighbours: own longer prefixes (hold the target)"}


def user_shares(unit_nbrs: np.ndarray, units: pd.DataFrame, k: int) -> pd.DataFrame:
    """[users] per user the mean over its units with text of the share of its top-k neighbours that
    are its own units (same_user) and its own longer units (longer_same_user); index: user id."""
    from sracl_ray.semantic.composition import excluded_pairs, textless_rows

    nbrs = np.asarray(unit_nbrs, np.int64)[:, :k]
    user, length = units["user"].to_numpy(np.int64), units["length"].to_numpy(np.int64)
    if len(nbrs) != len(user):
        raise UserError(f"the neighbour table has {len(nbrs)} rows, the units frame {len(user)}")
    keep = ~textless_rows(np.asarray(unit_nbrs, np.int64))
    rows = np.arange(len(nbrs))  # the pairs semantic.exclude would leave out are exactly these shares
    same = excluded_pairs(nbrs, rows, user, length, "same_user")
    longer = excluded_pairs(nbrs, rows, user, length, "longer_same_user")
    frame = pd.DataFrame({"user": user, "same_user": same.mean(1), "longer_same_user": longer.mean(1)})[keep]
    return frame.groupby("user")[list(SHARES)].mean()


def bin_label(lo: float, hi: float, last: bool) -> str:
    return f"[{lo:g}, {hi:g}{']' if last else ')'}"


def gain_by_share(diff: pd.Series, shares: pd.DataFrame, share: str,
                  bins: Sequence[float] = DEFAULT_BINS) -> pd.DataFrame:
    """Per bin of ``shares[share]`` (closed on the left, the last bin closed on both ends): n_users, the
    mean of ``diff`` (a per-user Series indexed by user) and its standard error (NaN below 2 users).
    Users without a share (no unit with text) are left out."""
    edges = np.asarray(bins, float)
    if edges.ndim != 1 or len(edges) < 2 or np.any(np.diff(edges) <= 0):
        raise UserError(f"composition bins must be increasing, at least two edges; got {list(bins)}")
    joined = pd.concat([diff.rename("diff"), shares[share]], axis=1, join="inner").dropna()
    idx = np.clip(np.searchsorted(edges, joined[share].to_numpy(), side="right") - 1, 0, len(edges) - 2)
    inside = (joined[share].to_numpy() >= edges[0]) & (joined[share].to_numpy() <= edges[-1])
    rows = []
    for b in range(len(edges) - 1):
        d = joined["diff"].to_numpy()[(idx == b) & inside]
        rows.append({"share": share, "bin": b, "label": bin_label(edges[b], edges[b + 1], b == len(edges) - 2),
                     "n_users": int(len(d)), "mean_diff": float(d.mean()) if len(d) else float("nan"),
                     "se": float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else float("nan")})
    return pd.DataFrame(rows)


def composition_gain(df: pd.DataFrame, metric: str, treatment: Mapping[str, Any], baseline: Mapping[str, Any],
                     k: int, artifact: str | Path | None = None, bins: Sequence[float] = DEFAULT_BINS) -> pd.DataFrame:
    """gain_by_share for both shares, the treatment minus the baseline per user (means over seeds)."""
    from analysis.methods import select
    from analysis.significance import arm_values
    from analysis.store import only_ok
    from sracl_ray.semantic.artifact import load_artifact

    df = only_ok(df)
    t_rows, b_rows = select(df, treatment), select(df, baseline)
    t, _ = arm_values(t_rows, metric, "treatment")
    b, _ = arm_values(b_rows, metric, "baseline")
    if not np.array_equal(t.index.to_numpy(), b.index.to_numpy()):
        raise UserError("the two arms were not evaluated on the same test users")
    if artifact is None:
        sources = sorted({str(s) for s in t_rows.get("semantic_source", pd.Series(dtype=object)).dropna()})
        if len(sources) != 1:
            raise UserError(f"the treatment's runs name {len(sources)} semantic artifacts ({', '.join(sources)}); "
                            f"the panel needs exactly one")
        artifact = sources[0]
    if not Path(artifact).is_dir():
        raise UserError(f"semantic artifact {artifact} is not here (built on another machine, or deleted)")
    art = load_artifact(artifact)
    shares = user_shares(art.unit_nbrs, art.units, k)
    diff = t - b
    return pd.concat([gain_by_share(diff, shares, s, bins) for s in SHARES], ignore_index=True)


def plot_composition_gain(summary: pd.DataFrame, path: str | Path, metric: str, title: str) -> Any:
    """One panel per share: mean per-user difference per bin, ± one standard error, users per bin."""
    from analysis.figures import new_figure, save_figure

    fig, axes = new_figure(1, len(SHARES), cell=(4.4, 3.0))
    for ax, share in zip(axes[0], SHARES):
        part = summary[summary["share"] == share]
        x = np.arange(len(part))
        ax.errorbar(x, part["mean_diff"], yerr=part["se"].fillna(0), fmt="o-", capsize=3)
        ax.axhline(0.0, color="grey", lw=0.8)
        ax.set_xticks(x, [f"{lab}\nn={n}" for lab, n in zip(part["label"], part["n_users"])], fontsize=7)
        ax.set_xlabel(SHARE_LABELS[share], fontsize=8)
        ax.set_ylabel(f"Δ {metric} per user", fontsize=8)
    fig.suptitle(title, fontsize=9)
    save_figure(fig, path)
    return fig
