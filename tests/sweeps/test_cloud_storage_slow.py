"""Cloud storage on a simulated cluster, slow tier (`pytest -m slow`).

Every node is on 127.0.0.1 with a private RAY_TMPDIR (test_multinode.py), the storage is
s3://... on the loopback S3 server (tests/s3server.py), and every node gets its own scratch dir
(SRACL_SCRATCH), as separate machines would: what a retried trial finds on its new node came
from the bucket, not from a disk it shared with the lost node.

- A worker node dies while a trial sits between fit()'s checkpoint of epoch 2 and its report:
  the retry, on another node, pulls the last uploaded checkpoint (epoch 1) from the bucket and
  resumes there; every trial is in the store once and Tune's epoch record is continuous.
- `sracl-ray reproduce --smoke --storage s3://...` (a driver process joining the cluster, the
  real engine) finishes every experiment; `results` and `report` read the bucket back.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
import sweep_fakes
from test_multinode import add_node, loopback_cluster
from test_multinode_slow import FAST_FAILURE_DETECTION

from sracl_ray import storage as S
from sracl_ray.results import store as R
from sracl_ray.sweeps import experiment as E
from sracl_ray.sweeps import runner

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))
from s3server import S3Server, patched_env  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def s3_cluster():
    """Head (1 CPU) + 2 workers, each with its own scratch; S3 credentials and endpoint on every node."""
    server = S3Server()
    tmp = Path(tempfile.mkdtemp(prefix="rs", dir="/tmp"))
    env = {**server.env(), "SWEEP_FAKE_EPOCH_S": "1.0", "MN_GAP_MODE": "hang", "MN_VICTIM": "0",
           "SRACL_SCRATCH": str(tmp / "scratch-head")}
    try:
        with loopback_cluster(env, node_env=lambda i: {"SRACL_SCRATCH": str(tmp / f"scratch-w{i}")},
                              system_config=FAST_FAILURE_DETECTION) as (cluster, _):
            with patched_env({"SRACL_SCRATCH": str(tmp / "scratch-driver")}):
                cluster.tmp, cluster.s3 = tmp, server
                yield cluster
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def tune_record_at(uri: str, trial_id: str) -> list[tuple[int, int, bool]]:
    lines = S.read_text(S.join(uri, "tune", f"trial_{trial_id}", "result.json")).splitlines()
    return [(r["epoch"], r["training_iteration"], r["final"]) for r in map(json.loads, lines)]


def test_node_lost_mid_trial_resumes_from_the_bucket_on_another_node(s3_cluster):
    import multinode_fakes
    import ray

    tmp = s3_cluster.tmp
    uri = s3_cluster.s3.bucket("sracl-nodeloss") + "/sweeps/node_loss"
    victim = add_node(s3_cluster, SRACL_SCRATCH=str(tmp / "scratch-victim"), MN_VICTIM="1")
    n, epochs = 4, 4
    exp = E.from_dict({"name": "node_loss", "base": {"train": {"epochs": epochs}}, "max_failures": 2,
                       "search": {"mode": "grid", "grid": {"train.seed": list(range(1, n + 1))}}})
    lines: list[str] = []
    killed: list[str] = []

    def kill_victim_when_paused() -> None:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            paused = list((tmp / "scratch-victim").glob("sracl-scratch/*/PAUSED-*"))
            if paused:
                killed.append(paused[0].name.removeprefix("PAUSED-"))
                s3_cluster.remove_node(victim, allow_graceful=False)
                return
            time.sleep(0.2)

    killer = threading.Thread(target=kill_victim_when_paused)
    killer.start()
    out = runner.run_sweep(exp, uri, engine=multinode_fakes.gap_engine(), write=lines.append, progress_every_s=5)
    killer.join(10)
    print("\n".join(lines))
    assert killed, "no trial paused on the victim node:\n" + "\n".join(lines)
    lost = killed[0]
    assert (out.n_trials, out.n_finished, out.n_errored) == (n, n, 0), (out, lines)
    df = R.read_store(uri)
    assert len(df) == n and df["trial_id"].is_unique
    assert victim.node_id not in set(df["node_id"]) and victim.node_id not in {
        x["NodeID"] for x in ray.nodes() if x["Alive"]}
    # The retry ran on another node, whose scratch started empty: fit() began at the checkpoint
    # that only the bucket held.  The node died after fit() saved epoch 2 locally but before the
    # upload (which comes with the report), so the bucket's newest is epoch 1: on object storage a
    # lost node costs the epoch in flight, and Tune's record (1, then 2 again) stays continuous.
    retry_dirs = [d for d in tmp.glob("scratch-*/sracl-scratch/*/trials/" + lost) if "victim" not in str(d)]
    assert len(retry_dirs) == 1, retry_dirs
    assert sweep_fakes.fit_calls(retry_dirs[0]) == [multinode_fakes.GAP_EPOCH - 1]
    assert sweep_fakes.fit_calls(next(tmp.glob("scratch-victim/sracl-scratch/*/trials/" + lost))) == [0]
    want = [(e, e, False) for e in range(1, epochs + 1)] + [(epochs, epochs + 1, True)]
    for trial in df["trial_id"]:
        assert tune_record_at(uri, trial) == want, (trial, tune_record_at(uri, trial))
    assert any(ln.startswith(f"[retry {lost}") for ln in lines), lines


def test_reproduce_smoke_on_s3_from_a_driver_joining_the_cluster(s3_cluster):
    """The issue's closing run: `sracl-ray reproduce --smoke --storage s3://...` on the cluster."""
    tmp = s3_cluster.tmp
    uri = s3_cluster.s3.bucket("sracl-reproduce") + "/reproduce"
    env = {**os.environ, **s3_cluster.s3.env(), "RAY_ADDRESS": s3_cluster.address, "PYTHONPATH": str(REPO),
           "TQDM_DISABLE": "1", "SRACL_SCRATCH": str(tmp / "scratch-cli"), "XDG_CACHE_HOME": str(tmp / "cache")}
    log = tmp / "reproduce.log"
    t0 = time.monotonic()
    with open(log, "w") as f:
        rc = subprocess.run([sys.executable, "-m", "sracl_ray.cli", "reproduce", "--smoke", "--smoke-users", "40",
                             "--storage", uri], cwd=tmp, env=env, stdout=f, stderr=subprocess.STDOUT,
                            timeout=3000).returncode
    text = log.read_text()
    print(text[-6000:], f"\nwall {time.monotonic() - t0:.0f} s")
    assert rc == 0, text[-5000:]
    df = R.read_store(uri)
    from sracl_ray.sweeps.reproduce import experiment_files

    assert df["experiment"].nunique() == len(experiment_files(REPO / "experiments"))
    assert (df.groupby("experiment").size() == 2).all() and (df["status"] == "ok").all()
    assert df["node_id"].nunique() >= 2, df["node_id"].tolist()  # trials ran on several nodes
    rep = subprocess.run([sys.executable, "-m", "sracl_ray.cli", "report", uri, "--out", str(tmp / "report")],
                         cwd=tmp, env=env, capture_output=True, text=True, timeout=900)
    assert rep.returncode == 0, rep.stderr[-3000:]
    assert (tmp / "report" / "index.html").exists()
