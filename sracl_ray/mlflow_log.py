"""Optional MLflow logging for `train`, `sweep run`, `quickstart` and `reproduce` (`--mlflow-uri`).

MLflow names may not contain '@', so a metric key `valid/ndcg@20` is logged as `valid/ndcg_at_20`;
settings are logged as parameters under their dotted names (`cl.alpha`).  A run's steps are
epochs; the final test metrics are logged once, at the last epoch.  mlflow is an optional
package: `require_mlflow()` turns its absence into a one-line error before any data is read.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

from sracl_ray.errors import UserError


def require_mlflow() -> None:
    """UserError when mlflow cannot be imported (checked before any data is read or Ray starts)."""
    try:
        import mlflow  # noqa: F401
    except ImportError:
        raise UserError("--mlflow-uri needs the mlflow package, which is not installed here: "
                        "pip install 'sracl-ray[mlflow]' (or mlflow-skinny)") from None


def metric_name(key: str) -> str:
    """An MLflow-legal metric name: 'valid/ndcg@20' -> 'valid/ndcg_at_20'."""
    return str(key).replace("@", "_at_")


def mlflow_metrics(result: Mapping[str, Any]) -> dict[str, float]:
    """The finite numeric metrics of one report, renamed for MLflow (settings and flags left out)."""
    out = {}
    for key, value in result.items():
        if not str(key).startswith(("train/", "valid/", "test/")) or isinstance(value, bool):
            continue
        if isinstance(value, (int, float)) and math.isfinite(float(value)):
            out[metric_name(key)] = float(value)
    return out


class TrainRun:
    """One MLflow run for `sracl-ray train`: parameters at the start, metrics at every epoch, test at the end.

    Used as fit()'s `report` callback: `run.report(metrics, checkpoint_dir)`.
    """

    def __init__(self, tracking_uri: str, experiment: str, settings: Mapping[str, Any], run_name: str):
        import mlflow

        require_mlflow()
        self.mlflow = mlflow
        mlflow.set_tracking_uri(tracking_uri)
        mlflow.set_experiment(experiment)
        self.run = mlflow.start_run(run_name=run_name)
        params = {k: str(v) for k, v in settings.items()}
        items = list(params.items())
        for i in range(0, len(items), 100):  # MLflow takes at most 100 parameters per call
            mlflow.log_params(dict(items[i:i + 100]))

    def report(self, metrics: Mapping[str, Any], checkpoint_dir=None) -> None:
        final = bool(metrics.get("final"))
        step = int(metrics.get("epoch", 0))
        shown = {k: v for k, v in metrics.items() if not final or str(k).startswith("test/")}
        if shown:
            self.mlflow.log_metrics(mlflow_metrics(shown), step=step)
        if final:
            self.mlflow.set_tag("best_epoch", str(metrics.get("best_epoch", "")))

    def end(self, failed: bool = False) -> None:
        self.mlflow.end_run(status="FAILED" if failed else "FINISHED")
