"""`sracl-ray quickstart`: a small real sweep on the packaged sample, its table and its report."""
from __future__ import annotations

import argparse
from pathlib import Path

from sracl_ray.data.readers import PACKAGE_DATA

EXPERIMENT = PACKAGE_DATA / "quickstart.yaml"


def run(args: argparse.Namespace) -> int:
    from analysis.report import write_report
    from sracl_ray.results.query import mean_std_frame, render, summary
    from sracl_ray.results.store import connect
    from sracl_ray.sweeps.experiment import load_experiment
    from sracl_ray.sweeps.runner import resume_sweep, run_sweep

    storage = Path(args.out).resolve()
    if (storage / "tune").exists():  # a killed quickstart picks up where it stopped
        outcome = resume_sweep(storage, num_cpus=args.num_cpus)
    else:
        outcome = run_sweep(load_experiment(EXPERIMENT, args.set), storage, write=print, num_cpus=args.num_cpus)
    print(f"{outcome.n_finished}/{outcome.n_trials} trials finished, {outcome.n_errored} errored")
    df, group_by, metrics = summary(connect(storage), None, ["variant"], None)
    print(render(mean_std_frame(df, group_by, metrics, 4), "table"))
    write_report(storage, storage / "report")
    print(f"report: {storage / 'report' / 'index.html'}")
    return 0 if outcome.ok else 1


def register(subparsers) -> None:
    p = subparsers.add_parser("quickstart", help="run a small sweep on the packaged sample, print its table, "
                                                 "write its HTML report")
    p.add_argument("--out", default="runs/quickstart", help="sweep storage directory")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override the quickstart experiment's base config")
    p.add_argument("--num-cpus", type=int, default=None, help="CPUs for the local Ray (default: all)")
    p.set_defaults(func=run)
