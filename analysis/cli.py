"""``report`` sub-command: ``sracl-ray report DIR --out OUT [--metric M ...]``.

Also runnable alone: ``python -m analysis.cli report DIR --out OUT``.
"""
from __future__ import annotations

import argparse
import math
import sys
from typing import Any, Sequence

from sracl_ray.errors import UserError


class UsageError(UserError, argparse.ArgumentTypeError):
    """A malformed option value (an ArgumentTypeError too, for older callers)."""


def parse_value(text: str) -> Any:
    """CLI scalar: int, float, true/false, or the string itself."""
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse_reference(items: Sequence[str] | None) -> dict:
    """``["alpha=0.1", "k=10"]`` -> ``{"alpha": 0.1, "k": 10}``."""
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--reference expects KEY=VALUE (e.g. alpha=0.1), got {item!r}")
        out[key.strip()] = parse_value(value)
    return out


def parse_edges(text: str) -> tuple:
    """``"7,10"`` -> ``(7, 10)``; UserError unless finite, strictly increasing numbers."""
    parts = [p.strip() for p in text.split(",")]
    if not text.strip() or any(not p for p in parts):
        raise UsageError(f"--edges {text!r}: expected increasing numbers separated by commas, e.g. 7,10")
    values = []
    for p in parts:
        v = parse_value(p)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise UsageError(f"--edges {text!r}: {p!r} is not a finite number; expected increasing numbers "
                             f"separated by commas, e.g. 7,10")
        values.append(v)
    if any(b <= a for a, b in zip(values, values[1:])):
        raise UsageError(f"--edges {text!r}: edges must be strictly increasing, e.g. 7,10")
    return tuple(values)


def run_report(args: argparse.Namespace) -> int:
    """Write the report and print its Markdown tables."""
    from analysis.report import write_report  # imported here: keeps CLI start-up light

    edges = parse_edges(args.edges)  # options first: nothing is read or written before they pass
    reference = parse_reference(args.reference)
    metrics = [m.strip() for item in (args.metric or []) for m in item.split(",") if m.strip()] or None
    from sracl_ray.results.store import local_view  # a storage URI: its rows and ranks, fetched

    markdown = write_report(local_view(args.dir), args.out, metrics, reference, edges, args.history)
    print(markdown)
    print(f"report: {args.out}/index.html")
    return 0


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``report`` sub-command to an argparse sub-parsers object."""
    p = subparsers.add_parser(
        "report", help="tables and figures from a sweep's results store",
        description="Write OUT/index.html (Tables 2/3, significance over seeds and per user, Figs. 4-7 and "
                    "learning curves where the store has the runs) and print the Markdown tables. DIR may be "
                    "one sweep, or a `sracl-ray reproduce` root: then Table 2 comes from its main experiment, "
                    "Table 3 from ablation, Fig. 4 from model_agnostic, Fig. 5 from alpha_grid/beta_grid, "
                    "Fig. 6 from k_grid, Fig. 7 and the curves from all.")
    p.add_argument("dir", metavar="DIR", help="sweep storage dir (or its results/ dir), or a reproduce root")
    p.add_argument("--out", required=True, metavar="OUT", help="output dir for index.html + PNGs")
    p.add_argument("--metric", action="append", default=None, metavar="M",
                   help="Table 2 metric, repeatable or comma-separated (default: test/hr@10 test/hr@20 test/ndcg@10 "
                        "test/ndcg@20); Table 3 and figures use those at the largest @k")
    p.add_argument("--reference", action="append", default=None, metavar="KEY=VALUE",
                   help="pin a reference setting, repeatable (default: most common alpha, beta, k, "
                        "mask_history, max_len)")
    p.add_argument("--edges", default="7,10",
                   help="sparsity bin edges (default 7,10: <7, 7-10 inclusive, >10)")
    p.add_argument("--history", default="train_len", choices=("train_len", "test_input_len"),
                   help="ranks column used as the user's history length for Fig. 7")
    p.set_defaults(func=run_report)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Stand-alone entry point with only the ``report`` sub-command."""
    parser = argparse.ArgumentParser(prog="python -m analysis.cli")
    sub = parser.add_subparsers(dest="command", required=True)
    register(sub)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
