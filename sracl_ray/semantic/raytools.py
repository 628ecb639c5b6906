"""Small Ray helpers shared by the semantic stages (no work at import time)."""
from __future__ import annotations

import logging
import os

import pandas as pd

log = logging.getLogger(__name__)


def ensure_ray(num_cpus: int | None = None) -> None:
    """Start a local Ray (quiet, no dashboard) unless one is already running in this process.

    num_cpus defaults to $SRACL_RAY_NUM_CPUS or the machine's core count.
    """
    import ray

    if ray.is_initialized():
        return
    n = num_cpus or int(os.environ.get("SRACL_RAY_NUM_CPUS", 0)) or os.cpu_count() or 1
    ray.init(num_cpus=n, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=True)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # the stages draw their own rows/s bars
    ctx.print_on_execution_start = False


def blocks_of(df: pd.DataFrame, rows: int) -> list[pd.DataFrame]:
    """Split a frame into blocks of `rows` rows: one Ray Data task (and one output shard) each."""
    return [df.iloc[s:s + rows].reset_index(drop=True) for s in range(0, len(df), rows)]
