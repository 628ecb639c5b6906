"""``report`` sub-command: ``sracl-ray report DIR --out OUT [--metric M ...]``.

Also runnable alone: ``python -m analysis.cli report DIR --out OUT``.
"""
from __future__ import annotations

import argparse
import sys
from typing import Any, Sequence


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
        if not sep or not key:
            raise argparse.ArgumentTypeError(f"--reference expects KEY=VALUE, got {item!r}")
        out[key.strip()] = parse_value(value)
    return out


def run_report(args: argparse.Namespace) -> int:
    """Write the report and print its Markdown tables."""
    from analysis.report import write_report  # imported here: keeps CLI start-up light

    edges = tuple(parse_value(e) for e in args.edges.split(","))
    markdown = write_report(args.dir, args.out, args.metric, parse_reference(args.reference),
                            edges, args.history)
    print(markdown)
    print(f"report: {args.out}/index.html")
    return 0


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``report`` sub-command to an argparse sub-parsers object."""
    p = subparsers.add_parser(
        "report", help="tables and figures from a sweep's results store",
        description="Write OUT/index.html (Tables 2/3, significance, Figs. 4-7 where the store "
                    "has the runs) and print the Markdown tables.")
    p.add_argument("dir", metavar="DIR", help="sweep storage dir (or its results/ dir)")
    p.add_argument("--out", required=True, metavar="OUT", help="output dir for index.html + PNGs")
    p.add_argument("--metric", action="append", default=None, metavar="M",
                   help="Table 2 metric, repeatable (default: test/hr@10 test/hr@20 test/ndcg@10 "
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
