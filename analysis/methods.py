"""Which store rows make up a method, what it is called, and the reference setting tables use.

A *method* is a (backbone, variant) pair.  Each variant only depends on some hyperparameters
(``no_cl`` trains no contrastive loss, so its alpha/beta/k are irrelevant however they were
recorded), so "the runs at the reference setting" compares only the settings a variant uses.
"""
from __future__ import annotations

import logging
import math
from typing import Any, Callable, Iterable, Mapping

import numpy as np
import pandas as pd

from analysis.store import MissingColumnError, only_ok
from sracl_ray import variants as V

log = logging.getLogger(__name__)

BACKBONE_NAMES = {"gru4rec": "GRU4Rec", "sasrec": "SASRec", "duorec": "DuoRec"}
BACKBONE_ORDER = ("gru4rec", "sasrec", "duorec")
# Every variant fact (order, labels, hyperparameters, neighbour use) is sracl_ray/variants.py's.
ABLATION_ORDER = V.TABLE_ORDER  # Table 3 column order, as in the paper
VARIANT_LABELS = {n: v.label for n, v in V.VARIANTS.items()}
VARIANT_LATEX = {n: v.latex for n, v in V.VARIANTS.items() if v.latex}
HPARAMS = ("alpha", "beta", "k")
# Settings every variant depends on.
COMMON_SETTINGS = ("mask_history", "max_len")
# Hyperparameters each variant actually uses; unknown variants use all of them.
VARIANT_HPARAMS = {n: v.hparams for n, v in V.VARIANTS.items()}
SRACL_SUFFIX = "+SRA-CL"
# L_CS neighbour pools drawn from other users only (semantic.exclude_same_user).  The paper's setting
# (false) is the default reference, so tables compare like with like; per-user tests and learning
# curves show the `true` runs as arms of their own.  Rows written before the key existed ran false.
EXCLUDE_SAME_USER = "cfg.semantic.exclude_same_user"
OTHER_USERS_SUFFIX = " [other users' neighbours]"
# The L_CS neighbour table (semantic.neighbours): the artifact's ("semantic", the method and the default
# reference) or a non-semantic control; control runs are arms of their own, never reference rows.
NEIGHBOUR_TABLE = "cfg.semantic.neighbours"
SEMANTIC = "semantic"
# semantic.exclude=longer_same_user (only the user's longer prefixes, which hold the target, left out of
# the L_CS pools) is such a control too; exclude=same_user is read as exclude_same_user=true
# (analysis/store.canonical_settings), so one column says "other users only".  And the L_IS item table
# (semantic.item_neighbours: random, cooccurrence).
EXCLUDE = "cfg.semantic.exclude"
NO_EXCLUSION = "none"
ITEM_TABLE = "cfg.semantic.item_neighbours"
UNIT_POOL = "cfg.semantic.unit_pool"  # release: the authors' leaky pool, an arm of its own
# Every control setting: its column -> (the method's value, the arm label's mark of each other value).
CONTROLS: dict[str, tuple[str, Callable[[str], str]]] = {
    NEIGHBOUR_TABLE: (SEMANTIC, lambda v: f" [{v} neighbours]"),
    EXCLUDE: (NO_EXCLUSION, lambda v: {"longer_same_user": " [no longer same-user prefixes]"}.get(v, f" [{v}]")),
    ITEM_TABLE: (SEMANTIC, lambda v: f" [{v} item neighbours]"),
    UNIT_POOL: ("train", lambda v: f" [{v} unit pool]"),
}
# The variants that read the unit neighbours (L_CS); for no_cl and no_cs the key changes nothing, so
# their `true` runs repeat their `false` runs (experiments/ablation.yaml) and are not arms of their own.
NEIGHBOUR_VARIANTS = tuple(n for n, v in V.VARIANTS.items() if v.reads_unit_neighbours)


def trial_ties(row: Mapping[str, Any]) -> str:
    """The tie policy a trial's metrics were computed with (store column ``ties``, else its config)."""
    for col in ("ties", "cfg.eval.ties"):
        v = row.get(col)
        if isinstance(v, str) and v:
            return v
    return "pessimistic"


def backbone_name(backbone: str) -> str:
    """Display name of a backbone (``sasrec`` -> ``SASRec``)."""
    return BACKBONE_NAMES.get(str(backbone), str(backbone))


def method_name(backbone: str, variant: str) -> str:
    """Backbone name, plus ``+SRA-CL`` unless the variant is ``no_cl``."""
    return backbone_name(backbone) + ("" if variant == V.BASELINE else SRACL_SUFFIX)


def method_label(backbone: str, variant: str) -> str:
    """``method_name`` plus the ablation in brackets, so every (backbone, variant) is distinct."""
    extra = "" if variant in (V.METHOD, V.BASELINE) else f" ({VARIANT_LABELS.get(variant, variant)})"
    return method_name(backbone, variant) + extra


def arm_label(backbone: str, variant: str, exclude_same_user: Any = False,
              controls: Mapping[str, Any] | None = None) -> str:
    """``method_label`` plus a mark for runs whose L_CS neighbours exclude the user's own prefixes, and
    one per control setting (CONTROLS: column -> value) away from the method's value."""
    xsu = not _is_missing(exclude_same_user) and bool(exclude_same_user)
    marks = "".join(mark(str(v)) for col, (plain, mark) in CONTROLS.items()
                    if not _is_missing(v := (controls or {}).get(col, plain)) and v != plain)
    return method_label(backbone, variant) + (OTHER_USERS_SUFFIX if xsu else "") + marks


def without_repeated_arms(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` less the exclude_same_user and neighbour-control runs of variants that read no unit
    neighbours (repeats of their plain runs)."""
    changed = pd.Series(False, index=df.index)
    if EXCLUDE_SAME_USER in df.columns:
        changed |= df[EXCLUDE_SAME_USER].fillna(False).astype(bool)
    for col, (plain, _) in CONTROLS.items():
        if col in df.columns:
            changed |= df[col].fillna(plain) != plain
    return df[~(changed & ~df["variant"].isin(NEIGHBOUR_VARIANTS))]


def metric_label(metric: str) -> str:
    """Display name of a metric column (``test/ndcg@20`` -> ``NDCG@20``)."""
    name = str(metric).split("/", 1)[-1]
    head, _, k = name.partition("@")
    return head.upper() + (f"@{k}" if k else "")


def backbone_order(backbones: Iterable[str]) -> list[str]:
    """Backbones in the paper's order (GRU4Rec, SASRec, DuoRec), then any others sorted."""
    present = set(backbones)
    known = [b for b in BACKBONE_ORDER if b in present]
    return known + sorted(present - set(BACKBONE_ORDER))


def _is_missing(value: Any) -> bool:
    """True for None and float NaN."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def match(series: pd.Series, value: Any) -> pd.Series:
    """Boolean mask of ``series == value``; floats compared with isclose, NaN matches NaN."""
    if _is_missing(value):
        return series.isna()
    is_num = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_)
    )
    if is_num and pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        vals = series.astype(float).to_numpy()
        return pd.Series(np.isclose(vals, float(value)) & ~np.isnan(vals), index=series.index)
    return series == value


def match_all(df: pd.DataFrame, where: Mapping[str, Any]) -> pd.Series:
    """Boolean mask of the rows whose columns equal every value in ``where``."""
    mask = pd.Series(True, index=df.index)
    for col, value in where.items():
        if col not in df.columns:
            raise MissingColumnError(f"cannot select on {col!r}: not a column of the results store")
        mask &= match(df[col], value)
    return mask


def select(df: pd.DataFrame, where: Mapping[str, Any]) -> pd.DataFrame:
    """Rows whose columns equal ``where`` (e.g. ``{"backbone": "sasrec", "variant": "full"}``)."""
    return df[match_all(df, where)]


def relevant_settings(variant: str) -> tuple[str, ...]:
    """Settings that change what a variant trains (its hyperparameters plus the common ones)."""
    return tuple(VARIANT_HPARAMS.get(str(variant), HPARAMS)) + COMMON_SETTINGS


def _mode(values: pd.Series, setting: str) -> Any:
    """Most frequent value; ties go to the smallest, with a warning."""
    counts = values.dropna().value_counts()
    if counts.empty:
        return None
    top = counts[counts == counts.max()].index.tolist()
    if len(top) > 1:
        log.warning("reference %s is ambiguous (%s equally common); using %s", setting, top,
                    sorted(top)[0])
    return sorted(top)[0]


def check_reference(df: pd.DataFrame, reference: Mapping[str, Any] | None) -> None:
    """Raise UserError for a reference key that is not a column, or a value no ok trial has."""
    import difflib

    from sracl_ray.errors import UserError

    ok = only_ok(df)
    settings = [c for c in (*HPARAMS, *COMMON_SETTINGS) if c in df.columns]
    for key, value in (reference or {}).items():
        if key not in df.columns:
            near = difflib.get_close_matches(str(key), [str(c) for c in df.columns], n=3, cutoff=0.6)
            hint = f"did you mean {', '.join(near)}? " if near else ""
            raise UserError(f"--reference {key}={value}: {key!r} is not a column of the results store; {hint}"
                            f"valid keys: {', '.join(settings)}, or any cfg.<section>.<key> column "
                            f"(e.g. cfg.train.lr)")
        if not match(ok[key], value).any():
            present = sorted({v for v in ok[key].dropna().tolist()}, key=str)
            shown = ", ".join(map(str, present[:12])) + (", ..." if len(present) > 12 else "")
            raise UserError(f"--reference {key}={value}: no ok trial has {key}={value} (values present: "
                            f"{shown or 'none'})")


def resolve_reference(df: pd.DataFrame, reference: Mapping[str, Any] | None = None) -> dict:
    """Reference setting: given values, others the most common among the ok runs of the variants
    that use them."""
    ref = dict(reference or {})
    df = only_ok(df)
    for setting in HPARAMS + COMMON_SETTINGS:
        if setting in ref or setting not in df.columns:
            continue
        users = df["variant"].map(lambda v: setting in relevant_settings(v))
        value = _mode(df.loc[users, setting], setting)
        if value is not None:
            ref[setting] = value.item() if hasattr(value, "item") else value
    if EXCLUDE_SAME_USER in df.columns and EXCLUDE_SAME_USER not in ref:
        xsu = df[EXCLUDE_SAME_USER]
        if xsu.notna().any():  # the paper's setting (false) when any run has it
            ref[EXCLUDE_SAME_USER] = False if (xsu == False).any() else bool(xsu.dropna().iloc[0])  # noqa: E712
    for col, (plain, _) in CONTROLS.items():  # the method's value when any run has it
        if col in df.columns and col not in ref:
            values = df[col].fillna(plain)
            ref[col] = plain if (values == plain).any() else str(values.iloc[0])
    return ref


def at_reference(
    df: pd.DataFrame, reference: Mapping[str, Any] | None = None, ignore: Iterable[str] = ()
) -> pd.DataFrame:
    """Rows at the reference setting, comparing only the settings each row's variant uses.

    Reference keys other than alpha/beta/k/mask_history/max_len (e.g. ``cfg.train.lr``) apply to
    every row.  Only trials whose status is ok are returned.
    """
    df = only_ok(df)
    ref = resolve_reference(df, reference)
    skip = set(ignore)
    extra = {k: v for k, v in ref.items() if k not in HPARAMS + COMMON_SETTINGS and k not in skip}
    mask = match_all(df, extra)
    for variant, rows in df.groupby("variant", sort=False):
        for setting in relevant_settings(variant):
            if setting in skip or setting not in ref or setting not in df.columns:
                continue
            mask.loc[rows.index] &= match(rows[setting], ref[setting])
    return df[mask]
