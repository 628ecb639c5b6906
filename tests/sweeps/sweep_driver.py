"""A sweep driver process for kill-and-resume tests (it is SIGKILLed mid-sweep).

    python sweep_driver.py run STORAGE grid|optuna
    python sweep_driver.py resume STORAGE
Uses the fake engine (sweep_fakes); SWEEP_FAKE_EPOCH_S sets how long each epoch takes.
"""
from __future__ import annotations

import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import sweep_fakes  # noqa: E402

from sracl_ray.sweeps import experiment as E  # noqa: E402
from sracl_ray.sweeps import runner  # noqa: E402

N_TRIALS = 6


def experiment(mode: str) -> E.Experiment:
    if mode == "grid":
        search = {"mode": "grid", "grid": {"cl.alpha": [0.1, 0.2, 0.3], "train.seed": [1, 2]}}
    else:  # ASHA's grace period is past the last epoch: this test is about the searcher's state and
        # resuming, so every trial must finish (with tied metrics a restored ASHA may still prune)
        search = {"mode": "optuna", "num_samples": N_TRIALS, "grace_period": 3, "reduction_factor": 2, "seed": 0,
                  "space": {"cl.beta": {"type": "uniform", "low": 0.0, "high": 1.0},
                            "cl.k": {"type": "choice", "values": [5, 10, 20]}}}
    return E.from_dict({"name": f"resume_{mode}", "base": {"train": {"epochs": 2}, "data": {"max_users": 30}},
                        "search": search, "metric": "valid/ndcg@20", "max_concurrent_trials": 2, "max_failures": 1})


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    cmd, storage = sys.argv[1], sys.argv[2]
    if cmd == "run":
        out = runner.run_sweep(experiment(sys.argv[3]), storage, engine=sweep_fakes.fake_engine(), num_cpus=2,
                               write=print, progress_every_s=5)
    else:
        out = runner.resume_sweep(storage, engine=sweep_fakes.fake_engine(), num_cpus=2)
    print(out)
    sys.exit(0 if out.ok and out.n_finished == N_TRIALS else 1)
