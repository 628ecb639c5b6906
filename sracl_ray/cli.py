"""`sracl-ray` command line: one argparse entry point; sub-packages register their sub-commands."""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

from sracl_ray.errors import describe
from sracl_ray.secrets import ScrubFilter, scrub

# Modules that contribute sub-commands through register(subparsers); listed explicitly.
SUBCOMMAND_MODULES = ("sracl_ray.semantic.cli", "sracl_ray.sweeps.cli", "sracl_ray.results.cli", "analysis.cli",
                      "sracl_ray.quickstart", "sracl_ray.data.fetch")
SUMMARY_KEYS = ("valid/hr@10", "valid/ndcg@10", "test/hr@10", "test/ndcg@10", "test/hr@20", "test/ndcg@20")


def add_config_args(p: argparse.ArgumentParser) -> None:
    """--config FILE.yaml and repeated --set section.key=value."""
    p.add_argument("--config", help="config YAML (defaults = the paper's settings); an experiment file "
                                    "(experiments/*.yaml) contributes its `base` section")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override one setting (repeatable)")


def cmd_train(args: argparse.Namespace) -> int:
    from sracl_ray.config import load

    from sracl_ray.training.prepare import check_out_dir, prepare_inputs

    cfg = load(args.config, args.set)
    check_out_dir(args.out)
    prepared = prepare_inputs(cfg)  # every input read and checked before torch is even imported
    from sracl_ray.training.fit import fit

    result = fit(cfg, args.out, prepared=prepared, resume=not args.overwrite)
    m = result["metrics"]
    print(f"best epoch {result['best_epoch']} of {result['epochs_run']}, {result['wall_time_s']:.1f} s")
    print("  ".join(f"{k}={m[k]:.4f}" for k in SUMMARY_KEYS))
    print(f"wrote {args.out}/result.json")
    return 0


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line naming the command (as every other error is)."""

    def error(self, message: str):
        print(f"sracl-ray: error: {self.prog}: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


DEBUG_FLAGS = ("-v", "--verbose", "--debug")


def pop_debug(argv: list[str]) -> tuple[list[str], bool]:
    """Remove -v/--verbose/--debug wherever they stand (before a `--`), so they work after the sub-command."""
    end = argv.index("--") if "--" in argv else len(argv)
    kept = [a for a in argv[:end] if a not in DEBUG_FLAGS] + argv[end:]
    return kept, len(kept) != len(argv)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="sracl-ray", description=__doc__)
    parser.add_argument("-v", "--verbose", "--debug", action="store_true",
                        help="debug logging and full tracebacks (also accepted after the sub-command)")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train", help="train one configuration (local CPU or one GPU)")
    add_config_args(p)
    p.add_argument("--out", required=True, help="output directory (result.json, checkpoints, ranks)")
    p.add_argument("--overwrite", "--no-resume", action="store_true",
                   help="start fresh: remove what an earlier run wrote into --out (without it, a checkpoint "
                        "there is resumed only when it was written by the same settings and data)")
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
    """Run one sub-command; every error is one line on stderr (exit 2 user, 3 incomplete, 1 bug)."""
    argv, debug = pop_debug(list(sys.argv[1:] if argv is None else argv))
    args = build_parser().parse_args(argv)
    args.verbose = debug = debug or args.verbose
    logging.basicConfig(level=logging.DEBUG if debug else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("tensorboardX").setLevel(logging.WARNING)  # one line per '@' metric name otherwise
    for handler in logging.getLogger().handlers:  # a handler filter sees every propagated record
        handler.addFilter(ScrubFilter())  # no API key reaches a log line, whichever logger writes it
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("sracl-ray: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - the one place that turns any error into one line
        if debug:
            raise
        code, message = describe(e)
        print(f"sracl-ray: {'incomplete' if code == 3 else 'error'}: {scrub(message)}", file=sys.stderr)
        return code


if __name__ == "__main__":
    sys.exit(main())
