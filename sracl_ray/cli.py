"""`sracl-ray` command line: one argparse entry point; sub-packages register their sub-commands."""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

from sracl_ray.config import ConfigError
from sracl_ray.data.errors import DataFormatError
from sracl_ray.semantic.artifact import ArtifactError

# Modules that contribute sub-commands through register(subparsers); listed explicitly.
SUBCOMMAND_MODULES = ("sracl_ray.semantic.cli", "sracl_ray.sweeps.cli", "sracl_ray.results.cli", "analysis.cli",
                      "sracl_ray.quickstart")
SUMMARY_KEYS = ("valid/hr@10", "valid/ndcg@10", "test/hr@10", "test/ndcg@10", "test/hr@20", "test/ndcg@20")


def add_config_args(p: argparse.ArgumentParser) -> None:
    """--config FILE.yaml and repeated --set section.key=value."""
    p.add_argument("--config", help="experiment YAML (defaults = the paper's settings)")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override one setting (repeatable)")


def cmd_train(args: argparse.Namespace) -> int:
    from sracl_ray.config import load
    from sracl_ray.training.fit import fit

    cfg = load(args.config, args.set)
    result = fit(cfg, args.out, resume=not args.no_resume)
    m = result["metrics"]
    print(f"best epoch {result['best_epoch']} of {result['epochs_run']}, {result['wall_time_s']:.1f} s")
    print("  ".join(f"{k}={m[k]:.4f}" for k in SUMMARY_KEYS))
    print(f"wrote {args.out}/result.json")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sracl-ray", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train", help="train one configuration (local CPU or one GPU)")
    add_config_args(p)
    p.add_argument("--out", required=True, help="output directory (result.json, checkpoints, ranks)")
    p.add_argument("--no-resume", action="store_true", help="ignore an existing checkpoint in --out")
    p.set_defaults(func=cmd_train)
    for name in SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name and name.startswith(e.name):
                continue
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("tensorboardX").setLevel(logging.WARNING)  # one line per '@' metric name otherwise
    try:
        return int(args.func(args) or 0)
    except (ConfigError, DataFormatError, ArtifactError, FileNotFoundError) as e:
        print(f"sracl-ray: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
