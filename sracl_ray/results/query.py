"""Mean ± std over seeds, and free SQL, over a results store (DuckDB view `results`)."""
from __future__ import annotations

import difflib
import io
import math

import pandas as pd

from sracl_ray.errors import UserError

AXES = ("experiment", "dataset", "backbone", "variant", "alpha", "beta", "k")
DEFAULT_METRICS = ("test/hr@10", "test/hr@20", "test/ndcg@10", "test/ndcg@20")


class QueryError(UserError):
    """A column that the store does not have, or SQL that DuckDB rejects."""


def quote(col: str) -> str:
    return '"' + col.replace('"', '""') + '"'


def columns(con) -> list[str]:
    return [r[0] for r in con.execute("DESCRIBE results").fetchall()]


def _check(names: list[str], available: list[str], what: str) -> None:
    for n in names:
        if n not in available:
            near = difflib.get_close_matches(n, available, n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(near)}?" if near else ""
            raise QueryError(f"unknown {what} column '{n}'{hint}")


def default_group_by(con, where: str | None) -> list[str]:
    """The paper axes that take more than one value in the selection (dataset when none does)."""
    have = [a for a in AXES if a in columns(con)]
    if not have:
        return []
    w = f" WHERE {where}" if where else ""
    counts = con.execute(f"SELECT {', '.join(f'count(DISTINCT {quote(a)})' for a in have)} FROM results{w}").fetchone()
    varying = [a for a, n in zip(have, counts) if n > 1]
    return varying or (["dataset"] if "dataset" in have else [])


def summary(con, where: str | None = None, group_by: list[str] | None = None,
            metrics: list[str] | None = None) -> tuple[pd.DataFrame, list[str], list[str]]:
    """(frame with n, <m>_mean, <m>_std per group, group columns, metrics); std is the sample std."""
    available = columns(con)
    metrics = list(metrics or [m for m in DEFAULT_METRICS if m in available])
    try:
        group_by = list(group_by) if group_by is not None else default_group_by(con, where)
    except Exception as e:  # duckdb errors in the WHERE clause
        raise QueryError(f"--where {where!r}: {e}") from None
    _check(group_by, available, "--group-by")
    _check(metrics, available, "--metric")
    aggs = [f"avg({quote(m)}) AS {quote(m + '_mean')}, stddev_samp({quote(m)}) AS {quote(m + '_std')}"
            for m in metrics]
    keys = ", ".join(quote(g) for g in group_by)
    sql = (f"SELECT {keys + ', ' if keys else ''}count(*) AS n{', ' if aggs else ''}{', '.join(aggs)} FROM results"
           f"{f' WHERE {where}' if where else ''}{f' GROUP BY {keys} ORDER BY {keys}' if keys else ''}")
    try:
        return con.execute(sql).df(), group_by, metrics
    except Exception as e:
        raise QueryError(f"{e}\n(query: {sql})") from None


def run_sql(con, sql: str) -> pd.DataFrame:
    try:
        return con.execute(sql).df()
    except Exception as e:
        raise QueryError(str(e)) from None


def _pm(mean: float, std: float, digits: int) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "-"
    s = "-" if std is None or (isinstance(std, float) and math.isnan(std)) else f"{std:.{digits}f}"
    return f"{mean:.{digits}f} ± {s}"


def mean_std_frame(df: pd.DataFrame, group_by: list[str], metrics: list[str], digits: int = 4) -> pd.DataFrame:
    """Display frame: group columns, n, one 'mean ± std' column per metric."""
    out = df[group_by + ["n"]].copy()
    for m in metrics:
        out[m] = [_pm(a, b, digits) for a, b in zip(df[f"{m}_mean"], df[f"{m}_std"])]
    return out


def render(df: pd.DataFrame, fmt: str) -> str:
    """table (aligned text) | markdown | csv."""
    if fmt == "csv":
        buf = io.StringIO()
        df.to_csv(buf, index=False)
        return buf.getvalue().rstrip("\n")
    cells = [[str(c) for c in df.columns]] + [["" if v is None else str(v) for v in row]
                                              for row in df.itertuples(index=False)]
    widths = [max(len(r[i]) for r in cells) for i in range(len(df.columns))]
    if fmt == "markdown":
        line = lambda r: "| " + " | ".join(v.ljust(w) for v, w in zip(r, widths)) + " |"
        sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
        return "\n".join([line(cells[0]), sep] + [line(r) for r in cells[1:]])
    if fmt == "table":
        line = lambda r: "  ".join(v.rjust(w) if i else v.ljust(w) for i, (v, w) in enumerate(zip(r, widths)))
        return "\n".join([line(cells[0]), "  ".join("-" * w for w in widths)] + [line(r) for r in cells[1:]])
    raise QueryError(f"unknown format {fmt!r} (table, csv, markdown)")
