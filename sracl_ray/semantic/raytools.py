"""Small Ray helpers shared by the semantic stages (no work at import time)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import pandas as pd


def blocks_of(df: pd.DataFrame, rows: int) -> list[pd.DataFrame]:
    """Split a frame into blocks of `rows` rows: one Ray Data task (and one output shard) each."""
    return [df.iloc[s:s + rows].reset_index(drop=True) for s in range(0, len(df), rows)]


@dataclass(frozen=True)
class ActorResources:
    """What each actor of a Ray Data actor pool asks for, and the torch threads it may use."""

    num_cpus: float
    num_gpus: float
    threads: int  # torch.set_num_threads in the actor (0: leave torch's default, e.g. on a GPU)


def _fits(nodes: Sequence[Mapping[str, float]], per_actor: Mapping[str, float], actors: int) -> bool:
    """Whether `actors` actors asking for `per_actor` each can all be placed on these nodes."""
    placed = 0
    for node in nodes:
        fit = [math.floor(node.get(k, 0.0) / v + 1e-9) for k, v in per_actor.items() if v > 0]
        placed += min(fit) if fit else actors
    return placed >= actors


def _amounts(largest: float, actors: int) -> list[float]:
    """Per-actor amounts to try, largest first: whole units down to 1, then 1/2, 1/3, ... 1/actors."""
    return [float(a) for a in range(int(largest), 0, -1)] + [1.0 / k for k in range(2, max(actors, 1) + 1)]


def actor_resources(nodes: Sequence[Mapping[str, float]], actors: int, use_gpu: bool) -> ActorResources:
    """The largest per-actor share with which all `actors` actors fit on the nodes that exist.

    A share of the whole cluster (cluster CPUs // actors) can exceed every single node -- 3 nodes
    of 1 CPU give one actor 3 CPUs, which no node can host, and the pool waits forever -- so the
    share is packed node by node.  With GPUs, each actor asks for a GPU (or a fraction, when there
    are more actors than GPUs) and a CPU on a GPU node; the device is picked inside the actor.
    """
    if use_gpu:
        gpu_nodes = [n for n in nodes if n.get("GPU", 0) > 0]
        largest = max((n["GPU"] for n in gpu_nodes), default=0.0)
        for gpus in _amounts(largest, actors):
            for cpus in [1.0] + [1.0 / k for k in range(2, actors + 1)]:
                if _fits(gpu_nodes, {"GPU": gpus, "CPU": cpus}, actors):
                    return ActorResources(cpus, gpus, 0)
        return ActorResources(1.0 / max(actors, 1), 1.0 / max(actors, 1), 0)
    largest = max((n.get("CPU", 0.0) for n in nodes), default=1.0)
    for cpus in _amounts(largest, actors):
        if _fits(nodes, {"CPU": cpus}, actors):
            return ActorResources(cpus, 0.0, max(1, int(cpus)))
    return ActorResources(1.0 / max(actors, 1), 0.0, 1)
