"""Paper-style tables: Table 2 (methods × metrics per dataset), Table 3 (ablation variants), and a
per-backbone significance table; rendered as Markdown, LaTeX and HTML.

Best value per row in bold, second best underlined (Markdown has no underline: ``<u>..</u>``).
"""
from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import pandas as pd

from sracl_ray import variants as V
from analysis.aggregate import METHOD_KEYS, aggregate
from analysis.methods import (
    ABLATION_ORDER, CONTROLS, EXCLUDE_SAME_USER, VARIANT_LABELS, VARIANT_LATEX, arm_label,
    at_reference, backbone_name,
    backbone_order, method_name, metric_label, resolve_reference, select,
)
from analysis.inference import holm, tost
from analysis.stats import (
    UnmatchedSeedsError, higher_is_better, improvement_pct, one_sided_alternative, pair_runs,
    paired_ttest, significance_mark,
)

DEFAULT_METRICS = ("test/hr@10", "test/hr@20", "test/ndcg@10", "test/ndcg@20")
FOCUS_METRICS = ("test/hr@20", "test/ndcg@20")
MISSING = "–"
_LATEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                  "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
                  "^": r"\textasciicircum{}"}


@dataclass
class Cell:
    """One table cell; ``style`` is "", "best" or "second"; ``latex`` overrides the LaTeX text."""

    text: str
    style: str = ""
    latex: str | None = None


@dataclass
class Table:
    """A rendered-format-neutral table with a title and footnotes."""

    title: str
    header: list[Cell]
    rows: list[list[Cell]]
    notes: list[str] = field(default_factory=list)

    def to_markdown(self) -> str:
        """GitHub-flavoured Markdown: ``**best**``, ``<u>second</u>``."""
        def fmt(c: Cell) -> str:
            t = c.text.replace("|", r"\|").replace("*", r"\*")
            return f"**{t}**" if c.style == "best" else f"<u>{t}</u>" if c.style == "second" else t
        lines = [f"**{self.title}**", "", "| " + " | ".join(fmt(c) for c in self.header) + " |",
                 "|" + "|".join("---" for _ in self.header) + "|"]
        lines += ["| " + " | ".join(fmt(c) for c in row) + " |" for row in self.rows]
        lines += [""] + [n.replace("*", r"\*") + "  " for n in self.notes] if self.notes else []
        return "\n".join(lines).rstrip() + "\n"

    def to_latex(self) -> str:
        """A ``table`` float with ``\\textbf`` / ``\\underline`` marks (no extra packages)."""
        def fmt(c: Cell) -> str:
            t = c.latex if c.latex is not None else latex_escape(c.text)
            return rf"\textbf{{{t}}}" if c.style == "best" else (
                rf"\underline{{{t}}}" if c.style == "second" else t)
        cols = "l" * 2 + "r" * (len(self.header) - 2)
        out = [r"\begin{table}[t]", r"\centering", rf"\caption{{{latex_escape(self.title)}}}",
               rf"\begin{{tabular}}{{{cols}}}", r"\hline",
               " & ".join(fmt(c) for c in self.header) + r" \\", r"\hline"]
        out += [" & ".join(fmt(c) for c in row) + r" \\" for row in self.rows]
        out += [r"\hline", r"\end{tabular}", r"\end{table}"]
        out += [f"% {n}" for n in self.notes]
        return "\n".join(out) + "\n"

    def to_html(self) -> str:
        """An HTML ``<table>`` with ``<b>`` / ``<u>`` marks and notes below."""
        def fmt(c: Cell, tag: str) -> str:
            t = html.escape(c.text)
            t = f"<b>{t}</b>" if c.style == "best" else f"<u>{t}</u>" if c.style == "second" else t
            return f"<{tag}>{t}</{tag}>"
        out = [f"<h2>{html.escape(self.title)}</h2>", "<table>",
               "<tr>" + "".join(fmt(c, "th") for c in self.header) + "</tr>"]
        out += ["<tr>" + "".join(fmt(c, "td") for c in row) + "</tr>" for row in self.rows]
        out += ["</table>"] + [f"<p class='note'>{html.escape(n)}</p>" for n in self.notes]
        return "\n".join(out) + "\n"


def latex_escape(text: str) -> str:
    """Escape LaTeX special characters."""
    return "".join(_LATEX_ESCAPES.get(ch, ch) for ch in str(text))


def rank_styles(values: Sequence[float], higher_better: bool = True) -> list[str]:
    """"best" / "second" / "" per value (ties share a mark; NaN never marked)."""
    distinct = sorted({v for v in values if not math.isnan(v)}, reverse=higher_better)
    marks = dict(zip(distinct[:2], ("best", "second")))
    return [marks.get(v, "") if not math.isnan(v) else "" for v in values]


def value_cell(mean: float, std: float, show_std: bool, style: str = "") -> Cell:
    """``0.0817`` or ``0.0817 ± 0.0012``; NaN means a missing method."""
    if math.isnan(mean):
        return Cell(MISSING)
    if not show_std or math.isnan(std):
        return Cell(f"{mean:.4f}", style)
    return Cell(f"{mean:.4f} ± {std:.4f}", style, latex=f"{mean:.4f} $\\pm$ {std:.4f}")


def method_means(df: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame:
    """Aggregated ``[dataset, backbone, variant, metric, mean, std, n, n_seeds]`` (+ ``method``)."""
    agg = aggregate(df, metrics, METHOD_KEYS)
    agg["method"] = [method_name(b, v) for b, v in zip(agg["backbone"], agg["variant"])]
    return agg


def _get(agg: pd.DataFrame, dataset: str, metric: str, **where: Any) -> tuple[float, float]:
    """(mean, std) of one cell, NaNs when the method has no runs there."""
    m = (agg["dataset"] == dataset) & (agg["metric"] == metric)
    for col, value in where.items():
        m &= agg[col] == value
    rows = agg[m]
    return (float(rows["mean"].iloc[0]), float(rows["std"].iloc[0])) if len(rows) else (
        math.nan, math.nan)


def _improv_cell(df: pd.DataFrame, agg: pd.DataFrame, dataset: str, metric: str,
                 notes: list[str]) -> Cell:
    """Best +SRA-CL method over best baseline on this row, marked by a one-sided paired t-test."""
    hib = higher_is_better(metric)
    rows = agg[(agg["dataset"] == dataset) & (agg["metric"] == metric)]
    ours, base = rows[rows["variant"] == V.METHOD], rows[rows["variant"] == V.BASELINE]
    if ours.empty or base.empty:
        return Cell(MISSING)
    best = lambda r: r.loc[r["mean"].idxmax() if hib else r["mean"].idxmin()]  # noqa: E731
    o, b = best(ours), best(base)
    pct = improvement_pct(o["mean"], b["mean"], hib)
    try:
        pairs = pair_runs(df, metric, {"dataset": dataset, "backbone": o["backbone"], "variant": V.METHOD},
                          {"dataset": dataset, "backbone": b["backbone"], "variant": V.BASELINE})
        mark = paired_ttest(pairs["treatment"], pairs["baseline"], metric,
                            one_sided_alternative(metric)).mark
    except UnmatchedSeedsError as e:
        mark = "†"
        notes.append(f"† {dataset} {metric_label(metric)}: no t-test: {e}")
    return Cell(f"{pct:.2f}%{mark}" if not math.isnan(pct) else MISSING,
                latex=latex_escape(f"{pct:.2f}%") + (f"$^{{{mark}}}$" if mark else ""))


def table2(
    df: pd.DataFrame,
    metrics: Sequence[str] = DEFAULT_METRICS,
    reference: Mapping[str, Any] | None = None,
    show_std: bool = False,
) -> Table:
    """Table 2: rows (dataset, metric), columns baselines then +SRA-CL methods, then ``Improv.``."""
    df = at_reference(df[df["variant"].isin([V.METHOD, V.BASELINE])], reference)
    if df.empty:
        raise ValueError("Table 2 needs runs with variant 'full' or 'no_cl' at the reference setting")
    agg = method_means(df, metrics)
    cols = [(b, v) for v in (V.BASELINE, V.METHOD) for b in backbone_order(agg["backbone"])
            if ((agg["backbone"] == b) & (agg["variant"] == v)).any()]
    has_improv = {V.METHOD, V.BASELINE} <= {v for _, v in cols}
    header = [Cell("Dataset"), Cell("Metric")] + [Cell(method_name(b, v)) for b, v in cols]
    header += [Cell("Improv.")] if has_improv else []
    rows, notes = [], []
    for dataset in sorted(agg["dataset"].unique()):
        for i, metric in enumerate(metrics):
            vals = [_get(agg, dataset, metric, backbone=b, variant=v) for b, v in cols]
            styles = rank_styles([m for m, _ in vals], higher_is_better(metric))
            row = [Cell(dataset if i == 0 else ""), Cell(metric_label(metric))]
            row += [value_cell(m, s, show_std, st) for (m, s), st in zip(vals, styles)]
            row += [_improv_cell(df, agg, dataset, metric, notes)] if has_improv else []
            rows.append(row)
    notes.insert(0, _table_note(agg, has_improv))
    return Table("Table 2: performance comparison (mean over seeds)", header, rows, notes)


def _table_note(agg: pd.DataFrame, has_improv: bool) -> str:
    """Footnote: seeds per cell, and what Improv. and its marks mean."""
    n = sorted(set(agg["n_seeds"].astype(int)))
    note = f"Mean over {n[0] if len(n) == 1 else f'{n[0]}-{n[-1]}'} seed(s) per cell."
    if has_improv:
        note += (" Improv.: best +SRA-CL over best baseline; * p<0.05, ** p<0.01, one-sided paired "
                 "t-test over seeds (H1: +SRA-CL better).")
    return note


def table3(
    df: pd.DataFrame,
    metrics: Sequence[str] = FOCUS_METRICS,
    reference: Mapping[str, Any] | None = None,
    show_std: bool = False,
    backbones: Sequence[str] | None = None,
) -> Table:
    """Table 3: ablation variants as columns (w/o CL ... SRA-CL), rows (dataset[, backbone], metric).

    ``backbones`` defaults to those with runs of no_cs / no_is / unlearnable (the paper: SASRec).
    """
    df = at_reference(df[df["variant"].isin(ABLATION_ORDER)], reference)
    if df.empty:
        raise ValueError("Table 3 needs runs of the ablation variants at the reference setting")
    if backbones is None:  # the backbones that have ablation runs, else all
        abl = df.loc[~df["variant"].isin([V.METHOD, V.BASELINE]), "backbone"]
        backbones = abl.unique().tolist() if len(abl) else df["backbone"].unique().tolist()
    df = df[df["backbone"].isin(list(backbones))]
    agg = method_means(df, metrics)
    variants = [v for v in ABLATION_ORDER if (agg["variant"] == v).any()]
    backbones = backbone_order(agg["backbone"])
    multi = len(backbones) > 1
    header = [Cell("Dataset")] + ([Cell("Backbone")] if multi else []) + [Cell("Metric")]
    header += [Cell(VARIANT_LABELS[v], latex=VARIANT_LATEX.get(v)) for v in variants]
    rows = []
    for dataset in sorted(agg["dataset"].unique()):
        first = True
        for b in backbones:
            if not ((agg["dataset"] == dataset) & (agg["backbone"] == b)).any():
                continue
            for j, metric in enumerate(metrics):
                vals = [_get(agg, dataset, metric, backbone=b, variant=v) for v in variants]
                styles = rank_styles([m for m, _ in vals], higher_is_better(metric))
                row = [Cell(dataset if first else "")]
                row += [Cell(backbone_name(b) if j == 0 else "")] if multi else []
                row += [Cell(metric_label(metric))]
                row += [value_cell(m, s, show_std, st) for (m, s), st in zip(vals, styles)]
                rows.append(row)
                first = False
    title = "Table 3: ablation study" + ("" if multi else f" ({backbone_name(backbones[0])})")
    return Table(title, header, rows, [_table_note(agg, False)])


def significance_table(
    df: pd.DataFrame,
    metrics: Sequence[str] = FOCUS_METRICS,
    reference: Mapping[str, Any] | None = None,
) -> Table:
    """Each backbone +SRA-CL vs itself per dataset: means, Improv., paired t (two- and one-sided)."""
    df = at_reference(df[df["variant"].isin([V.METHOD, V.BASELINE])], reference)
    header = [Cell(h) for h in ("Dataset", "Backbone", "Metric", "Backbone alone", "+SRA-CL",
                                "Improv.", "Better", "t", "p (two-sided)", "p (one-sided)", "n")]
    rows, notes = [], []
    for dataset in sorted(df["dataset"].unique()):
        for b in backbone_order(df.loc[df["dataset"] == dataset, "backbone"]):
            for metric in metrics:
                t_sel = {"dataset": dataset, "backbone": b, "variant": V.METHOD}
                b_sel = {"dataset": dataset, "backbone": b, "variant": V.BASELINE}
                if select(df, t_sel).empty or select(df, b_sel).empty:
                    continue  # this backbone was run with or without SRA-CL only
                try:
                    p = pair_runs(df, metric, t_sel, b_sel)
                except UnmatchedSeedsError as e:
                    notes.append(str(e))
                    continue
                two = paired_ttest(p["treatment"], p["baseline"], metric)
                one = paired_ttest(p["treatment"], p["baseline"], metric,
                                   one_sided_alternative(metric))
                rows.append([Cell(dataset), Cell(backbone_name(b)), Cell(metric_label(metric)),
                             Cell(f"{two.mean_baseline:.4f}"), Cell(f"{two.mean_treatment:.4f}"),
                             Cell(f"{two.improvement_pct:.2f}%"), Cell(two.better),
                             Cell(_fmt_stat(two.statistic)), Cell(_fmt_p(two.pvalue, two.mark, UNDEFINED)),
                             Cell(_fmt_p(one.pvalue, one.mark, UNDEFINED)), Cell(str(two.n))])
    notes.insert(0, "Paired over seeds; * p<0.05, ** p<0.01; one-sided H1: +SRA-CL better; "
                    f"{UNDEFINED}: fewer than 2 seed pairs, or every pair differs by the same amount "
                    "(no spread: the t-test says nothing).")
    return Table("Significance: each backbone with vs without SRA-CL", header, rows, notes)


# (treatment, baseline) variant pairs of the per-user table, each at exclude_same_user=false.
PER_USER_PAIRS = tuple((V.METHOD, v) for v in V.NAMES if v != V.METHOD)


UNDEFINED = "undefined"
EQUIVALENCE_MARGIN = 0.05  # TOST margin: 5% of the baseline arm's mean (per_user_table)


def _fmt_p(p: float, mark: str = "", missing: str = MISSING) -> str:
    return missing if p is None or math.isnan(p) else f"{p:.2g}{mark}"


def _fmt_stat(t: float) -> str:
    return UNDEFINED if t is None or math.isnan(t) else f"{t:.3f}"


def per_user_arms(df: pd.DataFrame, dataset: str, backbone: str) -> list[tuple[dict, dict]]:
    """The (treatment, baseline) selections compared per user for one dataset and backbone.

    SRA-CL against each of w/o CL, w/o L_CS, w/o L_IS and Unlearnable (those that were run), and,
    when runs with ``semantic.exclude_same_user`` exist, SRA-CL against SRA-CL drawing its L_CS
    neighbours from other users only, and that against w/o CL.
    """
    has_xsu = EXCLUDE_SAME_USER in df.columns
    controls = {col: plain for col, (plain, _) in CONTROLS.items() if col in df.columns}
    def sel(variant: str, xsu: bool = False) -> dict:
        where = {"dataset": dataset, "backbone": backbone, "variant": variant}
        return where | ({EXCLUDE_SAME_USER: xsu} if has_xsu else {}) | controls
    present = lambda where: not select(df, where).empty  # noqa: E731
    pairs = [(sel(t), sel(b)) for t, b in PER_USER_PAIRS if present(sel(t)) and present(sel(b))]
    if has_xsu and present(sel(V.METHOD, True)):
        pairs += [(sel(V.METHOD), sel(V.METHOD, True))] if present(sel(V.METHOD)) else []
        pairs += [(sel(V.METHOD, True), sel(V.BASELINE))] if present(sel(V.BASELINE)) else []
    if controls and present(sel(V.METHOD)):  # the method vs itself under each control setting
        rows = df[(df["dataset"] == dataset) & (df["backbone"] == backbone) & (df["variant"] == V.METHOD)]
        for col, plain in controls.items():
            for value in sorted(set(rows[col].dropna()) - {plain}):
                pairs.append((sel(V.METHOD), sel(V.METHOD) | {col: value}))
    return pairs


def _arm_text(where: dict) -> str:
    return arm_label(where["backbone"], where["variant"], where.get(EXCLUDE_SAME_USER, False), where)


def per_user_table(
    df: pd.DataFrame,
    metrics: Sequence[str] = FOCUS_METRICS,
    reference: Mapping[str, Any] | None = None,
    **bootstrap: Any,
) -> Table:
    """Per-user significance (paired bootstrap CI, Wilcoxon) next to the over-seeds paired t-test.

    Rows: per dataset and backbone, the comparisons of ``per_user_arms``; ``bootstrap`` goes to
    ``analysis.significance.compare_arms`` (n_resamples, confidence, seed).
    """
    from analysis.significance import METHOD_NOTE, compare_arms
    from sracl_ray.errors import UserError

    ref = resolve_reference(df, reference)
    df = at_reference(df, ref, ignore=(EXCLUDE_SAME_USER, *CONTROLS))
    header = [Cell(h) for h in ("Dataset", "Backbone", "A", "B", "Metric", "A mean", "B mean", "Δ per user (A-B)",
                                "95% CI (bootstrap)", "p (Wilcoxon)", "p (t, seeds)", "users", "seeds A/B",
                                "95% CI (seeds+users)", "p (seeds+users)", "p Holm (Wilcoxon)",
                                "p Holm (seeds+users)", f"p TOST ±{EQUIVALENCE_MARGIN:.0%} (seeds)")]
    found, notes, cache = [], [], {}
    for dataset in sorted(df["dataset"].unique()):
        for b in backbone_order(df.loc[df["dataset"] == dataset, "backbone"]):
            for t_sel, b_sel in per_user_arms(df, dataset, b):
                a_txt, b_txt = _arm_text(t_sel), _arm_text(b_sel)
                for metric in metrics:
                    try:
                        r = compare_arms(df, metric, t_sel, b_sel, cache=cache, **bootstrap)
                    except UserError as e:
                        notes.append(f"{dataset} {a_txt} vs {b_txt}: no per-user test: {e}")
                        break
                    t = eq = None
                    try:
                        pairs = pair_runs(df, metric, t_sel, b_sel)
                        t = paired_ttest(pairs["treatment"], pairs["baseline"], metric)
                        eq = tost(pairs["treatment"], pairs["baseline"],
                                  EQUIVALENCE_MARGIN * abs(t.mean_baseline)) if t.mean_baseline else None
                    except UnmatchedSeedsError:
                        pass
                    found.append((dataset, b, a_txt, b_txt, metric, r, t, eq))
    holm_w = holm([r.wilcoxon_p for *_, r, _, _ in found])
    holm_h = holm([r.seeds_p for *_, r, _, _ in found])
    rows = []
    for (dataset, b, a_txt, b_txt, metric, r, t, eq), hw, hh in zip(found, holm_w, holm_h):
        ci = f"[{r.ci_low:+.4f}, {r.ci_high:+.4f}]"
        seeds_ci = MISSING if math.isnan(r.seeds_ci_low) else f"[{r.seeds_ci_low:+.4f}, {r.seeds_ci_high:+.4f}]"
        rows.append([Cell(dataset), Cell(backbone_name(b)), Cell(a_txt), Cell(b_txt),
                     Cell(metric_label(metric)), Cell(f"{r.mean_treatment:.4f}"),
                     Cell(f"{r.mean_baseline:.4f}"), Cell(f"{r.mean_diff:+.4f}"), Cell(ci),
                     Cell(_fmt_p(r.wilcoxon_p, r.mark)), Cell(_fmt_p(t.pvalue, t.mark) if t else MISSING),
                     Cell(str(r.n_users)), Cell(f"{r.n_treatment}/{r.n_baseline}"), Cell(seeds_ci),
                     Cell(_fmt_p(r.seeds_p, significance_mark(r.seeds_p))), Cell(_fmt_p(hw, significance_mark(hw))),
                     Cell(_fmt_p(hh, significance_mark(hh))), Cell(_fmt_p(eq.pvalue) if eq else MISSING)])
    notes.insert(0, METHOD_NOTE + " p (t, seeds): two-sided paired t-test over seeds (– when the seeds do not "
                 "pair or there is one). * p<0.05, ** p<0.01.")
    notes.insert(1, "Seeds+users: a hierarchical bootstrap that resamples the seeds (paired when both arms ran the "
                 "same seeds) and then the users, so it covers training noise and user sampling together; it is "
                 "the one to read for 'would this hold for new runs' (– below 2 seeds per arm). Holm: the "
                 f"p-values adjusted for the {len(found)} comparisons of this table (family-wise). TOST: paired "
                 f"equivalence over seeds within ±{EQUIVALENCE_MARGIN:.0%} of B's mean; p < 0.05 supports 'no "
                 "difference larger than that', a large p says the data cannot tell.")
    return Table("Significance per user: paired bootstrap and Wilcoxon over test users", header, rows, notes)
