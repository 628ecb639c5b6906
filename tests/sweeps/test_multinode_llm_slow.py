"""Slow tier (`pytest -m slow`): a node lost mid-summaries costs only its in-flight batch.

The summarise stage (`run_summaries`, summary.backend=openai) runs on a simulated 3-node Ray
cluster -- a 0-CPU head (the driver) and two 1-CPU workers, all on 127.0.0.1 with a private
RAY_TMPDIR (see test_multinode.py) -- so Ray Data's OpenAIChat actors live on the workers.  They
ask the real llama.cpp server (SmolLM2-135M, tests/semantic/conftest.py's `llama_server`) through
a counting proxy on loopback.  Once a few shards are stored, the worker hosting the most actors is
SIGKILLed (raylet and workers).  Expected, and checked:

- the run ends by itself (Ray Data restarts the lost actor on the surviving worker and retries
  its batch; a clear error would also do) -- it never hangs;
- every answer stored before the kill is still in the store, byte for byte (same text, same
  `created` stamp: nothing rewrote it);
- only the in-flight batch(es) of the victim's actors are asked twice, and a rerun sends 0
  requests for finished prompts and ends complete, every prompt stored as a success exactly once.

Run: timeout 900 python -m pytest -q -m slow tests/sweeps/test_multinode_llm_slow.py -p no:cacheprovider -s
(about a minute or two on 2 cores; -s shows what happened at the kill).
"""
from __future__ import annotations

import collections
import threading
import time

import pandas as pd
import pytest
from test_multinode import loopback_cluster
from test_multinode_slow import FAST_FAILURE_DETECTION

from sracl_ray.semantic.settings import SummaryConfig
from sracl_ray.semantic.store import SummaryStore
from sracl_ray.semantic.summaries import run_summaries, with_keys
from tests.semantic.conftest import LoopbackChat, llama_server  # noqa: F401  (llama_server: a session fixture)

pytestmark = pytest.mark.slow

N_PROMPTS, BATCH, ACTORS = 32, 4, 2
KILL_AFTER_SHARDS = 2  # >= 8 answers stored, <= 24 to go when the node dies
RUN_LIMIT_S = 300  # a run still going after this is hung


class CountingProxy(LoopbackChat):
    """A loopback pass-through to an OpenAI-compatible server that counts requests per prompt."""

    def __init__(self, upstream: str):
        self.upstream = upstream.rstrip("/") + "/chat/completions"
        super().__init__()

    async def answer(self, request, body: dict, prompt: str):
        import aiohttp
        from aiohttp import web

        async with aiohttp.ClientSession() as s, s.post(self.upstream, json=body) as r:
            return web.Response(status=r.status, body=await r.read(), content_type="application/json")


@pytest.fixture(scope="module")
def llm_cluster():
    """0-CPU head (the driver) + two 1-CPU workers: every summary actor runs on a worker."""
    import ray

    with loopback_cluster({}, head_cpus=0, system_config=FAST_FAILURE_DETECTION) as (cluster, _):
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        ctx.print_on_execution_start = False
        yield cluster


def summary_actor_nodes() -> collections.Counter[str]:
    """Node id -> number of live Ray Data map-worker actors on it (from the GCS; no dashboard)."""
    from ray._private import state

    actors = state.actors(actor_state_name="ALIVE").values()
    return collections.Counter(a["Address"]["NodeID"] for a in actors if "MapWorker" in a["ActorClassName"])


def run_bounded(fn) -> dict:
    """Run fn() in a thread; {'report': ...} or {'error': ...}; fails the test if it hangs."""
    out: dict = {}

    def body() -> None:
        try:
            out["report"] = fn()
        except Exception as e:  # a clear error is an acceptable end of the killed run
            out["error"] = e

    t = threading.Thread(target=body, daemon=True)
    t.start()
    t.join(RUN_LIMIT_S)
    assert not t.is_alive(), f"run_summaries still running after {RUN_LIMIT_S}s: hung after the node loss"
    return out


def test_node_lost_mid_summaries_costs_only_the_in_flight_batch(llm_cluster, llama_server, tmp_path,  # noqa: F811
                                                               monkeypatch):
    import ray

    alive = [n for n in ray.nodes() if n["Alive"]]
    assert len(alive) == 3 and ray.cluster_resources()["CPU"] == 2
    proxy = CountingProxy(llama_server.base_url)
    cfg = SummaryConfig(backend="openai", base_url=proxy.base_url, model=llama_server.model, max_tokens=8,
                        batch_size=BATCH, actors=ACTORS, concurrency=ACTORS, timeout_s=60, retries=1,
                        backoff_s=0.5)
    prompts = [f"User {i} bought: a {['red', 'blue', 'green', 'pink'][i % 4]} lipstick (shade {i}) and a "
               f"{['matte', 'glossy'][i % 2]} nail polish." for i in range(N_PROMPTS)]
    recs = with_keys(pd.DataFrame({"kind": "unit", "id": range(N_PROMPTS), "system": "Summarise the user's "
                                   "taste in one short sentence.", "prompt": prompts, "raw": prompts}), cfg)
    key_of = dict(zip(recs["prompt"], recs["key"]))

    # Every shard the driver writes, as (key, error) rows: "stored as a success exactly once".
    writes: list[pd.DataFrame] = []
    real_write = SummaryStore.write_shard

    def spy_write(self, answers):
        writes.append(answers[["key", "error"]].copy())
        return real_write(self, answers)

    monkeypatch.setattr(SummaryStore, "write_shard", spy_write)

    store = SummaryStore(tmp_path)
    kill: dict = {}

    def kill_a_summary_node() -> None:
        deadline = time.monotonic() + RUN_LIMIT_S
        while time.monotonic() < deadline:
            if len(list(store.shards.glob("part-*.parquet"))) >= KILL_AFTER_SHARDS:
                on = summary_actor_nodes()
                victim = max((n for n in llm_cluster.worker_nodes if on[n.node_id]), key=lambda n: on[n.node_id],
                             default=None)
                if victim is None:  # no live actor on a worker yet: look again
                    time.sleep(0.05)
                    continue
                kill.update(snapshot=store.read(), asked=sum(proxy.calls.values()), actors=dict(on),
                            victim=victim.node_id, on_victim=on[victim.node_id], t=time.monotonic())
                llm_cluster.remove_node(victim, allow_graceful=False)  # raylet and its workers: SIGKILL
                return
            time.sleep(0.05)

    try:
        killer = threading.Thread(target=kill_a_summary_node, daemon=True)
        killer.start()
        t0 = time.monotonic()
        first = run_bounded(lambda: run_summaries(recs, cfg, tmp_path, progress=False))
        t1 = time.monotonic()
        killer.join(10)
        assert kill, f"no node was killed (the run ended first?): {first}"
        assert kill["victim"] not in {n["NodeID"] for n in ray.nodes() if n["Alive"]}
        before = kill["snapshot"]
        assert len(before) >= KILL_AFTER_SHARDS * BATCH and (before["error"] == "").all(), before
        after_first = store.read()
        done_first = set(after_first.loc[after_first["error"] == "", "key"])
        outcome = ("finished: " + str(first["report"])) if "report" in first else f"error: {first['error']!r}"
        print(f"\nkilled node {kill['victim'][:8]} (actors per node {kill['actors']}) after "
              f"{len(before)} stored answers and {kill['asked']} requests, {kill['t'] - t0:.1f}s in; "
              f"first run ended {t1 - kill['t']:.1f}s after the kill -> {outcome}; "
              f"{len(done_first)}/{N_PROMPTS} stored, {sum(proxy.calls.values())} requests so far")

        calls_first = collections.Counter(proxy.calls)
        second = run_summaries(recs, cfg, tmp_path, progress=False)
        print(f"rerun: {second}; {sum(proxy.calls.values()) - sum(calls_first.values())} requests")
    finally:
        proxy.close()

    # The rerun asks for exactly what the store lacks and ends complete.
    assert second.complete and second.asked == N_PROMPTS - len(done_first), second
    final = store.read().set_index("key")
    assert len(final) == N_PROMPTS and (final["error"] == "").all() and (final["text"].str.len() > 0).all()
    # Answers stored before the kill are there, unchanged (same text, same created stamp).
    cols = ["text", "error", "completion_tokens", "created"]
    pd.testing.assert_frame_equal(final.loc[before["key"], cols], before.set_index("key")[cols])
    # 0 requests in the rerun for a finished prompt (one stored before the kill, or by the first run).
    rerun_calls = {key_of[p]: n - calls_first[p] for p, n in proxy.calls.items() if n > calls_first[p]}
    assert not set(rerun_calls) & done_first, rerun_calls
    assert not set(rerun_calls) & set(before["key"])
    # Every prompt stored as a success exactly once, over both runs.
    written = pd.concat(writes, ignore_index=True)
    ok = written.loc[written["error"].fillna("") == "", "key"].value_counts()
    assert len(ok) == N_PROMPTS and (ok == 1).all(), ok[ok > 1]
    # The node loss cost at most the in-flight batch of each actor on the victim: only prompts
    # never stored before the kill were asked twice, and at most BATCH of them per lost actor.
    asked_twice = {key_of[p] for p, n in proxy.calls.items() if n > 1}
    assert not asked_twice & set(before["key"]), asked_twice
    assert len(asked_twice) <= BATCH * kill["on_victim"], (len(asked_twice), kill["on_victim"])
