"""Is a sweep's storage really shared by every node?  Ask each node, before any trial runs.

A sweep's trials write their rows and checkpoints to the storage on whatever node they run; a
path that exists on every node but is not the same filesystem (a failed NFS/EFS mount leaves a
node-local dir at the mount point) lets the sweep "succeed" while the driver never sees the rows
written on the workers.  So the driver writes a marker, a zero-CPU task pinned to each live node
checks it sees that marker and writes one of its own, and the driver reads every node's marker
back.  Object storage gets the same check: it also proves every node has credentials for it.
"""
from __future__ import annotations

import logging
import socket
import uuid
from typing import Callable, Sequence

from sracl_ray import storage as S
from sracl_ray.results.layout import NODES_DIRNAME

log = logging.getLogger(__name__)

MARKER_DIRNAME = NODES_DIRNAME
PROBE_TIMEOUT_S = 300.0  # a node that is still installing packages may take a while to run a task


def probe(storage: str, driver_marker: str, token: str, node: str | None = None) -> dict:
    """Run on a node: does it see the driver's marker?  Leave its own.  -> {node, host, sees_driver, error}."""
    if node is None:
        import ray

        node = ray.get_runtime_context().get_node_id() if ray.is_initialized() else "local"
    out = {"node": node, "host": socket.gethostname(), "sees_driver": False, "error": ""}
    try:
        out["sees_driver"] = S.read_text(S.join(storage, MARKER_DIRNAME, driver_marker)) == token
    except FileNotFoundError:
        pass
    except Exception as e:  # noqa: BLE001 - reported to the driver, one line
        out["error"] = " ".join(str(e).split())
        return out
    try:
        S.write_text(S.join(storage, MARKER_DIRNAME, f"node-{node}"), token)
    except Exception as e:  # noqa: BLE001
        out["error"] = " ".join(str(e).split())
    return out


def ray_probe_all(storage: str, driver_marker: str, token: str) -> list[dict]:
    """`probe` on every live node of the connected Ray cluster (zero-CPU tasks pinned to each)."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    task = ray.remote(num_cpus=0, max_retries=1)(probe)
    nodes = [n["NodeID"] for n in ray.nodes() if n.get("Alive")]
    refs = [task.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=n, soft=False))
            .remote(storage, driver_marker, token) for n in nodes]
    ready, pending = ray.wait(refs, num_returns=len(refs), timeout=PROBE_TIMEOUT_S)
    out = [ray.get(r) for r in ready]
    out += [{"node": nodes[refs.index(r)], "host": "?", "sees_driver": False,
             "error": f"no answer within {PROBE_TIMEOUT_S:.0f} s"} for r in pending]
    return out


def live_node_count() -> int:
    import ray

    return sum(1 for n in ray.nodes() if n.get("Alive"))


def check_shared_storage(storage: str, run_probes: Callable[[str, str, str], Sequence[dict]] | None = None,
                         force: bool = False) -> None:
    """StorageError naming every node that does not share `storage` with the driver.

    A local path on a one-node cluster is shared by definition and is not probed (unless force).
    """
    if run_probes is None:
        if not force and not S.is_uri(storage) and live_node_count() <= 1:
            return
        run_probes = ray_probe_all
    token = uuid.uuid4().hex
    driver_marker = f"driver-{token}"
    marker_dir = S.join(storage, MARKER_DIRNAME)
    S.write_text(S.join(marker_dir, driver_marker), token)
    try:
        answers = list(run_probes(storage, driver_marker, token))
        problems = []
        for a in answers:
            who = f"node {a.get('host', '?')} ({str(a.get('node', '?'))[:12]})"
            if a.get("error"):
                problems.append(f"{who}: {a['error']}")
                continue
            if not a.get("sees_driver"):
                problems.append(f"{who} does not see the file the driver wrote there")
                continue
            try:
                seen = S.read_text(S.join(marker_dir, f"node-{a['node']}")) == token
            except FileNotFoundError:
                seen = False
            if not seen:
                problems.append(f"the driver does not see the file {who} wrote there")
    finally:
        try:
            S.delete(marker_dir)
        except S.StorageError as e:
            log.warning("could not remove %s: %s", marker_dir, e)
    if problems:
        raise S.StorageError(
            f"--storage {storage} is not shared by every node of the Ray cluster: {'; '.join(problems)}. "
            f"Trials on those nodes would write rows and checkpoints the driver never sees; use a filesystem "
            f"mounted at the same path on every node (NFS, EFS) or a storage URI (s3://bucket/prefix)")
    log.info("storage %s is shared by all %d node(s)", storage, len(answers))
