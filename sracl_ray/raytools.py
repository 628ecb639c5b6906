"""Connect to Ray once per process: a cluster when an address is given, else a local Ray."""
from __future__ import annotations

import logging
import os


def ensure_ray(num_cpus: int | None = None, *, address: str | None = None, num_gpus: float | None = None,
               dashboard: bool | None = None) -> None:
    """No-op when Ray is up; else join `address` (or $RAY_ADDRESS) or start a local Ray.

    A local Ray gets num_cpus (default $SRACL_RAY_NUM_CPUS or every core); its workers inherit
    this process's environment, PYTHONPATH included. On a cluster every node has the package
    installed (cluster.yaml setup_commands). Ray Data's own progress bars are off: the stages
    draw their own rows/s bars.
    """
    import ray

    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=True)
    else:
        n = num_cpus or int(os.environ.get("SRACL_RAY_NUM_CPUS", 0)) or os.cpu_count() or 1
        kwargs = {"num_gpus": num_gpus} if num_gpus is not None else {}
        if dashboard is not None:
            kwargs["include_dashboard"] = dashboard
        ray.init(num_cpus=n, logging_level=logging.WARNING, log_to_driver=True, **kwargs)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False


def live_nodes() -> list[dict[str, float]]:
    """The resources ({'CPU': 8.0, 'GPU': 1.0, ...}) of every live node of the connected Ray."""
    import ray

    return [dict(n.get("Resources") or {}) for n in ray.nodes() if n.get("Alive")]
