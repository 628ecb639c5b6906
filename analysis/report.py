"""One HTML report of a sweep: Tables 2/3, significance, and the figures the store can support."""
from __future__ import annotations

import datetime as _dt
import html
import logging
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

from analysis.figures import hparam_values, plot_hparam, plot_model_agnostic
from analysis.methods import ABLATION_ORDER, at_reference, resolve_reference
from analysis.sparsity import (
    DEFAULT_EDGES, RANK_COLUMNS, bin_labels, plot_sparsity, sparsity_summary,
)
from analysis.store import load_store, require_columns
from analysis.tables import DEFAULT_METRICS, Table, significance_table, table2, table3

log = logging.getLogger(__name__)

FIG4, FIG5, FIG6, FIG7 = ("fig4_model_agnostic.png", "fig5_alpha_beta.png", "fig6_k.png",
                          "fig7_sparsity.png")
_CSS = ("body{font-family:sans-serif;margin:2em;max-width:80em}table{border-collapse:collapse}"
        "td,th{border:1px solid #bbb;padding:2px 8px;text-align:right}.note{color:#555}"
        "img{max-width:100%}")


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write text via a temp file in the same dir + rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


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
    return any({"full", "no_cl"} <= s for s in pairs)


def _tables(df: pd.DataFrame, metrics: list[str], focus: list[str], ref: dict,
            skipped: list[str]) -> list[Table]:
    """Table 2, Table 3 and the significance table, each when the store has the runs for it."""
    at_ref = at_reference(df, ref)
    tables = []
    if at_ref["variant"].isin(["full", "no_cl"]).any():
        tables.append(table2(df, metrics, ref))
    else:
        skipped.append("Table 2: no 'full' or 'no_cl' runs at the reference setting.")
    if at_ref["variant"].isin(set(ABLATION_ORDER) - {"full", "no_cl"}).any():
        tables.append(table3(df, focus, ref))
    else:
        skipped.append("Table 3: no ablation runs (no_cs / no_is / unlearnable).")
    if _both_variants(at_ref):
        tables.append(significance_table(df, focus, ref))
    return tables


def _figures(df: pd.DataFrame, out: Path, focus: list[str], ref: dict, edges: Sequence[float],
             history: str, skipped: list[str]) -> list[tuple[str, str]]:
    """(file name, caption) of each figure written; reasons for the others go to ``skipped``."""
    figs = []
    if _both_variants(at_reference(df, ref)):
        plot_model_agnostic(df, out / FIG4, focus, ref)
        figs.append((FIG4, "Fig. 4: each backbone with and without SRA-CL (mean ± std over seeds)."))
    else:
        skipped.append("Fig. 4: no backbone was run both with and without SRA-CL.")
    for name, params, fig_no in ((FIG5, ("alpha", "beta"), "Fig. 5"), (FIG6, ("k",), "Fig. 6")):
        varied = [p for p in params if hparam_values(df, p, ref)]
        if varied:
            plot_hparam(df, out / name, varied, focus, ref)
            figs.append((name, f"{fig_no}: metric vs {' and '.join(varied)} (SRA-CL runs, other "
                               "settings at the reference; mean ± std over seeds)."))
        else:
            skipped.append(f"{fig_no}: no backbone has two or more values of {'/'.join(params)}.")
    split = focus[0].split("/", 1)[0] if focus[0].split("/", 1)[0] in RANK_COLUMNS else "test"
    try:
        summary = sparsity_summary(df, focus, edges, history, split, ref)
    except (FileNotFoundError, ValueError, KeyError) as e:
        skipped.append(f"Fig. 7: {e}")
    else:
        plot_sparsity(summary, out / FIG7, focus)
        figs.append((FIG7, f"Fig. 7: {split} metrics per user group by {history} "
                           f"({', '.join(bin_labels(edges))}; mean ± std over seeds)."))
    return figs


def _html(df: pd.DataFrame, storage_dir: Path, ref: dict, tables: list[Table],
          figs: list[tuple[str, str]], skipped: list[str]) -> str:
    """The index.html text; figures are referenced by relative file name."""
    esc = html.escape
    datasets = ", ".join(map(str, sorted(df["dataset"].unique())))
    setting = ", ".join(f"{k}={v}" for k, v in ref.items())
    when = _dt.datetime.now().isoformat(timespec="seconds")
    parts = ["<!doctype html>", "<html><head><meta charset='utf-8'>",
             "<title>SRA-CL sweep report</title>", f"<style>{_CSS}</style></head><body>",
             "<h1>SRA-CL sweep report</h1>",
             f"<p>Store: <code>{esc(str(storage_dir))}</code> — {len(df)} trials, datasets "
             f"{esc(datasets)}. Reference setting: <code>{esc(setting)}</code>. "
             f"Generated {when}.</p>"]
    parts += [t.to_html() for t in tables]
    for name, caption in figs:
        parts.append(f"<figure><img src='{esc(name)}' alt='{esc(caption)}'>"
                     f"<figcaption>{esc(caption)}</figcaption></figure>")
    if skipped:
        parts.append("<h2>Not shown</h2><ul>" + "".join(f"<li>{esc(s)}</li>" for s in skipped)
                     + "</ul>")
    return "\n".join(parts + ["</body></html>"]) + "\n"


def write_report(
    storage_dir: str | Path,
    out_dir: str | Path,
    metrics: Sequence[str] | None = None,
    reference: Mapping[str, Any] | None = None,
    edges: Sequence[float] = DEFAULT_EDGES,
    history: str = "train_len",
) -> str:
    """Write ``out_dir/index.html`` (+ PNGs, tables.md, tables.tex); return the Markdown tables.

    ``metrics`` feed Table 2; Table 3 and the figures use those at the largest cutoff.
    """
    df = load_store(storage_dir)
    metrics = list(metrics or DEFAULT_METRICS)
    require_columns(df, metrics)
    focus = focus_metrics(metrics)
    ref = resolve_reference(df, reference)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    skipped: list[str] = []
    tables = _tables(df, metrics, focus, ref, skipped)
    figs = _figures(df, out, focus, ref, edges, history, skipped)
    markdown = "\n".join(t.to_markdown() for t in tables)
    atomic_write_text(out / "tables.md", markdown)
    atomic_write_text(out / "tables.tex", "\n".join(t.to_latex() for t in tables))
    atomic_write_text(out / "index.html",
                      _html(df, Path(df.attrs["storage_dir"]), ref, tables, figs, skipped))
    written = {name for name, _ in figs}
    for stale in {FIG4, FIG5, FIG6, FIG7} - written:  # from an earlier report into this folder
        (out / stale).unlink(missing_ok=True)
    log.info("report written to %s (%d tables, %d figures)", out / "index.html", len(tables),
             len(figs))
    return markdown
