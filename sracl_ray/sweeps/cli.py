"""`sracl-ray sweep run|resume` and `sracl-ray reproduce`."""
from __future__ import annotations

import argparse


def _ray_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--address", help="Ray cluster address (default: RAY_ADDRESS, else a local Ray)")
    p.add_argument("--num-cpus", type=int, help="CPUs of the local Ray started when no cluster is given")


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
    run.add_argument("--mlflow-uri", help="also log every trial to this MLflow tracking URI (needs mlflow)")
    run.add_argument("--progress-every", type=float, default=30.0, metavar="S",
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
    rep.add_argument("--smoke-users", type=int, default=60, help="users of the packaged sample in --smoke")
    rep.add_argument("--mlflow-uri")
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


def _run(args: argparse.Namespace) -> int:
    from sracl_ray.sweeps import experiment as E
    from sracl_ray.sweeps.runner import run_sweep

    exp = E.load_experiment(args.experiment, args.set)
    if args.smoke:
        exp = E.shrink_for_smoke(exp)
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

    only = [s.strip() for s in args.only.split(",")] if args.only else None
    outcomes = reproduce(args.storage, experiments_dir(args.experiments), smoke=args.smoke, only=only, write=print,
                         address=args.address, num_cpus=args.num_cpus, mlflow_uri=args.mlflow_uri,
                         smoke_users=args.smoke_users)
    for o in outcomes:
        _report(o)
    return 0 if all(o.ok for o in outcomes) else 1
