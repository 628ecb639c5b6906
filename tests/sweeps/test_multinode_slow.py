"""Real clusters, slow tier (`pytest -m slow`): node loss, driver loss and the embed stage on a
simulated multi-node Ray cluster (every node on 127.0.0.1, a private RAY_TMPDIR; see
test_multinode.py).

- A worker node dies while a trial sits between fit()'s checkpoint of epoch 2 and its report:
  Tune retries the trial on another node, fit() resumes from its checkpoint, Tune's epoch record
  stays continuous, every trial is in the store exactly once, and the progress lines show it.
- The driver is SIGKILLed mid-sweep and `sweep resume` (a new driver on the same cluster) keeps
  the finished trials (test_resume.py's checks).
- The embed stage finishes on 3 one-CPU nodes (per-actor CPUs fit one node, not the cluster).
"""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import sweep_fakes
from test_multinode import add_node, loopback_cluster, tune_record

from sracl_ray.results import store as S
from sracl_ray.sweeps import experiment as E
from sracl_ray.sweeps import runner

pytestmark = pytest.mark.slow

EPOCH_S = "1.0"
# A lost node is declared dead after ~3 s (defaults: ~30 s).
FAST_FAILURE_DETECTION = {"health_check_initial_delay_ms": 1000, "health_check_period_ms": 1000,
                          "health_check_timeout_ms": 1000, "health_check_failure_threshold": 3}


@pytest.fixture(scope="module")
def cluster3():
    """Head + 2 workers, 1 CPU each; trials take SWEEP_FAKE_EPOCH_S=1 per epoch."""
    with loopback_cluster({"SWEEP_FAKE_EPOCH_S": EPOCH_S, "MN_GAP_MODE": "hang", "MN_VICTIM": "0"},
                          system_config=FAST_FAILURE_DETECTION) as (cluster, tmp):
        cluster.tmp = tmp
        yield cluster


def test_embed_stage_on_three_one_cpu_nodes(cluster3):
    import ray

    from sracl_ray.semantic.embeddings import TextEncoder, embed_texts
    from sracl_ray.semantic.settings import EmbedConfig

    assert len([n for n in ray.nodes() if n["Alive"]]) == 3 and ray.cluster_resources()["CPU"] == 3
    texts = [f"item {i}: a {['red', 'blue', 'green'][i % 3]} lipstick, shade {i}" for i in range(40)]
    t0 = time.monotonic()
    one = embed_texts(texts, EmbedConfig(actors=1, batch_size=8), progress=False, rows_per_block=8)
    three = embed_texts(texts, EmbedConfig(actors=3, batch_size=8), progress=False, rows_per_block=8)
    assert time.monotonic() - t0 < 240  # the old per-actor share (3 CPUs) never started at all
    local = TextEncoder("", "mean", "cpu").encode(texts[:5], 8)
    assert one.shape == three.shape == (40, local.shape[1])
    np.testing.assert_allclose(one, three, atol=1e-5)
    np.testing.assert_allclose(one[:5], local, atol=1e-5)


def test_driver_killed_on_a_cluster_resume_keeps_finished_trials(cluster3, tmp_path, monkeypatch):
    from test_resume import check_store, resume, run_until_killed

    monkeypatch.setenv("RAY_ADDRESS", cluster3.address)  # the driver subprocesses join the cluster
    storage = tmp_path / "sweep"
    finished = run_until_killed(storage, "grid", tmp_path / "run.log")
    resume(storage, tmp_path / "resume.log")
    check_store(storage, finished)
    df = S.read_store(storage)
    assert df["node_id"].nunique() >= 2, df["node_id"].tolist()  # spread over the cluster


def test_node_lost_mid_trial_is_retried_resumed_and_recorded_once(cluster3, tmp_path):
    """The victim node (MN_VICTIM=1) holds a trial between fit()'s checkpoint and its report."""
    import multinode_fakes
    import ray

    victim = add_node(cluster3, MN_VICTIM="1")  # only the node started now sees it
    storage = tmp_path / "s"
    n, epochs = 4, 4  # one trial per node: the victim gets one
    exp = E.from_dict({"name": "node_loss", "base": {"train": {"epochs": epochs}}, "max_failures": 2,
                       "search": {"mode": "grid", "grid": {"train.seed": list(range(1, n + 1))}}})
    lines: list[str] = []
    killed: list[str] = []

    def kill_victim_when_paused() -> None:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            paused = list(storage.glob("PAUSED-*"))
            if paused:
                assert paused[0].read_text() == victim.node_id
                killed.append(paused[0].name.removeprefix("PAUSED-"))
                cluster3.remove_node(victim, allow_graceful=False)  # raylet and workers: SIGKILL
                return
            time.sleep(0.2)

    killer = threading.Thread(target=kill_victim_when_paused)
    killer.start()
    out = runner.run_sweep(exp, storage, engine=multinode_fakes.gap_engine(), write=lines.append,
                           progress_every_s=5)
    killer.join(10)
    print("\n".join(lines))  # shown with -s: the progress lines of a sweep that lost a node
    assert killed, "no trial paused on the victim node:\n" + "\n".join(lines)
    lost = killed[0]
    assert (out.n_trials, out.n_finished, out.n_errored) == (n, n, 0), (out, lines)

    df = S.read_store(storage)
    assert len(df) == n and df["trial_id"].is_unique  # every trial exactly once
    assert victim.node_id not in set(df["node_id"])  # the lost trial finished elsewhere
    assert victim.node_id not in {x["NodeID"] for x in ray.nodes() if x["Alive"]}
    # retried, resumed from fit()'s checkpoint of epoch 2 (not from scratch)
    assert sweep_fakes.fit_calls(storage / "trials" / lost) == [0, multinode_fakes.GAP_EPOCH]
    # Tune's record of every trial is continuous: epochs 1..E, then the final report
    want = [(e, e, False) for e in range(1, epochs + 1)] + [(epochs, epochs + 1, True)]
    for trial in df["trial_id"]:
        assert tune_record(storage, trial) == want, (trial, tune_record(storage, trial))
    assert any(ln.startswith(f"[retry {lost}") for ln in lines), lines
