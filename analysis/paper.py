"""One report for a whole ``sracl-ray reproduce`` root: each paper table or figure from its own experiment.

``sracl-ray reproduce --storage D`` writes one sweep dir per experiment file (``D/main``,
``D/ablation``, ...).  Several experiments run the same configuration (``full`` at alpha = beta =
0.1, k = 10, seeds 1-5 is in main, ablation, model_agnostic and the grids), so pooling them would
count one setting several times and break the seed pairing.  Hence (the store's ``experiment``
column tells which row belongs to which):

    Table 2 + significance        main
    Table 3 + per-user tests      ablation
    Fig. 4 + significance         model_agnostic
    Fig. 5                        alpha_grid and beta_grid (a setting both ran counted once)
    Fig. 6                        k_grid
    Fig. 7, learning curves       all experiments, each method's runs from one experiment: the
                                  first of SOURCE_ORDER that ran it at the reference setting
    other experiments             Table 2-style tables when they compare full with no_cl
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

from analysis.methods import (
    EXCLUDE_SAME_USER, arm_label, at_reference, match, resolve_reference, without_repeated_arms,
)
from analysis.store import only_ok
from analysis.tables import Table
from sracl_ray.errors import UserError

SOURCE_ORDER = ("main", "ablation", "model_agnostic", "strong_baseline", "alpha_grid", "beta_grid", "k_grid")
PAPER_EXPERIMENTS = ("main", "ablation", "model_agnostic", "alpha_grid", "beta_grid", "k_grid")
CONFIG_KEYS = ("dataset", "backbone", "variant", "alpha", "beta", "k", "mask_history", "max_len",
               EXCLUDE_SAME_USER, "data_fingerprint", "seed")


def experiment_rows(df: pd.DataFrame, *names: str) -> pd.DataFrame:
    """The rows of the named experiments."""
    return df[df["experiment"].isin(names)]


def _rank(names: pd.Series, order: Sequence[str]) -> pd.Series:
    """Preference rank of each experiment name: its place in ``order``, others after, alphabetically."""
    others = sorted(set(names.dropna().astype(str)) - set(order))
    rank = {n: i for i, n in enumerate([*order, *others])}
    return names.astype(str).map(rank)


def one_run_per_config(df: pd.DataFrame, order: Sequence[str]) -> pd.DataFrame:
    """Rows with the same configuration and seed in several experiments: the first experiment's only."""
    keys = [k for k in CONFIG_KEYS if k in df.columns]
    ranked = df.assign(_rank=_rank(df["experiment"], order)).sort_values("_rank", kind="stable")
    return ranked.drop_duplicates(keys, keep="first").drop(columns="_rank").sort_index()


def one_source_per_method(df: pd.DataFrame, order: Sequence[str] = SOURCE_ORDER) -> tuple[pd.DataFrame, dict]:
    """Per (dataset, backbone, variant[, exclude_same_user]): only the runs of the preferred experiment.

    Returns (rows, {arm label: experiment}).
    """
    if df.empty:
        return df, {}
    keys = ["dataset", "backbone", "variant"] + ([EXCLUDE_SAME_USER] if EXCLUDE_SAME_USER in df.columns else [])
    rank = _rank(df["experiment"], order)
    best = rank.groupby([df[k] for k in keys], dropna=False).transform("min")
    kept = df[rank == best]
    sources = {}
    for _, r in kept.loc[rank[rank == best].sort_values(kind="stable").index].drop_duplicates(keys).iterrows():
        label = arm_label(r["backbone"], r["variant"], r.get(EXCLUDE_SAME_USER, False))
        sources[f"{r['dataset']} {label}"] = r["experiment"]
    return kept, sources


def _local_reference(rows: pd.DataFrame, reference: Mapping[str, Any] | None, base: Mapping[str, Any]) -> dict:
    """An experiment's reference: the user's keys that are its columns, then the root-wide reference
    ``base`` where these rows have that value (k = 10 for the k grid, not its first value), then
    the most common value of its own rows."""
    given = {k: v for k, v in (reference or {}).items() if k in rows.columns}
    ok = only_ok(rows)
    for key, value in base.items():
        if key not in given and key in ok.columns and match(ok[key], value).any():
            given[key] = value
    return resolve_reference(rows, given)


def _titled(tables: list[Table], source: str) -> list[Table]:
    for t in tables:
        t.title = f"{t.title} — experiment {source}"
    return tables


def _sources_text(sources: dict) -> str:
    by_exp: dict[str, list[str]] = {}
    for arm, exp in sources.items():
        by_exp.setdefault(str(exp), []).append(arm)
    return " Runs per method from: " + "; ".join(f"{exp}: {', '.join(arms)}" for exp, arms in by_exp.items()) + "."


def paper_parts(df: pd.DataFrame, out: Path, metrics: list[str], focus: list[str],
                reference: Mapping[str, Any] | None, edges: Sequence[float], history: str,
                skipped: list[str]) -> tuple[list[Table], list[tuple[str, str]], str]:
    """(tables, figures, intro note) of the whole-paper report; reasons for gaps go to ``skipped``."""
    from analysis import report as R

    tables: list[Table] = []
    figs: list[tuple[str, str]] = []
    present = sorted(df["experiment"].dropna().astype(str).unique())
    base = resolve_reference(df, reference)

    def section(names: tuple[str, ...], what: str):
        rows = experiment_rows(df, *names)
        if rows.empty:
            skipped.append(f"{what}: no experiment {' or '.join(names)} under this root "
                           f"(have: {', '.join(present)}).")
            return None, None
        return rows, _local_reference(rows, reference, base)

    def attempt(what: str, build) -> list:
        """``build(local_skipped)``; a section the runs cannot support is skipped with its reason."""
        local: list[str] = []
        try:
            result = build(local)
        except (ValueError, KeyError, UserError) as e:
            skipped.append(f"{what}: {e}")
            return []
        skipped.extend(f"{what}: {s}" for s in local)
        return result

    def tables_of(name: str, rows: pd.DataFrame, ref: dict, first=None) -> list[Table]:
        """``first(skipped)``'s tables (Table 2 or 3), then the significance tables, titled with the experiment."""
        built = attempt(name, first) if first else []
        return _titled(built + attempt(name, lambda sk: R._significance(rows, focus, ref, sk)), name)

    rows, ref = section(("main",), "Table 2")
    if rows is not None:
        tables += tables_of("main", rows, ref, lambda sk: R._table2(rows, metrics, ref, sk))
    rows, ref = section(("ablation",), "Table 3")
    if rows is not None:
        tables += tables_of("ablation", rows, ref, lambda sk: R._table3(rows, focus, ref, sk))
    rows, ref = section(("model_agnostic",), "Fig. 4")
    if rows is not None:
        figs += attempt("model_agnostic", lambda sk: R._fig4(rows, out, focus, ref, sk))
        tables += tables_of("model_agnostic", rows, ref)
    rows, ref = section(("alpha_grid", "beta_grid"), "Fig. 5")
    if rows is not None:
        rows = one_run_per_config(rows, ("alpha_grid", "beta_grid"))
        figs += attempt("alpha_grid/beta_grid", lambda sk: R._fig_hparam(rows, out, focus, ref, sk, R.FIG5,
                                                                        ("alpha", "beta"), "Fig. 5"))
    rows, ref = section(("k_grid",), "Fig. 6")
    if rows is not None:
        figs += attempt("k_grid", lambda sk: R._fig_hparam(rows, out, focus, ref, sk, R.FIG6, ("k",), "Fig. 6"))

    ref = base
    pooled, sources = one_source_per_method(without_repeated_arms(at_reference(df, ref, ignore=(EXCLUDE_SAME_USER,))))
    if pooled.empty:
        skipped.append("Fig. 7 and learning curves: no runs at the reference setting.")
    else:
        extra = _sources_text(sources)
        figs += attempt("all experiments", lambda sk: R._fig7(pooled, out, focus, ref, edges, history, sk, extra))
        curves = attempt("all experiments", lambda sk: [R._curves(pooled, out, focus, ref, sk, extra)])
        for curve_tables, curve_figs in curves:
            tables += curve_tables
            figs += curve_figs

    for name in [n for n in present if n not in PAPER_EXPERIMENTS]:
        rows = experiment_rows(df, name)
        ref = _local_reference(rows, reference, base)
        if R._both_variants(at_reference(rows, ref)):
            tables += tables_of(name, rows, ref, lambda sk: R._table2(rows, metrics, ref, sk))
        else:
            skipped.append(f"{name}: {len(rows)} trials, no full vs no_cl comparison at its reference setting "
                           f"(see `sracl-ray results` on its sweep dir).")
    counts = df["experiment"].astype(str).value_counts()
    intro = (f"Reproduce root with {len(present)} experiment(s): "
             + ", ".join(f"{n} ({counts[n]} trials)" for n in present)
             + ". Table 2 from main, Table 3 from ablation, Fig. 4 from model_agnostic, Fig. 5 from alpha_grid "
               "and beta_grid, Fig. 6 from k_grid; Fig. 7 and the learning curves from all experiments, each "
               "method's runs from one experiment (main first, then ablation, model_agnostic, ...).")
    return tables, figs, intro
