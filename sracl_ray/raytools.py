"""Connect to Ray once per process, the way Ray users expect.

In this order: an explicit address (`--address`, then $RAY_ADDRESS) joins that cluster; else a
Ray already running on this machine (what `ray start --head` or `ray up` leaves on a head node,
recorded in Ray's temp dir as `ray_current_cluster`) is joined; only when none runs is a local
Ray started, with `num_cpus`.  `--address local` always starts a fresh local Ray.  One log line
says which of the three happened and what the connected cluster holds.
"""
from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConnectPlan:
    """How this process connects: `join` an address, or `start` a local Ray (address None)."""

    action: str  # "join" | "start"
    address: str | None
    why: str  # where the address came from, or why a local Ray is started


def _answers(address: str, timeout_s: float = 2.0) -> bool:
    """True when something accepts TCP connections at host:port (a live GCS, not a stale record)."""
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout=timeout_s):
            return True
    except (OSError, ValueError):
        return False


def running_ray_address() -> tuple[str | None, str]:
    """(address of the Ray recorded as running on this machine, the record's path); None when none."""
    from ray._common.utils import get_ray_address_file

    path = get_ray_address_file(None)  # $RAY_TMPDIR/ray, $TMPDIR/ray or /tmp/ray
    try:
        with open(path) as f:
            address = f.read().strip()
    except OSError:
        return None, path
    return (address or None), path


def connect_plan(address: str | None = None, env: dict | None = None,
                 running: tuple[str | None, str] | None = None, answers=_answers) -> ConnectPlan:
    """Decide how to connect (pure apart from the TCP probe of a recorded Ray)."""
    env = os.environ if env is None else env
    for given, source, as_local in ((address, "--address", "--address local"),
                                    (env.get("RAY_ADDRESS"), "RAY_ADDRESS", "RAY_ADDRESS=local")):
        if given and given != "auto":
            return ConnectPlan("start", None, as_local) if given == "local" else ConnectPlan("join", given, source)
    found, record = running if running is not None else running_ray_address()
    if found and answers(found):
        return ConnectPlan("join", found, f"the Ray already running on this machine ({record})")
    if found:
        log.warning("%s names a Ray at %s that does not answer (a stale record of a stopped Ray): starting "
                    "a local Ray", record, found)
    if address == "auto" or env.get("RAY_ADDRESS") == "auto":
        from sracl_ray.errors import UserError

        raise UserError("Ray address 'auto': no Ray is running on this machine (start one with `ray start "
                        "--head`, give its address, or leave the address unset to start a local Ray)")
    return ConnectPlan("start", None, "no Ray is running on this machine")


def describe_cluster() -> str:
    """'3 nodes, 8 CPUs, 1 GPU' for the connected Ray."""
    import ray

    nodes = [n for n in ray.nodes() if n.get("Alive")]
    res = ray.cluster_resources()
    cpus, gpus = res.get("CPU", 0), res.get("GPU", 0)
    plural = lambda n, w: f"{n:g} {w}{'' if n == 1 else 's'}"  # noqa: E731
    return f"{plural(len(nodes), 'node')}, {plural(cpus, 'CPU')}, {plural(gpus, 'GPU')}"


RAY_AUTH_LOGGER = "ray._private.authentication.authentication_token_setup"
RAY_AUTH_WARNING = "Token authentication is enabled for this Ray cluster"


class _DropRayAuthWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(RAY_AUTH_WARNING)


def local_auth_mode() -> tuple[str, logging.Filter | None]:
    """(what to say in the Ray line, a filter for Ray's own warning or None).

    A new local Ray uses token authentication unless $RAY_AUTH_MODE says otherwise, and Ray warns
    about it without saying where the token is.  Ray itself must turn the mode on (it creates the
    token and refreshes its cached config: setting RAY_AUTH_MODE=token here would leave the token
    uncreated and the GCS dying), so its behaviour is kept and only its bare warning is dropped
    in favour of the explanation in the Ray line."""
    mode = os.environ.get("RAY_AUTH_MODE")
    if mode is None:
        return ("token authentication, Ray's default: its token is in ~/.ray/auth_token; RAY_AUTH_MODE=disabled "
                "opts out", _DropRayAuthWarning())
    return f"RAY_AUTH_MODE={mode}", None


def ensure_ray(num_cpus: int | None = None, *, address: str | None = None, num_gpus: float | None = None,
               dashboard: bool | None = None) -> ConnectPlan | None:
    """No-op when Ray is up; else join a cluster or start a local Ray (see the module docstring).

    A local Ray gets num_cpus (default $SRACL_RAY_NUM_CPUS or every core); its workers inherit
    this process's environment, PYTHONPATH included.  Joining, num_cpus/num_gpus are the cluster's
    business (Ray refuses them) and are ignored with a note.  On a cluster every node has the
    package installed (cluster.yaml setup_commands).  Ray Data's own progress bars are off: the
    stages draw their own rows/s bars.
    """
    import ray

    if ray.is_initialized():
        return None
    plan = connect_plan(address)
    if plan.action == "join":
        if num_cpus or num_gpus is not None:
            log.warning("joining an existing Ray cluster: --num-cpus/--num-gpus only size a local Ray this "
                        "command starts, so they are ignored")
        ray.init(address=plan.address, logging_level=logging.WARNING, log_to_driver=True)
        what = f"joined the Ray cluster at {plan.address} (from {plan.why})"
    else:
        n = num_cpus or int(os.environ.get("SRACL_RAY_NUM_CPUS", 0)) or os.cpu_count() or 1
        kwargs = {"num_gpus": num_gpus} if num_gpus is not None else {}
        if dashboard is not None:
            kwargs["include_dashboard"] = dashboard
        auth, quiet = local_auth_mode()
        ray_auth_log = logging.getLogger(RAY_AUTH_LOGGER)
        if quiet:
            ray_auth_log.addFilter(quiet)
        try:
            ray.init(address="local", num_cpus=n, logging_level=logging.WARNING, log_to_driver=True, **kwargs)
        finally:
            if quiet:
                ray_auth_log.removeFilter(quiet)
        what = f"started a local Ray ({plan.why}; {auth})"
    log.info("Ray: %s: %s", what, describe_cluster())
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    return plan


def live_nodes() -> list[dict[str, float]]:
    """The resources ({'CPU': 8.0, 'GPU': 1.0, ...}) of every live node of the connected Ray."""
    import ray

    return [dict(n.get("Resources") or {}) for n in ray.nodes() if n.get("Alive")]
