"""`sracl-ray sweep run|resume` and `sracl-ray reproduce`."""
from __future__ import annotations

import argparse
import itertools

from sracl_ray.argtypes import positive_float, positive_int


def _ray_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--address", help="Ray cluster to join (default: $RAY_ADDRESS, else the Ray already running "
                                     "on this machine, else a new local Ray; 'local' always starts a new one)")
    p.add_argument("--num-cpus", type=positive_int,
                   help="CPUs of the local Ray started when no Ray is running (ignored when joining one)")


def register(subparsers) -> None:
    sweep = subparsers.add_parser("sweep", help="run or resume a Ray Tune sweep of an experiment file")
    sub = sweep.add_subparsers(dest="sweep_command", required=True)

    run = sub.add_parser("run", help="start a sweep", description=(
        "Validate EXPERIMENT (every key and grid point) and run it with Ray Tune. Trials write fit() outputs "
        "to DIR/trials/, rows to the results store DIR/results/, TensorBoard logs to DIR/tune/. "
        "DIR is a path on a filesystem every node mounts, or a storage URI (s3://bucket/prefix, gs://..., any "
        "pyarrow filesystem URI; credentials and AWS_ENDPOINT_URL from the environment); every node is "
        "checked to see it before any trial runs. Resume a killed run with `sracl-ray sweep resume DIR`."))
    run.add_argument("experiment", help="experiments/*.yaml")
    run.add_argument("--storage", required=True,
                     help="the sweep's directory or storage URI (one holding finished trials is refused: resume it "
                          "or --overwrite)")
    run.add_argument("--overwrite", action="store_true", help="replace a sweep already in --storage")
    run.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                     help="override the experiment's base config (repeatable)")
    run.add_argument("--smoke", action="store_true", help="2 trials x 2 epochs on the packaged sample")
    run.add_argument("--dry-run", action="store_true",
                     help="print the resolved base config, the number of trials and the first rows of the trial "
                          "table, then stop: starts no Ray, reads no data, writes nothing")
    run.add_argument("--mlflow-uri", help="also log every trial to this MLflow tracking URI (needs mlflow)")
    run.add_argument("--progress-every", type=positive_float, default=30.0, metavar="S",
                     help="seconds between progress lines (default 30)")
    _ray_args(run)
    run.set_defaults(func=_run)

    resume = sub.add_parser("resume", help="continue a killed or partly failed sweep", description=(
        "Finished trials are kept, unfinished ones continue from their last epoch, errored ones resume from "
        "their last checkpoint (or from scratch with --restart-errored); the search algorithm continues from "
        "its saved state."))
    resume.add_argument("storage", help="the sweep's directory or storage URI")
    resume.add_argument("--restart-errored", action="store_true", help="rerun errored trials from scratch")
    _ray_args(resume)
    resume.set_defaults(func=_resume)

    rep = subparsers.add_parser("reproduce", help="run every experiment file (resumes those already started)")
    rep.add_argument("--storage", default="runs/reproduce", help="parent dir or storage URI; one sweep per experiment under it")
    rep.add_argument("--experiments", help="folder of experiment files (default: ./experiments)")
    rep.add_argument("--only", help="comma-separated experiment names")
    rep.add_argument("--smoke", action="store_true",
                     help="shrink each experiment to 2 trials x 2 epochs on a slice of the packaged sample")
    rep.add_argument("--smoke-users", type=positive_int, default=60, help="users of the packaged sample in --smoke")
    rep.add_argument("--mlflow-uri", help="also log every trial to this MLflow tracking URI (needs mlflow)")
    _ray_args(rep)
    rep.set_defaults(func=_reproduce)


def _report(outcome) -> None:
    print(f"{outcome.storage}: {outcome.n_trials} trials, {outcome.n_finished} finished, {outcome.n_errored} errored")
    for trial_id, error in sorted(outcome.errors.items()):
        print(f"  error in trial {trial_id}: {error}")
    if outcome.best:
        metric = next(k for k in outcome.best if k not in ("trial_id", "config"))
        print(f"  best {metric} = {outcome.best[metric]:.4f}  trial {outcome.best['trial_id']}  {outcome.best['config']}")
    print(f"  results: sracl-ray results {outcome.storage}")


DRY_RUN_ROWS = 10


def print_plan(exp, rows: int = DRY_RUN_ROWS) -> None:
    """What `sweep run --dry-run` shows: the sweep's size, its base config and its first trials."""
    import yaml

    from sracl_ray.config import to_dict
    from sracl_ray.sweeps import experiment as E

    s, r = exp.search, exp.resources
    n = E.trial_count(s)
    how = (f"grid over {' x '.join(f'{k} ({len(v)})' for k, v in s.grid.items()) or 'nothing'}" if s.mode == "grid"
           else f"Optuna TPE over {', '.join(s.space)}, ASHA (grace {s.grace_period}, reduction {s.reduction_factor})")
    print(f"experiment {exp.name} ({exp.source}): {n} trial{'s' if n != 1 else ''}, {how}")
    print(f"select on {exp.metric} ({exp.mode}); per trial {r.cpus:g} CPU, {r.gpus:g} GPU; "
          f"max_failures {exp.max_failures}; max_concurrent_trials {exp.max_concurrent_trials or 'all'}")
    print("base config (defaults < experiment base < --set):")
    print("  " + yaml.safe_dump(to_dict(exp.base_config()), sort_keys=False).rstrip().replace("\n", "\n  "))
    if s.mode == "grid":
        points = list(itertools.islice(E.iter_grid_points(s), rows))
        print(f"trials (first {len(points)} of {n}):")
        keys = list(s.grid)
        table = [["#", *keys]] + [[str(i + 1), *(str(p[k]) for k in keys)] for i, p in enumerate(points)]
        widths = [max(len(row[c]) for row in table) for c in range(len(keys) + 1)]
        for row in table:
            print("  " + "  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip())
    else:
        print(f"trials: {n} drawn by the searcher from:")
        for key, spec in s.space.items():
            print(f"  {key}: {spec}")
    print("dry run: no Ray started, nothing written")


def _run(args: argparse.Namespace) -> int:
    from sracl_ray.sweeps import experiment as E
    from sracl_ray.sweeps.runner import run_sweep

    if args.mlflow_uri and not args.dry_run:
        from sracl_ray.mlflow_log import require_mlflow

        require_mlflow()  # before any data is read
    exp = E.load_experiment(args.experiment, args.set)
    if args.smoke:
        exp = E.shrink_for_smoke(exp)
    if args.dry_run:
        print_plan(exp)
        return 0
    outcome = run_sweep(exp, args.storage, mlflow_uri=args.mlflow_uri, write=print, address=args.address,
                        num_cpus=args.num_cpus, smoke=args.smoke, progress_every_s=args.progress_every,
                        overwrite=args.overwrite)
    _report(outcome)
    return 0 if outcome.ok else 1


def _resume(args: argparse.Namespace) -> int:
    from sracl_ray.sweeps.runner import resume_sweep

    outcome = resume_sweep(args.storage, restart_errored=args.restart_errored, address=args.address,
                           num_cpus=args.num_cpus)
    _report(outcome)
    return 0 if outcome.ok else 1


def _reproduce(args: argparse.Namespace) -> int:
    from sracl_ray.sweeps.reproduce import experiments_dir, reproduce

    if args.mlflow_uri:
        from sracl_ray.mlflow_log import require_mlflow

        require_mlflow()

    only = [s.strip() for s in args.only.split(",")] if args.only else None
    outcomes = reproduce(args.storage, experiments_dir(args.experiments), smoke=args.smoke, only=only, write=print,
                         address=args.address, num_cpus=args.num_cpus, mlflow_uri=args.mlflow_uri,
                         smoke_users=args.smoke_users)
    for o in outcomes:
        _report(o)
    return 0 if all(o.ok for o in outcomes) else 1
