"""Tune callbacks: live progress lines, per-trial TensorBoard logs, optional MLflow."""
from __future__ import annotations

import logging
import re
import time
from pathlib import Path
from typing import Any, Callable

from ray.tune import Callback
from ray.tune.logger import TBXLoggerCallback

from sracl_ray.errors import _EXC_LINE, MAX_ERROR_CHARS

log = logging.getLogger(__name__)


def print_line(line: str) -> None:
    print(line, flush=True)


_NODE_LOST = re.compile(r"node (was terminated|died|is dead|has died)", re.I)


def trial_error_line(trial: Any) -> str:
    """The last failure Tune recorded for a trial (its error.txt), as one line; '' if none."""
    from sracl_ray.errors import one_line

    try:
        text = Path(trial.error_file).read_text() if getattr(trial, "error_file", None) else ""
    except OSError:
        return ""
    block = re.split(r"^Failure # \d+.*$", text, flags=re.M)[-1]
    lines = [ln.strip() for ln in block.splitlines() if ln.strip()]
    if not lines:
        return ""
    exc_lines = [ln for ln in lines if _EXC_LINE.match(ln)]
    line = one_line(exc_lines[-1] if exc_lines else lines[0])
    lost = [ln for ln in lines if _NODE_LOST.search(ln)]  # a lost node: say so, not just "actor died"
    if lost and not exc_lines:
        line = f"{line.rstrip('.')}: {one_line(lost[-1])}"
    return line if len(line) <= MAX_ERROR_CHARS else line[:MAX_ERROR_CHARS - 3] + "..."


class Progress(Callback):
    """Prints `trials: R running, F finished, E errored, P pending | best valid/... = x (trial)`.

    A line is written when a trial starts, finishes or errors, and at most every `every_s`
    seconds otherwise; its counts include the event it prints (Tune calls the callback before it
    updates the trial's status).  "Best" is over finished trials' final reports (the best epoch's
    validation metric), as in the sweep's final summary.  `write` is `print` in the CLI and a
    logger elsewhere.
    """

    def __init__(self, metric: str, mode: str, every_s: float = 30.0, write: Callable[[str], None] | None = None):
        self.metric, self.mode, self.every_s = metric, mode, every_s
        self.write = write or log.info
        self._best: tuple[float, str] | None = None
        self._last = 0.0

    def __getstate__(self) -> dict:
        # Pickled into tuner.pkl; a resumed sweep prints its progress to stdout (the writer given
        # at the start, e.g. print as patched by Ray, need not pickle) and rebuilds best-so-far.
        return {"metric": self.metric, "mode": self.mode, "every_s": self.every_s, "write": print_line}

    def __setstate__(self, state: dict) -> None:
        self.__init__(**state)

    def _better(self, value: float) -> bool:
        if self._best is None:
            return True
        return value > self._best[0] if self.mode == "max" else value < self._best[0]

    def _offer(self, result: dict | None, trial_id: str) -> None:
        value = (result or {}).get(self.metric)
        if value is not None and (result or {}).get("final") and self._better(float(value)):
            self._best = (float(value), trial_id)

    def status(self, trials: list, event: tuple[Any, str] | None = None) -> str:
        """The counts line; `event` = (trial, status it has now) for the trial whose event is printed."""
        counts: dict[str, int] = {}
        for t in trials:
            st = event[1] if event is not None and t is event[0] else t.status
            counts[st] = counts.get(st, 0) + 1
        for t in trials:  # restored trials carry their last result
            self._offer(t.last_result, t.trial_id)
        best = f"best {self.metric} = {self._best[0]:.4f} (trial {self._best[1]})" if self._best else \
            f"best {self.metric} = n/a"
        return (f"trials: {counts.get('RUNNING', 0)} running, {counts.get('TERMINATED', 0)} finished, "
                f"{counts.get('ERROR', 0)} errored, {counts.get('PENDING', 0) + counts.get('PAUSED', 0)} pending"
                f" | {best}")

    def _emit(self, trials: list, event: str = "", now: tuple[Any, str] | None = None) -> None:
        self._last = time.monotonic()
        self.write((f"[{event}] " if event else "") + self.status(trials, now))

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info) -> None:
        self._offer(result, trial.trial_id)

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info) -> None:
        self._emit(trials, f"start {trial.trial_id}", (trial, "RUNNING"))

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info) -> None:
        self._emit(trials, f"done {trial.trial_id}", (trial, "TERMINATED"))

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info) -> None:
        why = trial_error_line(trial)
        self._emit(trials, f"error {trial.trial_id}" + (f": {why}" if why else ""), (trial, "ERROR"))

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info) -> None:
        """A failed trial (an error, or its node lost) that Tune retries from its last checkpoint."""
        why = trial_error_line(trial)
        failures = getattr(trial, "num_failures", 0)
        self._emit(trials, f"retry {trial.trial_id} (failure {failures})" + (f": {why}" if why else ""),
                   (trial, "PENDING"))

    def on_step_end(self, iteration: int, trials: list, **info) -> None:
        if time.monotonic() - self._last >= self.every_s:
            self._emit(trials)

    def on_experiment_end(self, trials: list, **info) -> None:
        self._emit(trials, "end")


def epoch_view(result: dict) -> dict:
    """What TensorBoard gets of one report: an epoch as it is; the final report (the best epoch's
    validation metrics again, plus test) only as its test/ metrics and best_epoch, at the last
    epoch's step, so every curve has exactly one point per epoch and never jumps back."""
    if not result.get("final"):
        return result
    kept = {k: v for k, v in result.items() if k.startswith("test/") or k == "best_epoch"}
    return {**kept, "training_iteration": max(1, int(result.get("training_iteration", 1)) - 1)}


class EpochTBXLoggerCallback(TBXLoggerCallback):
    """Ray's TensorBoard logger, fed epoch_view(result)."""

    def log_trial_result(self, iteration: int, trial: Any, result: dict):
        super().log_trial_result(iteration, trial, epoch_view(result))


def tracking_callbacks(experiment: str, mlflow_uri: str | None = None) -> list:
    """TensorBoard event files in every trial dir (one point per epoch); MLflow runs when a tracking URI is given."""
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

    callbacks: list = [JsonLoggerCallback(), CSVLoggerCallback(), EpochTBXLoggerCallback()]
    if mlflow_uri:
        from sracl_ray.mlflow_log import require_mlflow

        require_mlflow()
        from sracl_ray.sweeps.mlflow_callback import EpochMLflowLoggerCallback  # imports mlflow

        callbacks.append(EpochMLflowLoggerCallback(tracking_uri=mlflow_uri, experiment_name=experiment,
                                                   save_artifact=False))
    return callbacks
