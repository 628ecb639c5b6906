"""`sracl-ray results DIR`: mean ± std over seeds, or free SQL, over a sweep's results store."""
from __future__ import annotations

import argparse

from sracl_ray.results.query import mean_std_frame, render, run_sql, summary
from sracl_ray.results.store import connect


def _csv_list(text: str | None) -> list[str] | None:
    return [s.strip() for s in text.split(",") if s.strip()] if text else None


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "results", help="summarise a sweep's results store (mean ± std over seeds) or query it with SQL",
        description="Reads every results/trial-*.parquet under DIR (a sweep storage dir, or a parent of "
                    "several) through DuckDB, where the store is the view `results`. Metric and config "
                    "columns contain '/' and '.', so quote them in SQL: \"test/ndcg@20\", \"cfg.cl.alpha\".")
    p.add_argument("dir", help="sweep storage dir (or a dir holding several)")
    p.add_argument("--where", help="SQL filter, e.g. \"variant='full' AND dataset='beauty'\"")
    p.add_argument("--group-by", help="comma-separated columns (default: the paper axes experiment, dataset, "
                                      "backbone, variant, alpha, beta, k that vary in the selection)")
    p.add_argument("--metric", action="append",
                   help="metric column(s), repeatable or comma-separated (default: test hr/ndcg @10/@20)")
    p.add_argument("--format", choices=("table", "csv", "markdown"), default="table")
    p.add_argument("--digits", type=int, default=4)
    p.add_argument("--sql", help="run this SQL instead (the store is the view `results`)")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    con = connect(args.dir)
    if args.sql:
        print(render(run_sql(con, args.sql), args.format))
        return 0
    metrics = [m for item in (args.metric or []) for m in _csv_list(item) or []] or None
    df, group_by, metrics = summary(con, args.where, _csv_list(args.group_by), metrics)
    shown = df if args.format == "csv" else mean_std_frame(df, group_by, metrics, args.digits)
    print(render(shown, args.format))
    return 0
