"""Engines for the multi-node and epoch-record tests (imported by Ray workers by module name).

`gap_fit`: the fake engine, except that a trial dies once right after fit() saved epoch
GAP_EPOCH's checkpoint and before it reported that epoch -- where a lost node leaves fit() one
epoch ahead of Tune's record.  How it dies:
  env MN_GAP_MODE=raise    the trial raises (deterministic, any node: the fast test)
  env MN_GAP_MODE=hang     on a node started with MN_VICTIM=1 only: writes <storage>/PAUSED-<trial>
                           holding its node id, then sleeps until the test kills that node
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import sweep_fakes

GAP_EPOCH = 2


def _paused(out: Path) -> Path:
    return out.parent.parent / f"PAUSED-{out.name}"


def gap_fit(cfg, out_dir, report=None, prepared=None, resume=True) -> dict:
    out = Path(out_dir)
    mode = os.environ.get("MN_GAP_MODE", "raise")
    victim = mode == "raise" or os.environ.get("MN_VICTIM") == "1"

    def wrapped(metrics, checkpoint_dir):
        marker = out / "gap_once"
        if victim and not metrics.get("final") and metrics["epoch"] == GAP_EPOCH and not marker.exists():
            marker.write_text("x")  # fit()'s checkpoint of this epoch is on disk, Tune has not seen it
            if mode == "raise":
                raise RuntimeError("injected loss between fit()'s checkpoint and its report")
            import ray

            _paused(out).write_text(ray.get_runtime_context().get_node_id())
            time.sleep(3600)  # the test kills this node
        report(metrics, checkpoint_dir)

    return sweep_fakes.run_fake(cfg, out_dir, report=wrapped if report else None, prepared=prepared, resume=resume)


def gap_engine():
    from sracl_ray.sweeps.trainable import Engine

    return Engine(sweep_fakes.fake_prepare, gap_fit)
