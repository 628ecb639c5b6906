"""`sracl-ray` command line: one argparse entry point; sub-packages register their sub-commands."""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

from sracl_ray.errors import describe
from sracl_ray.secrets import ScrubFilter, scrub

# Which module registers each sub-command (register(subparsers)); listed explicitly.  Only the
# module of the command being run is imported (a one-line error or --help never pays for numpy,
# pandas, pyarrow or Ray); the top-level --help imports them all.
COMMAND_MODULES = {
    "prepare": "sracl_ray.semantic.cli", "summarize": "sracl_ray.semantic.cli", "embed": "sracl_ray.semantic.cli",
    "neighbours": "sracl_ray.semantic.cli", "semantic": "sracl_ray.semantic.cli", "llm": "sracl_ray.semantic.cli",
    "sweep": "sracl_ray.sweeps.cli", "reproduce": "sracl_ray.sweeps.cli", "results": "sracl_ray.results.cli",
    "report": "analysis.cli", "quickstart": "sracl_ray.quickstart", "data": "sracl_ray.data.fetch",
    "version": "sracl_ray.version",
}
SUBCOMMAND_MODULES = tuple(dict.fromkeys(COMMAND_MODULES.values()))
SUMMARY_KEYS = ("valid/hr@10", "valid/ndcg@10", "test/hr@10", "test/ndcg@10", "test/hr@20", "test/ndcg@20")


def add_config_args(p: argparse.ArgumentParser) -> None:
    """--config FILE.yaml and repeated --set section.key=value."""
    p.add_argument("--config", help="config YAML (defaults = the paper's settings); an experiment file "
                                    "(experiments/*.yaml) contributes its `base` section")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override one setting (repeatable)")


def print_config(cfg) -> None:
    """The resolved config (defaults < file < --set) as YAML, every setting."""
    import yaml

    from sracl_ray.config import to_dict

    print(yaml.safe_dump(to_dict(cfg), sort_keys=False, default_flow_style=False).rstrip())


def cmd_train(args: argparse.Namespace) -> int:
    from sracl_ray.config import load

    if args.mlflow_uri:
        from sracl_ray.mlflow_log import require_mlflow

        require_mlflow()  # before any data is read
    cfg = load(args.config, args.set)
    if args.print_config:
        print_config(cfg)
        return 0
    from sracl_ray.config import inert_note

    if note := inert_note(cfg):  # e.g. semantic.exclude_same_user=true with cl.variant=no_cl
        logging.getLogger("sracl_ray.train").warning(note)
    if args.out is None:
        from sracl_ray.errors import UserError

        raise UserError("train: --out is required (the output dir for result.json, checkpoints and ranks)")
    from sracl_ray.training.prepare import check_out_dir, prepare_inputs

    check_out_dir(args.out)
    prepared = prepare_inputs(cfg)  # every input read and checked before torch is even imported
    from sracl_ray.locks import hold

    with hold(str(args.out), "--out"):  # one writer per output dir
        result = _fit_tracked(cfg, args, prepared)
    m = result["metrics"]
    print(f"best epoch {result['best_epoch']} of {result['epochs_run']}, {result['wall_time_s']:.1f} s")
    print("  ".join(f"{k}={m[k]:.4f}" for k in SUMMARY_KEYS))
    print(f"wrote {args.out}/result.json")
    return 0


def _fit_tracked(cfg, args: argparse.Namespace, prepared) -> dict:
    """fit(), logged to MLflow when --mlflow-uri is given."""
    from sracl_ray.training.fit import fit

    if not args.mlflow_uri:
        return fit(cfg, args.out, prepared=prepared, resume=not args.overwrite)
    from pathlib import Path

    from sracl_ray.config import flatten, to_dict, dataset_label
    from sracl_ray.mlflow_log import TrainRun

    run = TrainRun(args.mlflow_uri, f"train-{dataset_label(cfg.data)}", flatten(to_dict(cfg)),
                   run_name=Path(args.out).name)
    try:
        result = fit(cfg, args.out, report=run.report, prepared=prepared, resume=not args.overwrite)
    except BaseException:
        run.end(failed=True)
        raise
    run.end()
    return result


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


def command_of(argv: list[str]) -> str | None:
    """The sub-command argv names (its first word that is not an option), None when there is none."""
    return next((a for a in argv if not a.startswith("-")), None)


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The CLI; with argv, only the module of the command it names is imported (all of them otherwise)."""
    parser = OneLineParser(prog="sracl-ray", description=__doc__)
    parser.add_argument("-v", "--verbose", "--debug", action="store_true",
                        help="debug logging and full tracebacks (also accepted after the sub-command)")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train", help="train one configuration (local CPU or one GPU)")
    add_config_args(p)
    p.add_argument("--out", help="output directory (result.json, checkpoints, ranks); required unless --print-config")
    p.add_argument("--overwrite", "--no-resume", action="store_true",
                   help="start fresh: remove what an earlier run wrote into --out (without it, a checkpoint "
                        "there is resumed only when it was written by the same settings and data)")
    p.add_argument("--print-config", action="store_true",
                   help="print the resolved config (defaults < --config < --set) and exit: reads no data, writes nothing")
    p.add_argument("--mlflow-uri", help="also log the run to this MLflow tracking URI (needs mlflow)")
    p.set_defaults(func=cmd_train)
    command = command_of(argv) if argv is not None else None
    wanted = [COMMAND_MODULES[command]] if command in COMMAND_MODULES else [] if command == "train" else None
    for name in SUBCOMMAND_MODULES if wanted is None else wanted:
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
    args = build_parser(argv).parse_args(argv)
    args.verbose = debug = debug or args.verbose
    logging.basicConfig(level=logging.DEBUG if debug else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("tensorboardX").setLevel(logging.WARNING)  # one line per '@' metric name otherwise
    for handler in logging.getLogger().handlers:  # a handler filter sees every propagated record
        if not any(isinstance(f, ScrubFilter) for f in handler.filters):
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
