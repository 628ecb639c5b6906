"""Cloud storage, fast tier: a sweep whose storage is s3://... on a real S3-compatible server on
127.0.0.1 (moto's server, tests/s3server.py): storage primitives, a trial's checkpoint and outputs
round-tripping through the bucket, the shared-storage check, and the CLI end to end (sweep run,
results, report, refusal of a reused storage, resume).  The node-loss variant (a retry on another
node pulls the checkpoint back from the bucket) is in test_multinode_slow.py.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from sracl_ray import storage as S
from sracl_ray.results import store

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))
from s3server import S3Server, s3_env  # noqa: E402


@pytest.fixture(scope="module")
def s3():
    server = S3Server()
    with s3_env(server):
        yield server
    server.stop()


def test_storage_primitives_and_local_view_on_s3(s3, tmp_path):
    root = s3.bucket("sracl-prims") + "/sweeps/a/"
    root = S.normalise(root)
    assert root == "s3://sracl-prims/sweeps/a" and S.is_uri(root) and not S.exists(root)
    S.write_text(S.join(root, "sweep.json"), '{"x": 1}')
    S.write_bytes(S.join(root, "results", "trial-t1.parquet"), b"row1")
    S.write_bytes(S.join(root, "trials", "t1", "ranks.parquet"), b"ranks")
    S.write_bytes(S.join(root, "trials", "t1", "checkpoint-3", "model.safetensors"), b"weights")
    S.write_bytes(S.join(root, "tune", "experiment_state.json"), b"{}")
    assert S.read_text(S.join(root, "sweep.json")) == '{"x": 1}'
    assert S.exists(S.join(root, "results")) and S.is_dir(S.join(root, "results"))
    assert set(S.list_files(root)) == {"sweep.json", "results/trial-t1.parquet", "trials/t1/ranks.parquet",
                                       "trials/t1/checkpoint-3/model.safetensors", "tune/experiment_state.json"}
    with pytest.raises(FileNotFoundError):
        S.read_text(S.join(root, "absent.json"))

    view = store.local_view(root, cache=tmp_path / "view")
    got = sorted(p.relative_to(view).as_posix() for p in view.rglob("*") if p.is_file())
    assert got == ["results/trial-t1.parquet", "sweep.json", "trials/t1/ranks.parquet"]  # no state, no weights
    stamp = (view / "sweep.json").stat().st_mtime_ns
    S.delete(S.join(root, "results", "trial-t1.parquet"))
    S.write_bytes(S.join(root, "results", "trial-t2.parquet"), b"row2")
    store.local_view(root, cache=tmp_path / "view")
    assert (view / "sweep.json").stat().st_mtime_ns == stamp  # unchanged: not fetched again
    assert not (view / "results" / "trial-t1.parquet").exists()  # gone from the store: gone from the view
    assert (view / "results" / "trial-t2.parquet").read_bytes() == b"row2"

    S.delete(S.join(root, "trials"))
    assert not S.exists(S.join(root, "trials", "t1", "ranks.parquet"))
    with pytest.raises(S.StorageError, match="needs a bucket"):
        S.normalise("s3://")
    with pytest.raises(S.StorageError, match="cannot open this storage URI"):
        S.filesystem("nosuchfs://bucket/x")
    empty = S.normalise(s3.bucket("sracl-empty") + "/x")
    with pytest.raises(S.StorageError, match="results store is empty"):
        store.local_view(empty, cache=tmp_path / "empty")


def test_trial_files_keep_one_checkpoint_in_the_bucket_and_pull_it_on_another_node(s3, tmp_path, monkeypatch):
    from sracl_ray.sweeps.trainable import POINTER_FILENAME, TrialFiles

    storage = S.normalise(s3.bucket("sracl-trial") + "/sweep")
    monkeypatch.setenv("SRACL_SCRATCH", str(tmp_path / "node-a"))
    a = TrialFiles.of(storage, "t1")
    assert a.local.is_relative_to(tmp_path / "node-a") and a.remote == storage + "/trials/t1"
    ckpt = a.local / "checkpoint"
    for epoch in (1, 2):
        ckpt.mkdir(parents=True, exist_ok=True)
        (ckpt / "state.json").write_text(json.dumps({"epoch": epoch}))
        (ckpt / "model.safetensors").write_bytes(b"w" * epoch)
        a.push_checkpoint(ckpt, epoch)
    names = S.list_files(a.remote)
    assert set(names) == {POINTER_FILENAME, "checkpoint-2/model.safetensors", "checkpoint-2/state.json"}

    monkeypatch.setenv("SRACL_SCRATCH", str(tmp_path / "node-b"))  # a retry on another node
    b = TrialFiles.of(storage, "t1")
    assert b.local != a.local and not b.local.exists()
    b.pull(fresh=False)
    assert json.loads((b.local / "checkpoint" / "state.json").read_text()) == {"epoch": 2}
    assert (b.local / "checkpoint" / "model.safetensors").read_bytes() == b"ww"

    (b.local / "result.json").write_text('{"status": "ok"}')
    (b.local / "ranks.parquet").write_bytes(b"r")
    b.push("result.json", "ranks.parquet", "best.safetensors")  # best.safetensors absent: skipped
    assert {"result.json", "ranks.parquet"} <= set(S.list_files(b.remote))

    monkeypatch.setenv("SRACL_SCRATCH", str(tmp_path / "node-c"))  # Tune starts the trial afresh
    c = TrialFiles.of(storage, "t1")
    c.pull(fresh=True)
    assert not (c.local / "checkpoint").exists() and POINTER_FILENAME not in S.list_files(c.remote)
    assert (c.local / "result.json").exists()  # a finished result is still recognised (same config only)


def test_data_path_may_be_a_storage_uri(s3, tmp_path, monkeypatch):
    from sracl_ray.config import load
    from sracl_ray.data.readers import SAMPLE_DIR, load_dataset

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    uri = s3.bucket("sracl-data") + "/datasets/" + SAMPLE_DIR.name
    S.upload_dir(SAMPLE_DIR, uri)
    local = load_dataset(load(None, [f"data.path={SAMPLE_DIR}", "data.max_users=50"]).data)
    remote = load_dataset(load(None, [f"data.path={uri}", "data.max_users=50"]).data)
    assert remote.name == local.name and remote.fingerprint == local.fingerprint
    assert remote.interactions.equals(local.interactions)
    with pytest.raises(S.StorageError, match="no files there"):
        load_dataset(load(None, [f"data.path={uri}-missing"]).data)


def test_every_semantic_stage_reads_a_data_path_uri(s3, tmp_path, monkeypatch, capsys):
    """prepare and semantic (which runs summarize, embed and neighbours on prepare's output) read
    data.path=s3://... through the same function as train: the same dataset, the same fingerprint."""
    from sracl_ray import cli
    from sracl_ray.data.readers import SAMPLE_DIR
    from sracl_ray.manifest import read_manifest

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    uri = s3.bucket("sracl-stages") + "/datasets/" + SAMPLE_DIR.name
    S.upload_dir(SAMPLE_DIR, uri)
    common = ["--set", "data.max_users=30", "--no-progress"]
    assert cli.main(["prepare", "--set", f"data.path={SAMPLE_DIR}", *common, "--out", str(tmp_path / "local")]) == 0
    assert cli.main(["prepare", "--set", f"data.path={uri}", *common, "--out", str(tmp_path / "remote")]) == 0
    local = read_manifest(tmp_path / "local" / "prepared")["dataset"]
    remote = read_manifest(tmp_path / "remote" / "prepared")["dataset"]
    assert remote == local and (tmp_path / "remote" / "prepared" / "split").is_dir()
    assert not Path("s3:").exists()  # never the relative path "s3:/bucket/..."
    assert cli.main(["semantic", "--set", f"data.path={uri}", "--set", "summary.backend=raw", *common,
                     "--out", str(tmp_path / "sem")]) == 0
    assert (tmp_path / "sem" / "artifact").is_dir()
    capsys.readouterr()


def test_shared_storage_check_names_every_node_that_does_not_share(tmp_path):
    from sracl_ray.sweeps.shared_storage import MARKER_DIRNAME, check_shared_storage, probe

    shared, elsewhere = tmp_path / "shared", tmp_path / "node-local"
    shared.mkdir()
    elsewhere.mkdir()

    def probes(storage, driver_marker, token):
        good = {**probe(storage, driver_marker, token, node="n-good"), "host": "head"}
        # the worker's "same path" is another filesystem: it sees nothing and its marker lands elsewhere
        bad = {**probe(str(elsewhere), driver_marker, token, node="n-bad"), "host": "worker-7"}
        return [good, bad]

    with pytest.raises(S.StorageError) as e:
        check_shared_storage(str(shared), run_probes=probes)
    msg = str(e.value)
    assert "not shared by every node" in msg and "worker-7" in msg and "head" not in msg.split(":", 1)[1]
    assert "s3://" in msg  # says what to use instead
    assert not (shared / MARKER_DIRNAME).exists()  # markers cleaned up

    check_shared_storage(str(shared), run_probes=lambda s, d, t: [probe(s, d, t)])  # one node: fine

    def failing(storage, driver_marker, token):
        return [{"node": "n1", "host": "w1", "sees_driver": False, "error": "AccessDenied: no credentials"}]

    with pytest.raises(S.StorageError, match="w1 .*AccessDenied"):
        check_shared_storage(str(shared), run_probes=failing)


def test_sweep_on_s3_end_to_end_through_the_cli(s3, tmp_path, monkeypatch, capsys):
    """sweep run -> results -> report -> refused rerun -> resume, storage in the bucket only.  The
    two commands that start Ray (run, resume) are real subprocesses, whose Ray gets the bucket's
    environment; the readers (results, report, the refused rerun) run in-process, as cli.main."""
    from sracl_ray.cli import main
    from tests.badinput.harness import run_cli

    uri = s3.bucket("sracl-sweeps") + "/runs/smoke"
    env = {**s3.env(), "SRACL_RAY_NUM_CPUS": "2", "SRACL_SCRATCH": str(tmp_path / "scratch"),
           "XDG_CACHE_HOME": str(tmp_path / "cache")}
    run = run_cli(["sweep", "run", str(REPO / "experiments" / "smoke.yaml"), "--storage", uri], tmp_path, env, 1200)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert f"{uri}: 4 trials, 4 finished, 0 errored" in run.stdout
    keys = s3.keys("sracl-sweeps", "runs/smoke/")
    rows = [k for k in keys if k.startswith("runs/smoke/results/trial-")]
    assert len(rows) == 4, keys
    for name in ("result.json", "ranks.parquet", "best.safetensors"):
        assert len([k for k in keys if k.startswith("runs/smoke/trials/") and k.count("/") == 4
                    and k.endswith("/" + name)]) == 4, (name, keys)
    assert len([k for k in keys if k.endswith("/checkpoint.json")]) == 4  # each trial's last checkpoint, kept
    assert "runs/smoke/sweep.json" in keys and any(k.startswith("runs/smoke/tune/") for k in keys)
    assert not any(k.startswith("runs/smoke/.sracl-nodes") for k in keys)  # the node check cleaned up
    assert not (tmp_path / "s3:").exists()  # never a local dir named after the scheme

    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert main(["results", uri, "--format", "csv"]) == 0  # mean ± std over seeds
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("variant,n,") and sorted(ln.split(",")[:2] for ln in lines[1:]) == [
        ["full", "2"], ["no_cl", "2"]], lines
    assert main(["results", uri, "--format", "csv", "--sql", "SELECT trial_id, status FROM results ORDER BY 1"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 5

    assert main(["report", uri, "--out", str(tmp_path / "report")]) == 0
    assert (tmp_path / "report" / "index.html").exists()

    assert main(["sweep", "run", str(REPO / "experiments" / "smoke.yaml"), "--storage", uri]) == 2
    assert "already holds a sweep with 4 finished trial(s)" in capsys.readouterr().err

    before = {k: s3.keys("sracl-sweeps", k) for k in rows}
    resumed = run_cli(["sweep", "resume", uri], tmp_path, env, 900)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "4 finished, 0 errored" in resumed.stdout
    assert sorted(k for k in s3.keys("sracl-sweeps", "runs/smoke/results/")) == sorted(before)
