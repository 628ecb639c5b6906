"""`sracl-ray quickstart`: a small real sweep on a packaged Beauty slice, its table (with the rankings
that learn nothing beside it) and its report."""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from sracl_ray.argtypes import positive_int
from sracl_ray.data.readers import PACKAGE_DATA

EXPERIMENT = PACKAGE_DATA / "quickstart.yaml"
DATASET = PACKAGE_DATA / "beauty_dense"
CAVEAT = ("This is a demo, not evidence: beauty_dense is a small dense slice of Beauty (1,500 users, its 1,000 "
          "most frequent items), the semantic artifact is the interim one (MiniLM item-text embeddings, no "
          "LLM), and a difference between two arms over 2 seeds on it means nothing.")


def overrides(user_sets: list[str]) -> list[str]:
    """The quickstart's dataset first, so a user's --set data.path=... still wins."""
    return [f"data.path={DATASET}", *user_sets]


def table_with_baselines(storage: Path, baselines: list[dict]) -> str:
    """The per-variant mean ± std table, then one row per baseline (n = '-': nothing is averaged)."""
    from sracl_ray.results.query import mean_std_frame, render, summary
    from sracl_ray.results.store import connect

    df, group_by, metrics = summary(connect(storage), None, ["variant"], None)
    shown = mean_std_frame(df, group_by, metrics, 4)
    for row in baselines:
        label = row["baseline"] + (" (expected)" if row["baseline"] == "random" else "")
        extra = {"variant": label, "n": "-", **{m: f"{row[m]:.4f}" for m in metrics if m in row}}
        shown.loc[len(shown)] = [extra.get(c, "") for c in shown.columns]
    return render(shown, "table")


def run(args: argparse.Namespace) -> int:
    from analysis.report import write_report
    from sracl_ray.sweeps.experiment import load_experiment
    from sracl_ray.sweeps.runner import resume_sweep, run_sweep
    from sracl_ray.training.baselines import baseline_rows, write_baselines

    if args.mlflow_uri:
        from sracl_ray.mlflow_log import require_mlflow

        require_mlflow()  # before any data is read
    start = time.monotonic()
    storage = Path(args.out).resolve()
    exp = load_experiment(EXPERIMENT, overrides(args.set))
    print(CAVEAT)
    if (storage / "tune").exists():  # a killed quickstart picks up where it stopped
        outcome = resume_sweep(storage, num_cpus=args.num_cpus)
    else:
        outcome = run_sweep(exp, storage, write=print, num_cpus=args.num_cpus, mlflow_uri=args.mlflow_uri)
    print(f"{outcome.n_finished}/{outcome.n_trials} trials finished, {outcome.n_errored} errored")
    baselines = baseline_rows(exp.base_config())
    write_baselines(storage, baselines)
    print(table_with_baselines(storage, baselines))
    write_report(storage, storage / "report")
    print(f"report: {storage / 'report' / 'index.html'}")
    print(f"quickstart took {time.monotonic() - start:.0f} s. {CAVEAT}")
    return 0 if outcome.ok else 1


def register(subparsers) -> None:
    p = subparsers.add_parser("quickstart", help="run a small sweep on a packaged Beauty slice, print its table, "
                                                 "write its HTML report")
    p.add_argument("--out", default="runs/quickstart", help="sweep storage directory")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override the quickstart experiment's base config")
    p.add_argument("--num-cpus", type=positive_int, default=None,
                   help="CPUs of the local Ray started when no Ray is running (default: all)")
    p.add_argument("--mlflow-uri", help="also log every trial to this MLflow tracking URI (needs mlflow)")
    p.set_defaults(func=run)
