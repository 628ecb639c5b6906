"""`sracl-ray results DIR`: mean ± std over seeds, or read-only SQL, over a sweep's results store."""
from __future__ import annotations

import argparse
import sys

from sracl_ray.results.query import (
    CAP_NOTE, QueryError, left_out_note, mean_std_frame, render, run_sql, summary,
)
from sracl_ray.results.store import connect

MAX_DIGITS = 12


def _csv_list(text: str | None) -> list[str] | None:
    return [s.strip() for s in text.split(",") if s.strip()] if text else None


def _digits(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number 0-{MAX_DIGITS}, got {text!r}") from None
    if not 0 <= value <= MAX_DIGITS:
        raise argparse.ArgumentTypeError(f"expected a whole number 0-{MAX_DIGITS}, got {value}")
    return value


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "results", help="summarise a sweep's results store (mean ± std over seeds) or query it with SQL",
        description="Reads every results/trial-*.parquet under DIR (a sweep storage dir, or a parent of "
                    "several) into an in-memory DuckDB table `results`; queries run read-only and "
                    "sandboxed (no file access). The summary uses trials whose status is 'ok' and says "
                    "how many others it left out; --sql sees every row. Metric and config columns "
                    "contain '/' and '.', so quote them in SQL: \"test/ndcg@20\", \"cfg.cl.alpha\".")
    p.add_argument("dir", help="sweep storage dir (or a dir holding several)")
    p.add_argument("--where", help="one SQL expression filtering the rows, "
                                   "e.g. \"variant='full' AND dataset='beauty'\"")
    p.add_argument("--group-by", help="comma-separated columns (default: the paper axes experiment, dataset, "
                                      "backbone, variant, alpha, beta, k that vary in the selection)")
    p.add_argument("--metric", action="append",
                   help="metric column(s), repeatable or comma-separated (default: test hr/ndcg @10/@20)")
    p.add_argument("--format", choices=("table", "csv", "markdown"), default="table")
    p.add_argument("--digits", type=_digits, default=4, help=f"decimals shown (0-{MAX_DIGITS}, default 4)")
    p.add_argument("--sql", help="run this one SELECT/WITH query instead (the store is the table `results`; "
                                 "read-only, every row whatever its status)")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    if args.sql is not None and (args.where or args.group_by or args.metric):
        raise QueryError("--sql cannot be combined with --where, --group-by or --metric (write them in the SQL)")
    if args.sql is not None and not args.sql.strip():
        raise QueryError("--sql is empty; give one SELECT or WITH query")
    if args.where is not None and not args.where.strip():
        raise QueryError("--where is empty; give one SQL expression, e.g. \"variant='full'\"")
    con = connect(args.dir)
    if args.sql is not None:
        print(render(run_sql(con, args.sql), args.format))
        return 0
    metrics = [m for item in (args.metric or []) for m in _csv_list(item) or []] or None
    df, group_by, metrics = summary(con, args.where, _csv_list(args.group_by), metrics)
    note = left_out_note(df.attrs.get("left_out", {}))
    if note:
        print(f"note: {note}; list them with --sql \"SELECT * FROM results WHERE status <> 'ok'\"", file=sys.stderr)
    if df.attrs.get("repeats"):
        n = df.attrs["repeats"]
        print(f"note: {n} row{'s' if n != 1 else ''} repeat{'s' if n == 1 else ''} another row's run exactly (same "
              f"settings, seed and inputs) and {'was' if n == 1 else 'were'} counted once", file=sys.stderr)
    if df.empty:
        print("note: no trial with status 'ok' matches the selection", file=sys.stderr)
    shown = df if args.format == "csv" else mean_std_frame(df, group_by, metrics, args.digits)
    print(render(shown, args.format))
    if "n_cap" in df.columns:
        print(f"\n{CAP_NOTE}" if args.format != "csv" else f"note: {CAP_NOTE}",
              file=sys.stdout if args.format != "csv" else sys.stderr)
    return 0
