"""Overhead of the Ray Tune sweep platform: a 16-trial, 1-epoch sweep vs the same 16 fit() calls
back to back in one process, on the packaged Beauty sample, same run, same machine.

Both sides include preparing the inputs (from a warm semantic cache) and every trial's test
evaluation and output files; the sweep side also includes starting Ray, the object store, trial
actors, per-epoch checkpoints, Tune's logs and the results store.  Both sides get the same CPUs
(the local Ray gets --cpus; the sequential process runs torch on as many threads).

    python benchmarks/sweep_overhead.py                    # 16 trials, 1 epoch, the packaged sample
    python benchmarks/sweep_overhead.py --users 200        # a 200-user slice (trials of ~1.5 s)
    python benchmarks/sweep_overhead.py --smoke            # 1 trial, 40 users, random vectors, 1 CPU
Writes a JSON (benchmarks/_record.py); overhead_ratio = sweep seconds / sequential seconds (target
<= 1.5).
"""
from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from _record import Record, add_args, ratio  # noqa: E402 - after the environment it reads
from _smoke import random_artifact  # noqa: E402


def experiment(users: int, epochs: int, trials: int, cache: str, cpus_per_trial: int, artifact: str = ""):
    from sracl_ray.sweeps import experiment as E

    seeds = max(1, trials // 4)
    alphas = [0.05, 0.1, 0.2, 0.4][: max(1, trials // seeds)]
    semantic = {"cache_dir": cache, **({"artifact": artifact} if artifact else {})}
    base = {"data": {"max_users": users or None}, "semantic": semantic,
            "train": {"epochs": epochs, "patience": epochs, "progress": False}}
    return E.from_dict({"name": "overhead", "base": base, "metric": "valid/ndcg@20", "max_failures": 0,
                        "resources": {"cpus": cpus_per_trial, "gpus": 0},
                        "search": {"mode": "grid", "grid": {"cl.alpha": alphas, "train.seed": list(range(1, seeds + 1))}}})


def sequential(exp, out: Path, threads: int) -> float:
    import torch

    from sracl_ray.sweeps.experiment import grid_points, trial_config
    from sracl_ray.training.fit import fit
    from sracl_ray.training.inputs import prepare_inputs

    torch.set_num_threads(threads)
    base = exp.base
    t0 = time.perf_counter()
    points = grid_points(exp.search)
    prep = prepare_inputs(trial_config(base, points[0]))
    for i, point in enumerate(points):
        fit(trial_config(base, point), out / f"t{i}", prepared=prep, resume=False)
    return time.perf_counter() - t0


def sweep(exp, out: Path, cpus: int) -> float:
    import ray

    from sracl_ray.sweeps.runner import run_sweep

    t0 = time.perf_counter()
    outcome = run_sweep(exp, out, num_cpus=cpus, progress_every_s=1e9)
    elapsed = time.perf_counter() - t0
    ray.shutdown()
    assert outcome.n_finished == outcome.n_trials, outcome
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=16)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--users", type=int, default=0, help="packaged-sample users (0 = all 1,000, as the issue asks)")
    ap.add_argument("--cpus", type=int, default=2, help="CPUs for both sides (local Ray num_cpus / torch threads)")
    ap.add_argument("--cpus-per-trial", type=int, default=1)
    add_args(ap)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.smoke:
        args.trials, args.epochs, args.users, args.cpus, args.cpus_per_trial = 1, 1, 40, 1, 1
    rec = Record("sweep_overhead", args)

    from sracl_ray.sweeps.experiment import grid_points, trial_config
    from sracl_ray.training.inputs import prepare_inputs

    with tempfile.TemporaryDirectory(prefix="sweep_overhead_") as tmp:
        tmp = Path(tmp)
        artifact = str(random_artifact(args.users, tmp / "artifact")) if args.smoke else ""
        exp = experiment(args.users, args.epochs, args.trials, str(tmp / "cache"), args.cpus_per_trial, artifact)
        n = len(grid_points(exp.search))
        rec.log("trials", n)
        rec.log("semantic", "random-vector artifact" if artifact else "interim MiniLM artifact (warm cache)")
        prepare_inputs(trial_config(exp.base, grid_points(exp.search)[0]))  # warm the semantic cache for both
        seq = sequential(exp, tmp / "seq", args.cpus)
        rec.log("sequential_s", round(seq, 1))
        swp = sweep(exp, tmp / "sweep", args.cpus)
        rec.log("sweep_s", round(swp, 1))
        rec.log("overhead_ratio", ratio(swp, seq))
        rec.write()
        print(f"sequential: {n} trials x {args.epochs} epoch(s) in one process, {args.cpus} threads: {seq:.1f} s")
        print(f"ray tune sweep: {n} trials, local Ray num_cpus={args.cpus}, {args.cpus_per_trial} CPU/trial: "
              f"{swp:.1f} s")
        print(f"overhead_ratio={swp / seq:.3f}")


if __name__ == "__main__":
    main()
