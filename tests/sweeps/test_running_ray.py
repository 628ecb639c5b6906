"""Joining a Ray that is already running, as users meet it (`pytest -k running_ray`).

On a `ray up` head node a Ray runs before the driver starts and nobody sets RAY_ADDRESS; the
README runs `ray exec cluster.yaml 'sracl-ray sweep run ...'` there.  The fast tests check the
connect decision; the cluster test starts a 2-node loopback cluster first (every node on
127.0.0.1, a private RAY_TMPDIR) and runs the real CLI without RAY_ADDRESS: the sweep must land
on that cluster's nodes, not on a second, private Ray.
"""
from __future__ import annotations

import logging

import pytest

from sracl_ray.errors import UserError
from sracl_ray.raytools import connect_plan

REC = "/tmp/ray/ray_current_cluster"


def plan(address=None, env=None, running=(None, REC), live=True):
    return connect_plan(address, env or {}, running, answers=lambda a: live)


def test_running_ray_connect_decision():
    # 1. an explicit address wins over everything, then RAY_ADDRESS
    assert plan("10.0.0.5:6379", {"RAY_ADDRESS": "1.2.3.4:6379"}, ("127.0.0.1:6379", REC)).address == "10.0.0.5:6379"
    p = plan(None, {"RAY_ADDRESS": "1.2.3.4:6379"}, ("127.0.0.1:6379", REC))
    assert (p.action, p.address, p.why) == ("join", "1.2.3.4:6379", "RAY_ADDRESS")
    # 2. no address: the Ray recorded as running on this machine is joined
    p = plan(running=("127.0.0.1:6379", REC))
    assert (p.action, p.address) == ("join", "127.0.0.1:6379") and REC in p.why
    assert plan("auto", running=("127.0.0.1:6379", REC)).action == "join"
    # 3. none runs (or its record is stale): a local Ray is started
    assert plan().action == "start"
    assert plan(running=("127.0.0.1:6379", REC), live=False).action == "start"
    # `local` forces a fresh local Ray even where one runs or RAY_ADDRESS is set
    assert plan("local", {"RAY_ADDRESS": "1.2.3.4:6379"}, ("127.0.0.1:6379", REC)).action == "start"
    assert plan(None, {"RAY_ADDRESS": "local"}, ("127.0.0.1:6379", REC)).action == "start"


def test_running_ray_auto_without_one_is_a_one_line_error():
    with pytest.raises(UserError, match="no Ray is running on this machine"):
        plan("auto")


def test_running_ray_stale_record_is_said(caplog):
    caplog.set_level(logging.WARNING, logger="sracl_ray.raytools")
    assert plan(running=("127.0.0.1:1", REC), live=False).action == "start"
    assert "does not answer" in caplog.text and REC in caplog.text


def test_running_ray_real_probe_sees_a_closed_port():
    import socket

    from sracl_ray.raytools import _answers

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    assert not _answers(f"127.0.0.1:{port}", timeout_s=1)
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        assert _answers(f"127.0.0.1:{srv.getsockname()[1]}", timeout_s=1)


EXPERIMENT = """\
name: joins_running_ray
base:
  data: {max_users: 20}
  cl: {variant: no_cl}
  train: {epochs: 1, patience: 1, progress: false, num_threads: 1}
search:
  mode: grid
  grid: {train.seed: [1, 2]}
resources: {cpus: 1, gpus: 0}
max_failures: 0
"""


def test_running_ray_sweep_cli_joins_the_cluster_already_running(tmp_path, caplog, capsys, monkeypatch):
    """Trials train with the test engine (sweep_fakes: fit()'s contract in milliseconds): what is
    tested is how the driver reaches Ray, not training."""
    import os

    import ray
    import sweep_fakes

    from sracl_ray.sweeps import runner

    from sracl_ray.cli import main
    from sracl_ray.results.store import read_store
    from test_multinode import loopback_cluster

    monkeypatch.setattr(runner, "default_engine", sweep_fakes.fake_engine)
    exp = tmp_path / "exp.yaml"
    exp.write_text(EXPERIMENT)
    caplog.set_level(logging.INFO, logger="sracl_ray.raytools")
    with loopback_cluster({}, head_cpus=1, workers=1, connect=False) as (cluster, _):
        assert "RAY_ADDRESS" not in os.environ and not ray.is_initialized()
        code = main(["sweep", "run", str(exp), "--storage", str(tmp_path / "s")])
        out = capsys.readouterr().out
        assert code == 0, out
        assert "2 trials, 2 finished, 0 errored" in out, out
        # this process joined the running cluster, not a Ray of its own
        assert ray._private.worker._global_node.gcs_address == cluster.address
        alive = {n["NodeID"] for n in ray.nodes() if n["Alive"]}
        assert len(alive) == 2, alive
        assert set(read_store(tmp_path / "s")["node_id"]) <= alive
        line = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Ray: ")]
        assert line and "joined the Ray cluster at" in line[0] and "already running on this machine" in line[0], line
        assert "2 nodes, 2 CPUs, 0 GPUs" in line[0], line


def test_fresh_local_ray_without_ray_auth_mode_starts_with_token_auth(tmp_path):
    """What a user who never heard of RAY_AUTH_MODE meets (every other test sets it to disabled):
    a fresh process starts a local Ray with Ray's default token authentication — the token is
    created in ~/.ray, the Ray line explains it, Ray's bare warning is not printed.  A subprocess:
    Ray caches its auth mode at import, and this process imported Ray with auth disabled."""
    import os
    import shutil
    import subprocess
    import sys
    import tempfile

    ray_tmp = tempfile.mkdtemp(prefix="rt")  # short: Ray's socket paths must stay under 107 bytes
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_AUTH_MODE", "RAY_ADDRESS", "RAY_AUTH_TOKEN",
                                                            "RAY_AUTH_TOKEN_PATH")}
    env.update(HOME=str(tmp_path / "home"), RAY_TMPDIR=ray_tmp)
    code = ("import logging, ray; logging.basicConfig(level=logging.INFO)\n"
            "from sracl_ray.raytools import ensure_ray\n"
            "ensure_ray(num_cpus=1, address='local', dashboard=False)\n"
            "print('tasks run:', ray.get(ray.remote(lambda: 41 + 1).remote()))\n"
            "ray.shutdown()\n")
    try:
        proc = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True,
                              timeout=180)
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    printed = proc.stdout + proc.stderr
    assert proc.returncode == 0, printed[-3000:]
    assert "tasks run: 42" in proc.stdout
    assert (tmp_path / "home" / ".ray" / "auth_token").is_file()
    assert "token authentication, Ray's default" in printed and "RAY_AUTH_MODE=disabled opts out" in printed
    assert "Token authentication is enabled for this Ray cluster" not in printed
