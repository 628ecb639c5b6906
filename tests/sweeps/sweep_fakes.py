"""Test engines for the sweep platform (imported by Ray workers: keep the module name unique).

`fake_fit` honours fit()'s contract (per-epoch reports with a resumable checkpoint, a final report
with test metrics, result.json, ranks.parquet) in milliseconds, with metrics that are a known
function of the config.  Every call appends a line to `<out_dir>/fit_calls.txt`, so tests can
count how often a trial was (re)started.  Switches:
  env SWEEP_FAKE_EPOCH_S      seconds each epoch sleeps (default 0; inherited by local Ray workers)
  file <storage>/FAIL_ONCE    every trial raises once, right after reporting its first epoch
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from sracl_ray import config as C
from sracl_ray.manifest import atomic_write_text


@dataclass(frozen=True)
class FakePrepared:
    name: str
    max_users: int | None


def fake_prepare(cfg: C.Config) -> FakePrepared:
    return FakePrepared(cfg.data.name, cfg.data.max_users)


def fake_valid(cfg: C.Config, epoch: int) -> float:
    """The validation ndcg@20 a trial reports at `epoch` (rises with epoch, alpha and seed)."""
    return round(0.01 * epoch + 0.1 * cfg.cl.alpha + 0.001 * cfg.train.seed, 6)


def fake_test(cfg: C.Config, best_epoch: int) -> float:
    return round(0.5 * fake_valid(cfg, best_epoch) + 0.0001 * cfg.cl.k, 6)


def _metrics(prefix: str, value: float) -> dict:
    return {f"{prefix}/{m}@{n}": value * (n / 20) for m in ("hr", "ndcg", "mrr") for n in (5, 10, 20)}


def _maybe_fail(out: Path, epoch: int) -> None:
    marker = out / "failed_once"
    if (out.parent.parent / "FAIL_ONCE").exists() and epoch == 1 and not marker.exists():
        marker.write_text("x")
        raise RuntimeError("injected failure (FAIL_ONCE)")


def _log_call(out: Path) -> None:
    """One line per fit() call: the epoch its checkpoint held when the call started."""
    state = out / "checkpoint" / "state.json"
    start = json.loads(state.read_text())["epoch"] if state.exists() else 0
    with open(out / "fit_calls.txt", "a") as f:
        f.write(f"start_epoch={start}\n")


def fit_calls(out: Path) -> list[int]:
    """The start epochs of every fit() call on this trial dir."""
    p = Path(out) / "fit_calls.txt"
    return [int(line.split("=")[1]) for line in p.read_text().split()] if p.exists() else []


def run_fake(cfg: C.Config, out_dir, report=None, prepared=None, resume=True) -> dict:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _log_call(out)
    assert prepared is None or isinstance(prepared, FakePrepared), type(prepared)
    assert prepared is None or prepared.max_users == cfg.data.max_users, "wrong Prepared for this trial"
    ckpt = out / "checkpoint"
    state = json.loads((ckpt / "state.json").read_text()) if resume and (ckpt / "state.json").exists() \
        else {"epoch": 0, "resumed_from": None}
    if state["epoch"]:
        state["resumed_from"] = state["epoch"]
    sleep = float(os.environ.get("SWEEP_FAKE_EPOCH_S", "0"))
    state.setdefault("history", [])
    while state["epoch"] < cfg.train.epochs:
        epoch = state["epoch"] + 1
        time.sleep(sleep)
        state["epoch"] = epoch
        state["history"].append({"epoch": epoch, "train/loss": 1.0 / epoch, **_metrics("valid", fake_valid(cfg, epoch))})
        ckpt.mkdir(exist_ok=True)
        atomic_write_text(ckpt / "state.json", json.dumps(state))
        if report:  # a test key the platform must strip before Tune sees it
            report({**state["history"][-1], "test/hr@10": -1.0}, ckpt)
        _maybe_fail(out, epoch)
    best = cfg.train.epochs
    metrics = {**_metrics("valid", fake_valid(cfg, best)), **_metrics("test", fake_test(cfg, best))}
    ranks = pd.DataFrame({"user": np.arange(1, 4), "rank_valid": [0, 1, 2], "rank_test": [3, 4, 5],
                          "train_len": [3, 4, 5], "test_input_len": [4, 5, 6]})
    ranks.to_parquet(out / "ranks.parquet", index=False)
    result = {"config": C.to_dict(cfg), "seed": cfg.train.seed, "code_version": "test",
              "dataset": {"name": cfg.data.name}, "metrics": metrics, "best_epoch": best,
              "epochs_run": state["epoch"], "wall_time_s": 0.01, "ranks_path": str(out / "ranks.parquet"),
              "mask_history": cfg.eval.mask_history, "max_len": cfg.data.max_len, "device": "cpu",
              "resumed_from": state["resumed_from"], "history": state["history"]}
    atomic_write_text(out / "result.json", json.dumps(result, default=str))
    if report:
        report({"epoch": state["epoch"], **metrics, "best_epoch": best, "final": True}, ckpt)
    return result


def counting_real_fit(cfg, out_dir, report=None, prepared=None, resume=True) -> dict:
    """The real fit(), with the same call log and FAIL_ONCE switch as the fake."""
    from sracl_ray.training.fit import fit

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _log_call(out)

    def wrapped(metrics, checkpoint_dir):
        report(metrics, checkpoint_dir)
        if not metrics.get("final"):
            _maybe_fail(out, int(metrics["epoch"]))

    return fit(cfg, out_dir, report=wrapped if report else None, prepared=prepared, resume=resume)


def fake_engine():
    from sracl_ray.sweeps.trainable import Engine

    return Engine(fake_prepare, run_fake)


def real_counting_engine():
    from sracl_ray.sweeps.trainable import Engine
    from sracl_ray.training.inputs import prepare_inputs

    return Engine(prepare_inputs, counting_real_fit)
