"""Progress lines and tracking callbacks (no Ray cluster needed)."""
from __future__ import annotations

import importlib.util
import pickle
from types import SimpleNamespace

import pytest

from sracl_ray.sweeps.tracking import Progress, tracking_callbacks


def trial(tid: str, status: str, value: float | None = None):
    return SimpleNamespace(trial_id=tid, status=status, last_result={"valid/ndcg@20": value} if value is not None else {})


def test_progress_line_counts_and_best():
    lines: list[str] = []
    p = Progress("valid/ndcg@20", "max", every_s=0, write=lines.append)
    trials = [trial("a", "RUNNING", 0.02), trial("b", "TERMINATED", 0.05), trial("c", "ERROR"), trial("d", "PENDING")]
    p.on_trial_result(1, trials, trials[0], {"valid/ndcg@20": 0.03})
    p.on_trial_complete(2, trials, trials[1])
    assert lines[-1] == ("[done b] trials: 1 running, 1 finished, 1 errored, 1 pending"
                         " | best valid/ndcg@20 = 0.0500 (trial b)")
    q = Progress("valid/ndcg@20", "min", write=lines.append)
    assert "best valid/ndcg@20 = 0.0200 (trial a)" in q.status(trials)
    # pickled into tuner.pkl: the writer is replaced by a module-level printer
    assert pickle.loads(pickle.dumps(p)).metric == "valid/ndcg@20"


def test_tracking_callbacks_tensorboard_and_lazy_mlflow():
    names = [type(c).__name__ for c in tracking_callbacks("x")]
    assert "TBXLoggerCallback" in names
    if importlib.util.find_spec("mlflow") is None:
        with pytest.raises(SystemExit, match="mlflow"):
            tracking_callbacks("x", "file:///tmp/mlruns")
    else:
        assert "MLflowLoggerCallback" in [type(c).__name__ for c in tracking_callbacks("x", "file:///tmp/mlruns")]
