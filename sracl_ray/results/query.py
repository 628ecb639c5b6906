"""Mean ± std over seeds, and read-only SQL, over a results store (DuckDB table `results`).

Nothing the user types is pasted into SQL unchecked.  The connection from `store.connect` has the
store loaded in memory and DuckDB's external access disabled and its configuration locked, so no
query can read or write a file; on top of that `--sql` must be exactly one SELECT/WITH statement
(checked with DuckDB's own parser), `--where` exactly one expression (no `;`, no comment, balanced
parentheses, parsed by DuckDB), and `--group-by`/`--metric` names are checked against the store's
columns and quoted.  The summary reads only rows whose `status` is 'ok' and reports how many it
left out; `--sql` sees every row.
"""
from __future__ import annotations

import difflib
import io
import math

import pandas as pd

from sracl_ray.errors import UserError, one_line

AXES = ("experiment", "dataset", "backbone", "variant", "alpha", "beta", "k")
DEFAULT_METRICS = ("test/hr@10", "test/hr@20", "test/ndcg@10", "test/ndcg@20")
OK = "ok"


class QueryError(UserError):
    """A column that the store does not have, or SQL that is refused or that DuckDB rejects."""


def quote(col: str) -> str:
    return '"' + col.replace('"', '""') + '"'


def columns(con) -> list[str]:
    return [r[0] for r in con.execute("DESCRIBE results").fetchall()]


def metric_columns(cols: list[str]) -> list[str]:
    return [c for c in cols if str(c).split("/", 1)[0] in ("train", "valid", "test") and "/" in str(c)]


def _check(names: list[str], available: list[str], what: str) -> None:
    metrics = sorted(metric_columns(available))
    for n in names:
        if n not in available:
            near = difflib.get_close_matches(n, metrics if what == "--metric" else available, n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(near)}?" if near else ""
            if what == "--metric":
                hint += f"; metrics present: {', '.join(metrics) or 'none'}"
            raise QueryError(f"unknown {what} column '{n}'{hint}")


def _duckdb_message(exc: Exception) -> str:
    """DuckDB's message without the caret diagram that follows a parser error."""
    return one_line(str(exc).split("\n\nLINE")[0])


def check_select(con, sql: str) -> str:
    """`sql` when it is exactly one SELECT/WITH statement; QueryError saying why not otherwise."""
    import duckdb

    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as e:
        raise QueryError(f"--sql: {_duckdb_message(e)}") from None
    if len(statements) != 1:
        raise QueryError(f"--sql accepts exactly one SELECT or WITH query, got {len(statements)} statements")
    kind = statements[0].type
    if kind != duckdb.StatementType.SELECT:
        name = getattr(kind, "name", str(kind)).upper()
        raise QueryError(f"--sql accepts only a SELECT or WITH query (read-only), got a {name} statement")
    return sql


def _tokens(text: str) -> list[tuple[str, str]]:
    """(token type name, token text) pairs from DuckDB's tokenizer."""
    import duckdb

    toks = duckdb.tokenize(text)
    ends = [pos for pos, _ in toks[1:]] + [len(text)]
    return [(getattr(kind, "name", str(kind)), text[pos:end].strip()) for (pos, kind), end in zip(toks, ends)]


def check_where(con, where: str) -> str:
    """`where` when it is one SQL expression over the store; QueryError saying why not otherwise."""
    import duckdb

    if not where.strip():
        raise QueryError("--where is empty; give one SQL expression, e.g. \"variant='full'\"")
    depth = 0
    for kind, text in _tokens(where):
        if kind == "comment":
            raise QueryError(f"--where {where!r}: comments are not allowed; give one SQL expression")
        if kind != "operator":
            continue
        if ";" in text:
            raise QueryError(f"--where {where!r}: ';' is not allowed; give one SQL expression, not statements")
        for ch in text:
            depth += {"(": 1, ")": -1}.get(ch, 0)
            if depth < 0:
                raise QueryError(f"--where {where!r}: unbalanced ')'; give one SQL expression")
    if depth:
        raise QueryError(f"--where {where!r}: unbalanced '('; give one SQL expression")
    try:
        duckdb.SQLExpression(where)  # exactly one expression, or a parser error
        statements = con.extract_statements(f"SELECT * FROM results WHERE ({where})")
    except duckdb.Error as e:
        raise QueryError(f"--where {where!r}: not one SQL expression: {_duckdb_message(e)}") from None
    if len(statements) != 1 or statements[0].type != duckdb.StatementType.SELECT:
        raise QueryError(f"--where {where!r}: not one SQL expression")
    return where


def _where_sql(where: str | None, ok_only: bool) -> str:
    """A WHERE clause from an already checked expression, optionally restricted to ok rows."""
    parts = ([f"({where})"] if where else []) + ([f"status = '{OK}'"] if ok_only else [])
    return f" WHERE {' AND '.join(parts)}" if parts else ""


def _execute(con, sql: str, what: str) -> pd.DataFrame:
    try:
        return con.execute(sql).df()
    except Exception as e:  # noqa: BLE001 - duckdb raises many types for a bad query
        raise QueryError(f"{what}: {_duckdb_message(e)}") from None


def default_group_by(con, where: str | None) -> list[str]:
    """The paper axes that take more than one value among the ok rows selected (dataset when none does)."""
    have = [a for a in AXES if a in columns(con)]
    if not have:
        return []
    if where:
        check_where(con, where)
    counts = _execute(con, f"SELECT {', '.join(f'count(DISTINCT {quote(a)})' for a in have)} FROM results"
                           f"{_where_sql(where, True)}", f"--where {where!r}" if where else "summary").iloc[0].tolist()
    varying = [a for a, n in zip(have, counts) if n > 1]
    return varying or (["dataset"] if "dataset" in have else [])


def left_out(con, where: str | None = None) -> dict[str, int]:
    """{status: number of selected rows} of the rows the summary leaves out (status other than ok)."""
    if where:
        check_where(con, where)
    sel = _where_sql(where, False)
    sql = (f"SELECT status, count(*) AS n FROM results{sel}{' AND' if sel else ' WHERE'} status <> '{OK}' "
           "GROUP BY status ORDER BY status")
    label = f"--where {where!r}" if where else "summary"
    return {str(s): int(n) for s, n in _execute(con, sql, label).itertuples(index=False)}


# Settings that never change a trial's numbers: two rows that differ only in these are one run twice.
NO_EFFECT_SETTINGS = ("cfg.train.progress", "cfg.train.num_threads", "cfg.semantic.cache_dir", "cfg.eval.batch_size")


# Row columns that also say what ran (a store written by other tools may hold these but few cfg.*).
IDENTITY_COLUMNS = ("data_fingerprint", "semantic_fingerprint", "experiment", "dataset", "backbone", "variant",
                    "seed", "alpha", "beta", "k", "mask_history", "max_len")


def run_identity(available: list[str]) -> list[str]:
    """The columns that identify what a row ran: every setting that can change its numbers, and the
    fingerprints of its data and semantic artifact."""
    return [c for c in available if (c.startswith("cfg.") and c not in NO_EFFECT_SETTINGS)
            or c in IDENTITY_COLUMNS]


def repeats(con, where: str | None = None) -> int:
    """How many selected ok rows repeat another row's run exactly (same settings, seed and inputs)."""
    ident = run_identity(columns(con))
    if not ident:
        return 0
    sql = (f"SELECT count(*) - (SELECT count(*) FROM (SELECT DISTINCT {', '.join(map(quote, ident))} FROM results"
           f"{_where_sql(where, True)})) FROM results{_where_sql(where, True)}")
    return int(_execute(con, sql, "summary").iloc[0, 0])


def summary(con, where: str | None = None, group_by: list[str] | None = None,
            metrics: list[str] | None = None) -> tuple[pd.DataFrame, list[str], list[str]]:
    """(frame with n, [n_cap,] <m>_mean, <m>_std per group, group columns, metrics) over ok rows.

    std is the sample std.  Rows that repeat another row's run exactly (the same settings, seed and
    inputs: an identical trial) count once, so n copies of one run never read as a spread over n;
    frame.attrs['repeats'] says how many were folded.  `n_cap` (trials whose best epoch was the
    last one allowed) appears only when some selected trial hit the cap.  frame.attrs['left_out']
    = {status: count} of the selected rows whose status is not ok.
    """
    available = columns(con)
    if where:
        check_where(con, where)
    metrics = list(metrics or [m for m in DEFAULT_METRICS if m in available])
    group_by = list(group_by) if group_by is not None else default_group_by(con, where)
    _check(group_by, available, "--group-by")
    _check(metrics, available, "--metric")
    aggs = [f"avg({quote(m)}) AS {quote(m + '_mean')}, stddev_samp({quote(m)}) AS {quote(m + '_std')}"
            for m in metrics]
    keys = ", ".join(quote(g) for g in group_by)
    cap = "count(*) FILTER (WHERE hit_epoch_cap) AS n_cap"
    ident = run_identity(available)
    rows = (f"(SELECT DISTINCT ON ({', '.join(map(quote, ident))}) * FROM results{_where_sql(where, True)} "
            f"ORDER BY {', '.join(map(quote, ident))}, trial_id)" if ident and "trial_id" in available
            else f"(SELECT * FROM results{_where_sql(where, True)})")
    sql = (f"SELECT {keys + ', ' if keys else ''}count(*) AS n, {cap}{', ' if aggs else ''}{', '.join(aggs)} "
           f"FROM {rows} AS runs{f' GROUP BY {keys} ORDER BY {keys}' if keys else ''}")
    df = _execute(con, sql, f"--where {where!r}" if where else "summary")
    if keys == "" and len(df) and df["n"].iloc[0] == 0:
        df = df.iloc[0:0]  # no ok row selected: no group rather than one group of nothing
    if not len(df) or not df["n_cap"].fillna(0).astype(int).any():
        df = df.drop(columns="n_cap")
    df.attrs["left_out"] = left_out(con, where)
    df.attrs["repeats"] = repeats(con, where) if ident else 0
    return df, group_by, metrics


def left_out_note(counts: dict[str, int]) -> str:
    """'left out 2 trials whose status is not ok (1 diverged, 1 errored)', or '' when none."""
    total = sum(counts.values())
    if not total:
        return ""
    detail = ", ".join(f"{n} {s}" for s, n in counts.items())
    return f"left out {total} trial{'s' if total != 1 else ''} whose status is not ok ({detail})"


CAP_NOTE = ("n_cap: trials whose best epoch was the last epoch allowed (still improving when stopped; "
            "more epochs may change the result)")


def run_sql(con, sql: str) -> pd.DataFrame:
    """One read-only SELECT/WITH query over every row of the store."""
    return _execute(con, check_select(con, sql), "--sql")


def _pm(mean: float, std: float, digits: int) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "-"
    s = "-" if std is None or (isinstance(std, float) and math.isnan(std)) else f"{std:.{digits}f}"
    return f"{mean:.{digits}f} ± {s}"


def mean_std_frame(df: pd.DataFrame, group_by: list[str], metrics: list[str], digits: int = 4) -> pd.DataFrame:
    """Display frame: group columns, n, [n_cap,] one 'mean ± std' column per metric."""
    out = df[group_by + [c for c in ("n", "n_cap") if c in df.columns]].copy()
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
    raise QueryError(f"unknown --format {fmt!r} (table, csv, markdown)")
