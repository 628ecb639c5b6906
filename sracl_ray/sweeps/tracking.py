"""Tune callbacks: live progress lines, per-trial TensorBoard logs, optional MLflow."""
from __future__ import annotations

import logging
import time
from typing import Any, Callable

from ray.tune import Callback

log = logging.getLogger(__name__)


def print_line(line: str) -> None:
    print(line, flush=True)


class Progress(Callback):
    """Prints `trials: R running, F finished, E errored, P pending | best valid/... = x (trial)`.

    A line is written when a trial starts, finishes or errors, and at most every `every_s`
    seconds otherwise.  `write` is `print` in the CLI and a logger elsewhere.
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

    def status(self, trials: list) -> str:
        counts: dict[str, int] = {}
        for t in trials:
            counts[t.status] = counts.get(t.status, 0) + 1
        for t in trials:  # restored trials carry their last result
            value = (t.last_result or {}).get(self.metric)
            if value is not None and self._better(float(value)):
                self._best = (float(value), t.trial_id)
        best = f"best {self.metric} = {self._best[0]:.4f} (trial {self._best[1]})" if self._best else \
            f"best {self.metric} = n/a"
        return (f"trials: {counts.get('RUNNING', 0)} running, {counts.get('TERMINATED', 0)} finished, "
                f"{counts.get('ERROR', 0)} errored, {counts.get('PENDING', 0) + counts.get('PAUSED', 0)} pending"
                f" | {best}")

    def _emit(self, trials: list, event: str = "") -> None:
        self._last = time.monotonic()
        self.write((f"[{event}] " if event else "") + self.status(trials))

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info) -> None:
        value = result.get(self.metric)
        if value is not None and self._better(float(value)):
            self._best = (float(value), trial.trial_id)

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info) -> None:
        self._emit(trials, f"start {trial.trial_id}")

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info) -> None:
        self._emit(trials, f"done {trial.trial_id}")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info) -> None:
        self._emit(trials, f"error {trial.trial_id}")

    def on_step_end(self, iteration: int, trials: list, **info) -> None:
        if time.monotonic() - self._last >= self.every_s:
            self._emit(trials)

    def on_experiment_end(self, trials: list, **info) -> None:
        self._emit(trials, "end")


def tracking_callbacks(experiment: str, mlflow_uri: str | None = None) -> list:
    """TensorBoard event files in every trial dir; MLflow runs when a tracking URI is given."""
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback, TBXLoggerCallback

    callbacks: list = [JsonLoggerCallback(), CSVLoggerCallback(), TBXLoggerCallback()]
    if mlflow_uri:
        try:
            import mlflow  # noqa: F401  (checked here so the error is clear, before any trial runs)
        except ImportError:
            raise SystemExit("--mlflow-uri needs the mlflow package: pip install 'sracl-ray[mlflow]'") from None
        from ray.air.integrations.mlflow import MLflowLoggerCallback

        callbacks.append(MLflowLoggerCallback(tracking_uri=mlflow_uri, experiment_name=experiment,
                                              save_artifact=False))
    return callbacks
