"""Progress lines and tracking callbacks (no Ray cluster needed)."""
from __future__ import annotations

import importlib.util
import pickle
import sys
from types import SimpleNamespace

import pytest

from sracl_ray.errors import UserError
from sracl_ray.sweeps.tracking import Progress, tracking_callbacks


def trial(tid: str, status: str, value: float | None = None, final: bool = True):
    result = {"valid/ndcg@20": value, "final": final} if value is not None else {}
    return SimpleNamespace(trial_id=tid, status=status, last_result=result)


def test_progress_line_counts_and_best():
    lines: list[str] = []
    p = Progress("valid/ndcg@20", "max", every_s=0, write=lines.append)
    trials = [trial("a", "RUNNING", 0.09, final=False), trial("b", "RUNNING", 0.05), trial("c", "ERROR"),
              trial("d", "PENDING")]
    # an epoch's value is not a trial's result: only final reports (the best epoch's metric) rank
    p.on_trial_result(1, trials, trials[0], {"valid/ndcg@20": 0.10, "final": False})
    p.on_trial_result(2, trials, trials[1], {"valid/ndcg@20": 0.05, "final": True})
    # Tune calls on_trial_complete before it marks the trial TERMINATED: the line counts it as finished
    p.on_trial_complete(2, trials, trials[1])
    assert lines[-1] == ("[done b] trials: 1 running, 1 finished, 1 errored, 1 pending"
                         " | best valid/ndcg@20 = 0.0500 (trial b)")
    p.on_trial_start(3, trials, trials[3])  # still PENDING in Tune's record when the callback runs
    assert lines[-1].startswith("[start d] trials: 3 running, 0 finished, 1 errored, 0 pending"), lines[-1]
    q = Progress("valid/ndcg@20", "min", write=lines.append)
    assert "best valid/ndcg@20 = 0.0500 (trial b)" in q.status(trials)  # a's 0.09 is not final
    # pickled into tuner.pkl: the writer is replaced by a module-level printer
    assert pickle.loads(pickle.dumps(p)).metric == "valid/ndcg@20"


def test_tensorboard_gets_one_point_per_epoch():
    from sracl_ray.sweeps.tracking import EpochTBXLoggerCallback, epoch_view

    epoch = {"epoch": 3, "training_iteration": 3, "valid/ndcg@20": 0.2, "final": False}
    assert epoch_view(epoch) is epoch
    final = {"epoch": 3, "training_iteration": 4, "best_epoch": 2, "valid/ndcg@20": 0.3, "test/ndcg@20": 0.25,
             "final": True, "time_this_iter_s": 0.1}
    assert epoch_view(final) == {"test/ndcg@20": 0.25, "best_epoch": 2, "training_iteration": 3}

    points: list[tuple[str, float, int]] = []

    class Writer:
        def add_scalar(self, tag, value, global_step):
            points.append((tag, value, global_step))

        def flush(self):
            pass

    class T:
        pass

    cb = EpochTBXLoggerCallback()
    t = T()
    cb._trial_writer[t], cb._trial_result[t] = Writer(), {}
    for e in (1, 2, 3):
        cb.log_trial_result(e, t, {"epoch": e, "training_iteration": e, "valid/ndcg@20": 0.1 * e, "final": False})
    cb.log_trial_result(4, t, {**final, "valid/ndcg@20": 0.2})
    valid = [(v, s) for tag, v, s in points if tag.endswith("valid/ndcg@20")]
    assert [s for _, s in valid] == [1, 2, 3], valid  # no 4th point jumping back to the best epoch's value
    assert [s for tag, _, s in points if tag.endswith("test/ndcg@20")] == [3]


def test_tracking_callbacks_tensorboard_and_lazy_mlflow(monkeypatch):
    names = [type(c).__name__ for c in tracking_callbacks("x")]
    assert "EpochTBXLoggerCallback" in names
    if importlib.util.find_spec("mlflow") is not None:
        assert "EpochMLflowLoggerCallback" in [type(c).__name__ for c in tracking_callbacks("x", "file:///tmp/mlruns")]
    monkeypatch.setitem(sys.modules, "mlflow", None)  # as where mlflow is not installed
    with pytest.raises(UserError, match="needs the mlflow package"):
        tracking_callbacks("x", "file:///tmp/mlruns")
