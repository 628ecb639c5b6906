"""One HTML report of a sweep: Tables 2/3, significance, and the figures the store can support."""
from __future__ import annotations

import datetime as _dt
import html
import logging
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

from sracl_ray import variants as V
from analysis.curves import curve_summary, curve_table, load_curves, plot_curves, valid_metric
from analysis.figures import hparam_values, plot_hparam, plot_model_agnostic
from analysis.methods import (
    EXCLUDE_SAME_USER, at_reference, check_reference, method_name, metric_label,
    resolve_reference, without_repeated_arms,
)
from analysis.sparsity import (
    DEFAULT_EDGES, HISTORY_COLUMNS, RANK_COLUMNS, check_edges, bin_labels, plot_sparsity,
    sparsity_summary,
)
from analysis.store import (
    MissingColumnError, left_out_note, load_root, load_store, only_ok, require_columns, sweep_dirs,
)
from analysis.tables import DEFAULT_METRICS, Table, per_user_table, significance_table, table2, table3
from sracl_ray.errors import UserError
from sracl_ray.manifest import atomic_write_text

log = logging.getLogger(__name__)

FIG4, FIG5, FIG6, FIG7 = ("fig4_model_agnostic.png", "fig5_alpha_beta.png", "fig6_k.png",
                          "fig7_sparsity.png")
FIG7B = "fig7b_gain_by_composition.png"
CURVES_PNG, CURVES_CSV = "learning_curves.png", "learning_curves.csv"
OWNED_FILES = (FIG4, FIG5, FIG6, FIG7, FIG7B, CURVES_PNG, CURVES_CSV)  # removed when a new report has none
_CSS = ("body{font-family:sans-serif;margin:2em;max-width:80em}table{border-collapse:collapse}"
        "td,th{border:1px solid #bbb;padding:2px 8px;text-align:right}.note{color:#555}"
        "img{max-width:100%}")


def check_out_dir(out_dir: str | Path) -> Path:
    """``out_dir`` as a Path when it is, or can become, a directory; UserError otherwise (nothing made)."""
    out = Path(out_dir).expanduser()
    for p in (out, *out.parents):
        if p.exists():
            if not p.is_dir():
                what = "--out" if p == out else f"--out {out}: its parent"
                raise UserError(f"{what} {p} exists and is not a directory")
            break
    return out


def focus_metrics(metrics: Sequence[str]) -> list[str]:
    """The metrics at the largest cutoff (``@20`` for the defaults), used by Table 3 and figures."""
    cut = {m: int(g.group(1)) for m in metrics if (g := re.search(r"@(\d+)$", m))}
    if not cut:
        return list(metrics[:2])
    top = max(cut.values())
    return [m for m in metrics if cut.get(m) == top]


def _both_variants(df: pd.DataFrame) -> bool:
    """Some (dataset, backbone) was run both with (full) and without (no_cl) SRA-CL."""
    pairs = df.groupby(["dataset", "backbone"])["variant"].agg(set)
    return any({V.METHOD, V.BASELINE} <= s for s in pairs)


def _table2(df: pd.DataFrame, metrics: list[str], ref: dict, skipped: list[str]) -> list[Table]:
    if at_reference(df, ref)["variant"].isin([V.METHOD, V.BASELINE]).any():
        return [table2(df, metrics, ref)]
    skipped.append("Table 2: no 'full' or 'no_cl' runs at the reference setting.")
    return []


def _table3(df: pd.DataFrame, focus: list[str], ref: dict, skipped: list[str]) -> list[Table]:
    if at_reference(df, ref)["variant"].isin(V.ABLATIONS).any():
        return [table3(df, focus, ref)]
    skipped.append("Table 3: no ablation runs (no_cs / no_is / unlearnable).")
    return []


def _significance(df: pd.DataFrame, focus: list[str], ref: dict, skipped: list[str]) -> list[Table]:
    """The over-seeds t-test table (each backbone with vs without SRA-CL) and the per-user table."""
    tables = [significance_table(df, focus, ref)] if _both_variants(at_reference(df, ref)) else []
    per_user = per_user_table(df, focus, ref)
    if per_user.rows:
        tables.append(per_user)
    elif len(per_user.notes) > 1:  # comparisons existed but none could be made: say why
        skipped.extend(f"Per-user significance: {n}" for n in per_user.notes[1:])
    return tables


def _tables(df: pd.DataFrame, metrics: list[str], focus: list[str], ref: dict,
            skipped: list[str]) -> list[Table]:
    """Table 2, Table 3 and the significance tables, each when the store has the runs for it."""
    return (_table2(df, metrics, ref, skipped) + _table3(df, focus, ref, skipped)
            + _significance(df, focus, ref, skipped))


def _fig4(df: pd.DataFrame, out: Path, focus: list[str], ref: dict, skipped: list[str]) -> list[tuple[str, str]]:
    if _both_variants(at_reference(df, ref)):
        plot_model_agnostic(df, out / FIG4, focus, ref)
        return [(FIG4, "Fig. 4: each backbone with and without SRA-CL (mean ± std over seeds).")]
    skipped.append("Fig. 4: no backbone was run both with and without SRA-CL.")
    return []


def _fig_hparam(df: pd.DataFrame, out: Path, focus: list[str], ref: dict, skipped: list[str],
                name: str, params: tuple[str, ...], fig_no: str) -> list[tuple[str, str]]:
    varied = [p for p in params if hparam_values(df, p, ref)]
    if varied:
        plot_hparam(df, out / name, varied, focus, ref)
        return [(name, f"{fig_no}: metric vs {' and '.join(varied)} (SRA-CL runs, other "
                       "settings at the reference; mean ± std over seeds).")]
    skipped.append(f"{fig_no}: no backbone has two or more values of {'/'.join(params)}.")
    return []


def _fig7(df: pd.DataFrame, out: Path, focus: list[str], ref: dict, edges: Sequence[float], history: str,
          skipped: list[str], extra: str = "") -> list[tuple[str, str]]:
    split = focus[0].split("/", 1)[0] if focus[0].split("/", 1)[0] in RANK_COLUMNS else "test"
    try:
        summary = sparsity_summary(df, focus, edges, history, split, ref)
    except (FileNotFoundError, ValueError, KeyError) as e:
        skipped.append(f"Fig. 7: {e}")
        return []
    plot_sparsity(summary, out / FIG7, focus)
    return [(FIG7, f"Fig. 7: {split} metrics per user group by {history} "
                   f"({', '.join(bin_labels(edges))}; mean ± std over seeds).{extra}")]


def _fig7b(df: pd.DataFrame, out: Path, focus: list[str], ref: dict, skipped: list[str]) -> list[tuple[str, str]]:
    """The gain-by-composition panel (analysis/composition_gain.py) for the first dataset and backbone
    with both SRA-CL and its backbone at the reference."""
    from analysis.composition_gain import composition_gain, plot_composition_gain

    rows = at_reference(df, ref)
    metric = focus[0] if focus[0].split("/", 1)[0] in RANK_COLUMNS else "test/" + focus[0].split("/", 1)[-1]
    for (dataset, backbone), part in rows.groupby(["dataset", "backbone"], sort=True):
        if not {V.METHOD, V.BASELINE} <= set(part["variant"]):
            continue
        where = {"dataset": dataset, "backbone": backbone}
        method = part[part["variant"] == V.METHOD]
        k = int(method["k"].dropna().iloc[0]) if "k" in method.columns and method["k"].notna().any() else 10
        try:
            summary = composition_gain(part, metric, where | {"variant": V.METHOD}, where | {"variant": V.BASELINE}, k)
        except (UserError, FileNotFoundError, KeyError, ValueError) as e:
            skipped.append(f"Fig. 7b (gain by composition): {e}")
            return []
        title = f"{dataset} {method_name(backbone, V.METHOD)} - {method_name(backbone, V.BASELINE)}, k={k}"
        plot_composition_gain(summary, out / FIG7B, metric_label(metric), title)
        return [(FIG7B, f"Fig. 7b: per-user {metric_label(metric)} gain of SRA-CL over its backbone ({dataset}, "
                        f"{backbone}) by the share of a user's L_CS neighbours that are its own prefixes / its "
                        f"own longer prefixes (which hold the target); mean ± s.e. over the bin's users, seeds "
                        f"averaged first.")]
    skipped.append("Fig. 7b (gain by composition): no dataset and backbone has both SRA-CL and its backbone.")
    return []


def _figures(df: pd.DataFrame, out: Path, focus: list[str], ref: dict, edges: Sequence[float],
             history: str, skipped: list[str]) -> list[tuple[str, str]]:
    """(file name, caption) of each figure written; reasons for the others go to ``skipped``."""
    return (_fig4(df, out, focus, ref, skipped)
            + _fig_hparam(df, out, focus, ref, skipped, FIG5, ("alpha", "beta"), "Fig. 5")
            + _fig_hparam(df, out, focus, ref, skipped, FIG6, ("k",), "Fig. 6")
            + _fig7(df, out, focus, ref, edges, history, skipped)
            + _fig7b(df, out, focus, ref, skipped))


def _curves(df: pd.DataFrame, out: Path, focus: list[str], ref: dict, skipped: list[str],
            extra: str = "") -> tuple[list[Table], list[tuple[str, str]]]:
    """Learning curves of every arm at the reference (other-users runs included): tables, figure, CSV."""
    metrics = [valid_metric(m) for m in focus]
    rows = without_repeated_arms(at_reference(df, ref, ignore=(EXCLUDE_SAME_USER,)))
    summary = curve_summary(load_curves(rows, metrics))
    if summary.empty:
        skipped.append("Learning curves: no trial at the reference setting has a per-epoch history "
                       "(trials/<id>/result.json).")
        return [], []
    metrics = [m for m in metrics if (summary["metric"] == m).any()]
    plot_curves(summary, out / CURVES_PNG, metrics)
    atomic_write_text(out / CURVES_CSV, summary.to_csv(index=False))
    caption = (f"Learning curves: validation {', '.join(metric_label(m) for m in metrics)} per epoch, mean ± std "
               f"over seeds (band); x = the arm has trials stopped at the epoch cap. Data: {CURVES_CSV}.{extra}")
    return [curve_table(summary, m) for m in metrics], [(CURVES_PNG, caption)]


def baselines_table(storage_dir: Path, metrics: list[str]) -> list[Table]:
    """Popularity and random rows (storage/baselines.json, when the sweep's command wrote one)."""
    from analysis.tables import Cell
    from sracl_ray.training.baselines import read_baselines

    rows = read_baselines(storage_dir)
    if not rows:
        return []
    header = [Cell("Ranking"), Cell("Dataset"), Cell("Ties")] + [Cell(metric_label(m)) for m in metrics]
    body = [[Cell(r["baseline"]), Cell(str(r.get("dataset", ""))), Cell(str(r.get("ties", "")))]
            + [Cell(f"{r[m]:.4f}" if m in r else "–") for m in metrics] for r in rows]
    note = ("Rankings that learn nothing, through the same full-ranking evaluation: popularity ranks items by "
            "their training-sequence counts (its many ties count under the run's tie policy), random is the "
            "exact expectation of a uniformly random ranking. A trained model must clear both.")
    return [Table("Reference rankings (no learning)", header, body, [note])]


def cap_note(df: pd.DataFrame, limit: int = 8) -> str:
    """Which ok trials stopped at the epoch cap while still improving, per method; '' when none.

    With several experiments in the frame (a reproduce root) each group names its experiment.
    """
    if "hit_epoch_cap" not in df.columns:
        return ""
    capped = df[df["hit_epoch_cap"].fillna(False).astype(bool)]
    if capped.empty:
        return ""
    keys = ["dataset", "backbone", "variant"]
    if "experiment" in df.columns and df["experiment"].nunique() > 1:
        keys = ["experiment", *keys]
    groups = []
    for key, rows in capped.groupby(keys, sort=True):
        where = dict(zip(keys, key))
        of = (df[keys] == pd.Series(where)).all(axis=1).sum()
        ids = ", ".join(map(str, rows["trial_id"].head(4))) + (", ..." if len(rows) > 4 else "")
        variant = where["variant"]
        label = method_name(where["backbone"], variant) + ("" if variant in (V.METHOD, V.BASELINE) else f" ({variant})")
        head = f"{where['experiment']}: " if "experiment" in where else ""
        groups.append(f"{head}{where['dataset']} {label}".strip() + f": {len(rows)} of {of} ({ids})")
    more = f"; and {len(groups) - limit} more groups" if len(groups) > limit else ""
    shown = "; ".join(groups[:limit]) + more
    n = len(capped)
    return (f"Epoch cap: {n} trial{'s' if n != 1 else ''} had the best epoch at the last epoch allowed "
            f"(still improving when stopped; more epochs may change these numbers): {shown}.")


def _html(df: pd.DataFrame, storage_dir: Path, ref: dict, tables: list[Table],
          figs: list[tuple[str, str]], skipped: list[str], notes: Sequence[str] = (),
          title: str = "SRA-CL sweep report") -> str:
    """The index.html text; figures are referenced by relative file name."""
    esc = html.escape
    datasets = ", ".join(map(str, sorted(df["dataset"].unique())))
    setting = ", ".join(f"{k}={v}" for k, v in ref.items())
    when = _dt.datetime.now().isoformat(timespec="seconds")
    parts = ["<!doctype html>", "<html><head><meta charset='utf-8'>",
             f"<title>{esc(title)}</title>", f"<style>{_CSS}</style></head><body>",
             f"<h1>{esc(title)}</h1>",
             f"<p>Store: <code>{esc(str(storage_dir))}</code> — {len(df)} trials, datasets "
             f"{esc(datasets)}. Reference setting: <code>{esc(setting)}</code>. "
             f"Generated {when}.</p>"]
    parts += [f"<p class='note'><b>{esc(n)}</b></p>" for n in notes]
    parts += [t.to_html() for t in tables]
    for name, caption in figs:
        parts.append(f"<figure><img src='{esc(name)}' alt='{esc(caption)}'>"
                     f"<figcaption>{esc(caption)}</figcaption></figure>")
    if skipped:
        parts.append("<h2>Not shown</h2><ul>" + "".join(f"<li>{esc(s)}</li>" for s in skipped)
                     + "</ul>")
    return "\n".join(parts + ["</body></html>"]) + "\n"


def _load(storage_dir: str | Path) -> pd.DataFrame:
    """One sweep's store, or every sweep under a ``sracl-ray reproduce`` root (``attrs['sweeps']``)."""
    sweeps = sweep_dirs(storage_dir)
    return load_root(storage_dir, sweeps) if sweeps else load_store(storage_dir)


def write_report(
    storage_dir: str | Path,
    out_dir: str | Path,
    metrics: Sequence[str] | None = None,
    reference: Mapping[str, Any] | None = None,
    edges: Sequence[float] = DEFAULT_EDGES,
    history: str = "train_len",
) -> str:
    """Write ``out_dir/index.html`` (+ PNGs, tables.md, tables.tex); return the Markdown tables.

    ``storage_dir`` is one sweep's storage dir (or its results/ dir), or a ``sracl-ray reproduce``
    root holding one sweep dir per experiment: then each table and figure comes from its own
    experiment (analysis/paper.py).  ``metrics`` feed Table 2; Table 3 and the figures use those
    at the largest cutoff.  Only trials whose status is ok are used; the report says how many
    others it left out and which trials stopped at the epoch cap.  Every input is checked before
    ``out_dir`` is created.
    """
    out = check_out_dir(out_dir)
    check_edges(edges)
    if history not in HISTORY_COLUMNS:
        raise UserError(f"--history {history!r}: expected one of {', '.join(HISTORY_COLUMNS)}")
    everything = _load(storage_dir)
    df = only_ok(everything)
    left = left_out_note(everything)
    if df.empty:
        raise UserError(f"results store {everything.attrs['results_dir']}: no trial finished ok "
                        f"({left or 'no rows'}); nothing to report")
    metrics = list(metrics or DEFAULT_METRICS)
    try:
        require_columns(df, metrics)
    except MissingColumnError as e:
        raise MissingColumnError(f"--metric: {e}") from None
    check_reference(df, reference)
    focus = focus_metrics(metrics)
    ref = resolve_reference(df, reference)
    notes = [n for n in (left, cap_note(df)) if n]
    out.mkdir(parents=True, exist_ok=True)
    skipped: list[str] = []
    title = "SRA-CL sweep report"
    if everything.attrs.get("sweeps"):
        from analysis.paper import paper_parts

        tables, figs, intro = paper_parts(df, out, metrics, focus, reference, edges, history, skipped)
        notes.insert(0, intro)
        title = "SRA-CL reproduction report"
    else:
        tables = _tables(df, metrics, focus, ref, skipped) + baselines_table(
            Path(everything.attrs["storage_dir"]), metrics)
        figs = _figures(df, out, focus, ref, edges, history, skipped)
        curve_tables, curve_figs = _curves(df, out, focus, ref, skipped)
        tables, figs = tables + curve_tables, figs + curve_figs
    markdown = "\n".join([*(f"Note: {n}\n" for n in notes), *(t.to_markdown() for t in tables)])
    atomic_write_text(out / "tables.md", markdown)
    atomic_write_text(out / "tables.tex", "\n".join([*(f"% Note: {n}" for n in notes),
                                                     *(t.to_latex() for t in tables)]))
    atomic_write_text(out / "index.html",
                      _html(df, Path(everything.attrs["storage_dir"]), ref, tables, figs, skipped, notes, title))
    written = {name for name, _ in figs} | ({CURVES_CSV} if any(n == CURVES_PNG for n, _ in figs) else set())
    for stale in set(OWNED_FILES) - written:  # from an earlier report into this folder
        (out / stale).unlink(missing_ok=True)
    log.info("report written to %s (%d tables, %d figures)", out / "index.html", len(tables),
             len(figs))
    return markdown
