"""Ray Tune's MLflow logger, one step per epoch and with MLflow-legal metric names (imports mlflow)."""
from __future__ import annotations

from typing import Any

from ray.air.integrations.mlflow import MLflowLoggerCallback

from sracl_ray.mlflow_log import mlflow_metrics
from sracl_ray.sweeps.tracking import epoch_view


class EpochMLflowLoggerCallback(MLflowLoggerCallback):
    """MLflowLoggerCallback fed epoch_view(result) with '@' renamed (MLflow refuses 'valid/ndcg@20')."""

    def log_trial_result(self, iteration: int, trial: Any, result: dict):
        view = epoch_view(result)
        super().log_trial_result(iteration, trial, {**mlflow_metrics(view),
                                                    "training_iteration": view["training_iteration"]})
