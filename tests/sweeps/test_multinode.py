"""Real clusters, fast tier: a simulated 2-node Ray cluster on loopback, and the pure pieces.

The cluster is `ray.cluster_utils.Cluster` with every node on 127.0.0.1 and a private RAY_TMPDIR
(never `ray start --address=127.0.0.1:...`: Ray rewrites that to the interface address).  Node 2
is a fake GPU node (Ray only counts the resource), added while the sweep waits for a GPU.
The slow tier (node loss, driver loss, the embed stage on 3 nodes) is test_multinode_slow.py.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import sweep_fakes

from sracl_ray.results import store as S
from tests.s3server import patched_env
from sracl_ray.sweeps import experiment as E
from sracl_ray.sweeps import runner
from sracl_ray.sweeps import trainable as T

CLUSTER_ENV = {"SWEEP_FAKE_EPOCH_S": "0.3", "MN_GAP_MODE": "raise"}


class SimCluster:
    """A head node (1 CPU) the driver is connected to; `gpu_node()` adds a 1-CPU, 1-fake-GPU node."""

    def __init__(self, tmp: Path):
        from ray.cluster_utils import Cluster

        self.tmp = tmp
        self.cluster = Cluster(initialize_head=True, head_node_args={
            "num_cpus": 1, "node_ip_address": "127.0.0.1", "include_dashboard": False})
        self.node2 = None

    def gpu_node(self):
        if self.node2 is None:
            self.node2 = self.cluster.add_node(num_cpus=1, num_gpus=1, node_ip_address="127.0.0.1")
        return self.node2


def start_cluster(tmp: Path, env: dict) -> dict:
    """Set env (+ a private RAY_TMPDIR) for this process and the nodes it starts; returns the old env.

    RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 keeps every address on 127.0.0.1 (else Ray swaps loopback
    for the interface address): child processes read it at start, this process read it when it
    imported ray, so the constant is set here too.
    """
    import ray
    from ray._private import ray_constants

    if ray.is_initialized():
        ray.shutdown()
    old = {k: os.environ.get(k) for k in [*env, "RAY_TMPDIR", "RAY_ADDRESS", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"]}
    old["<ENABLE_RAY_CLUSTER>"] = ray_constants.ENABLE_RAY_CLUSTER
    os.environ.update(env)
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    os.environ["RAY_TMPDIR"] = str(tmp)
    os.environ.pop("RAY_ADDRESS", None)
    ray_constants.ENABLE_RAY_CLUSTER = False
    return old


@contextmanager
def loopback_cluster(env: dict, head_cpus: int = 1, workers: int = 2, node_env=None, system_config=None,
                     connect: bool = True):
    """A head plus `workers` 1-CPU nodes, all on 127.0.0.1 in a private RAY_TMPDIR, this process
    connected to it (unless `connect` is false: then it is a Ray already running on this machine,
    as `ray up` leaves one on a head node); yields (cluster, tmp).  node_env(i) -> extra env the
    i-th worker starts with."""
    import ray
    from ray.cluster_utils import Cluster

    tmp = Path(tempfile.mkdtemp(prefix="rt", dir="/tmp"))  # short: Ray's socket paths have a length limit
    old = start_cluster(tmp, env)
    head = {"num_cpus": head_cpus, "node_ip_address": "127.0.0.1", "include_dashboard": False}
    cluster = Cluster(initialize_head=True, head_node_args={**head, **(
        {"_system_config": system_config} if system_config else {})})
    try:
        for i in range(workers):
            add_node(cluster, **(node_env(i) if node_env else {}))
        if connect:
            ray.init(address=cluster.address, logging_level=logging.WARNING)
        yield cluster, tmp
    finally:
        ray.shutdown()
        cluster.shutdown()
        restore_env(old)
        shutil.rmtree(tmp, ignore_errors=True)


def add_node(cluster, **env: str):
    """A 1-CPU node on 127.0.0.1 started with env added to this process's (its own from then on)."""
    with patched_env(env):
        return cluster.add_node(num_cpus=1, node_ip_address="127.0.0.1")


def restore_env(old: dict) -> None:
    from ray._private import ray_constants

    ray_constants.ENABLE_RAY_CLUSTER = old.pop("<ENABLE_RAY_CLUSTER>")
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="module")
def sim():
    import ray

    tmp = Path(tempfile.mkdtemp(prefix="rt", dir="/tmp"))  # short: Ray's socket paths have a length limit
    old = start_cluster(tmp, CLUSTER_ENV)
    c = SimCluster(tmp)
    try:
        ray.init(address=c.cluster.address, logging_level=logging.WARNING)
        yield c
    finally:
        ray.shutdown()
        c.cluster.shutdown()
        restore_env(old)
        shutil.rmtree(tmp, ignore_errors=True)


def tune_record(storage: Path, trial_id: str) -> list[tuple[int, int, bool]]:
    """(epoch, training_iteration, final) of every report Tune recorded for a trial."""
    lines = (storage / "tune" / f"trial_{trial_id}" / "result.json").read_text().splitlines()
    return [(r["epoch"], r["training_iteration"], r["final"]) for r in map(json.loads, lines)]


# ------------------------------------------------------------------ on the simulated cluster


def test_gpu_wait_falls_back_after_timeout(sim, caplog):
    caplog.set_level(logging.WARNING, logger="sracl_ray.sweeps.runner")
    t0 = time.monotonic()
    assert runner.effective_gpus(0.5, wait_s=2) == 0.0
    assert 2 <= time.monotonic() - t0 < 10
    text = caplog.text
    assert "waiting up to 2 s" in text and "running trials CPU-only" in text, text


def test_require_gpu_refuses_to_fall_back(sim):
    with pytest.raises(E.ConfigError, match=r"resources.require_gpu: .*no GPU") as err:
        runner.effective_gpus(1, wait_s=1, require=True)
    assert "\n" not in str(err.value)


def test_gpu_node_joining_during_the_wait_is_used(sim, caplog):
    caplog.set_level(logging.WARNING, logger="sracl_ray.sweeps.runner")
    got: list[float] = []
    waiter = threading.Thread(target=lambda: got.append(runner.effective_gpus(1, wait_s=120, line_every_s=2)))
    t0 = time.monotonic()
    waiter.start()
    time.sleep(1.5)
    sim.gpu_node()
    waiter.join(130)
    assert got == [1.0] and time.monotonic() - t0 < 100
    assert "a GPU node joined" in caplog.text


def test_two_node_sweep_uses_both_nodes(sim, tmp_path):
    import ray

    sim.gpu_node()
    exp = E.from_dict({"name": "two_nodes", "base": {"train": {"epochs": 2}}, "max_failures": 0,
                       "search": {"mode": "grid", "grid": {"train.seed": [1, 2]}}})
    out = runner.run_sweep(exp, tmp_path / "s", engine=sweep_fakes.fake_engine())
    assert (out.n_finished, out.n_errored) == (2, 0)
    df = S.read_store(tmp_path / "s")
    alive = {n["NodeID"] for n in ray.nodes() if n["Alive"]}
    assert len(alive) == 2 and set(df["node_id"]) == alive, (df["node_id"].tolist(), alive)


def test_shared_storage_check_asks_every_node(sim, tmp_path, caplog):
    """At sweep start a zero-CPU probe on each node reads the driver's marker and leaves its own."""
    import ray

    from sracl_ray.sweeps.shared_storage import MARKER_DIRNAME, check_shared_storage, ray_probe_all

    sim.gpu_node()
    answers: list[dict] = []

    def spy(*args):
        answers.extend(ray_probe_all(*args))
        return answers

    caplog.set_level(logging.INFO, logger="sracl_ray.sweeps.shared_storage")
    check_shared_storage(str(tmp_path), run_probes=spy)
    alive = {n["NodeID"] for n in ray.nodes() if n["Alive"]}
    assert {a["node"] for a in answers} == alive and len(alive) == 2
    assert all(a["sees_driver"] and not a["error"] for a in answers), answers
    assert not (tmp_path / MARKER_DIRNAME).exists() and "shared by all 2 node(s)" in caplog.text


def test_retry_after_loss_between_checkpoint_and_report_keeps_tunes_record_continuous(sim, tmp_path):
    """fit() saved epoch 2 and the trial died before reporting it (MN_GAP_MODE=raise): the retry
    resumes fit() at epoch 2, one ahead of Tune's marker, and replays epoch 2 to Tune first.  The
    trial asks for a GPU, so it runs on the GPU node."""
    import multinode_fakes

    node2 = sim.gpu_node()
    exp = E.from_dict({"name": "gap", "base": {"train": {"epochs": 3}}, "max_failures": 1,
                       "resources": {"cpus": 1, "gpus": 1, "gpu_wait_s": 0},
                       "search": {"mode": "grid", "grid": {"train.seed": [1]}}})
    lines: list[str] = []
    out = runner.run_sweep(exp, tmp_path / "s", engine=multinode_fakes.gap_engine(), write=lines.append)
    assert (out.n_finished, out.n_errored) == (1, 0), out
    df = S.read_store(tmp_path / "s")
    assert len(df) == 1 and df["node_id"].iloc[0] == node2.node_id  # the trial asked for a GPU
    trial = df["trial_id"].iloc[0]
    assert sweep_fakes.fit_calls(tmp_path / "s" / "trials" / trial) == [0, multinode_fakes.GAP_EPOCH]
    # no gap, no repeat: epochs 1, 2, 3 then the final report, iterations 1..4
    assert tune_record(tmp_path / "s", trial) == [(1, 1, False), (2, 2, False), (3, 3, False), (3, 4, True)]
    retry = [ln for ln in lines if ln.startswith(f"[retry {trial}")]
    assert retry and "injected loss between" in retry[0], lines


def test_staging_roots_include_the_connected_session(sim, monkeypatch):
    import ray

    monkeypatch.delenv("RAY_TMPDIR", raising=False)
    monkeypatch.delenv("TMPDIR", raising=False)
    session = Path(ray._private.worker._global_node.get_session_dir_path())
    roots = runner.staging_roots()
    assert roots[0] == session.parent and str(roots[0]).startswith(str(sim.tmp))
    assert Path("/tmp/ray") in roots


# ------------------------------------------------------------------ pure pieces


def test_actor_resources_fit_the_nodes_that_exist():
    from sracl_ray.semantic.raytools import ActorResources, actor_resources

    one_cpu = [{"CPU": 1.0}] * 3
    # cluster CPUs // actors would ask 3 CPUs of 1-CPU nodes and wait forever
    assert actor_resources(one_cpu, 1, use_gpu=False) == ActorResources(1.0, 0.0, 1)
    assert actor_resources(one_cpu, 3, use_gpu=False) == ActorResources(1.0, 0.0, 1)
    assert actor_resources([{"CPU": 8.0}], 2, use_gpu=False) == ActorResources(4.0, 0.0, 4)
    # 2 nodes x 8 CPUs, 3 actors: 5 each would fit only 2 of them; 4 each fits all 3
    assert actor_resources([{"CPU": 8.0}, {"CPU": 8.0}], 3, use_gpu=False).num_cpus == 4.0
    # a CPU-0 head hosts nothing
    assert actor_resources([{"CPU": 0.0}, {"CPU": 4.0}], 1, use_gpu=False).num_cpus == 4.0
    # more actors than CPUs: fractional shares, so all of them start
    assert actor_resources([{"CPU": 1.0}], 2, use_gpu=False).num_cpus == 0.5
    # GPUs: one per actor on the GPU nodes (a CPU head with GPU workers), fractions when short
    head_and_gpus = [{"CPU": 8.0}, {"CPU": 8.0, "GPU": 1.0}, {"CPU": 8.0, "GPU": 1.0}]
    assert actor_resources(head_and_gpus, 2, use_gpu=True) == ActorResources(1.0, 1.0, 0)
    assert actor_resources(head_and_gpus, 4, use_gpu=True).num_gpus == 0.5
    assert actor_resources([{"CPU": 1.0, "GPU": 1.0}], 2, use_gpu=True) == ActorResources(0.5, 0.5, 0)


def test_vllm_engines_ask_for_a_gpu():
    from sracl_ray.semantic.backends import vllm_bundle
    from sracl_ray.semantic.settings import SummaryConfig

    assert vllm_bundle(SummaryConfig(backend="vllm"))["bundle_per_worker"] == {"GPU": 1, "CPU": 1}
    assert vllm_bundle(SummaryConfig(backend="vllm", vllm_device="cpu"))["bundle_per_worker"] == {"CPU": 1}


def _fit_checkpoint(out: Path, epochs: int) -> None:
    (out / "checkpoint").mkdir(parents=True)
    history = [{"epoch": e, "train/loss": 1.0 / e, "valid/ndcg@20": 0.1 * e, "test/hr@10": -1.0}
               for e in range(1, epochs + 1)]
    (out / "checkpoint" / "state.json").write_text(json.dumps({"epoch": epochs, "history": history}))


def test_replay_reports_exactly_the_epochs_tune_missed(tmp_path):
    from ray import tune

    _fit_checkpoint(tmp_path, 3)  # fit() saved epoch 3; Tune's last marker says epoch 2
    marker_dir = tmp_path / "marker"
    marker_dir.mkdir()
    (marker_dir / T.MARKER_FILENAME).write_text(json.dumps({"epoch": 2, "final": False}))
    marker = T.marker_of(tune.Checkpoint.from_directory(str(marker_dir)))
    assert marker == {"epoch": 2, "final": False}
    seen: list[dict] = []
    assert T.replay_missed(marker, T.checkpoint_history(tmp_path / "checkpoint"), seen.append) == 1
    assert seen == [{"epoch": 3, "train/loss": 1 / 3, "valid/ndcg@20": 0.1 * 3, "final": False}]  # no test/ key
    # in step (the usual retry), a fresh start, a final marker, an unreadable marker: nothing replayed
    for m in ({"epoch": 3, "final": False}, {"epoch": 3, "final": True}, None):
        assert T.replay_missed(m, T.checkpoint_history(tmp_path / "checkpoint"), seen.append) == 0
    assert T.marker_of(None) == {"epoch": 0, "final": False}
    assert [h["epoch"] for h in T.missed_epochs(T.marker_of(None), T.checkpoint_history(tmp_path / "checkpoint"))] \
        == [1, 2, 3]
    # a half-swapped checkpoint (.old) is read like fit() reads it; none at all is no history
    (tmp_path / "checkpoint").rename(tmp_path / "checkpoint.old")
    assert len(T.checkpoint_history(tmp_path / "checkpoint")) == 3
    assert T.checkpoint_history(tmp_path / "nothing") == []


def test_repair_finds_staged_copies_under_tmpdir(tmp_path, monkeypatch):
    """Ray honours TMPDIR (and --temp-dir); the staged copy is found there too."""
    monkeypatch.delenv("RAY_TMPDIR", raising=False)
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmpdir"))
    roots = runner.staging_roots()  # (after the connected Ray's own temp dir, if any)
    assert roots.index(tmp_path / "tmpdir" / "ray") < roots.index(Path("/tmp/ray"))
    tune_dir = tmp_path / "sweep" / "tune"
    tune_dir.mkdir(parents=True)
    name = "experiment_state-2026-11-30_10-00-00.json"
    (tune_dir / name).write_bytes(b"")
    staged = tmp_path / "tmpdir" / "ray" / "session_9" / "artifacts" / "t" / "tune" / "driver_artifacts"
    staged.mkdir(parents=True)
    (staged / name).write_text('{"complete": true}')
    assert runner.repair_state_files(tune_dir) == [tune_dir / name]
    assert (tune_dir / name).read_text() == '{"complete": true}'


def test_resume_drops_only_empty_unused_trial_dirs(tmp_path):
    """A trial restored under a new dir name (trial_x_ab12) leaves its old, empty dir behind."""
    from types import SimpleNamespace

    tune_dir = tmp_path / "tune"
    for name in ("trial_a", "trial_b", "trial_b_ab12", "trial_c"):
        (tune_dir / name).mkdir(parents=True)
    (tune_dir / "trial_a" / "result.json").write_text("{}")
    results = [SimpleNamespace(path=str(tune_dir / n)) for n in ("trial_a", "trial_b_ab12")]
    assert runner.drop_orphan_trial_dirs(tune_dir, results) == [tune_dir / "trial_b", tune_dir / "trial_c"]
    assert sorted(d.name for d in tune_dir.iterdir()) == ["trial_a", "trial_b_ab12"]
    (tune_dir / "trial_d").mkdir()
    (tune_dir / "trial_d" / "params.json").write_text("{}")  # not empty: kept, whatever it is
    assert runner.drop_orphan_trial_dirs(tune_dir, results) == []


def test_resources_keys_are_validated():
    base = {"name": "r", "search": {"mode": "grid", "grid": {"train.seed": [1]}}}
    r = E.from_dict({**base, "resources": {"gpus": 0.5}}).resources
    assert (r.gpu_wait_s, r.require_gpu) == (300.0, False)
    r = E.from_dict({**base, "resources": {"gpus": 1, "gpu_wait_s": 5, "require_gpu": True}}).resources
    assert (r.gpus, r.gpu_wait_s, r.require_gpu) == (1.0, 5.0, True)
    for bad, match in (({"gpu_wait_s": -1}, "gpu_wait_s: must be >= 0"),
                       ({"gpu_wait_s": "long"}, "gpu_wait_s: must be a finite number"),
                       ({"gpus": 1, "require_gpu": "yes"}, "require_gpu: must be true or false"),
                       ({"require_gpu": True}, "require_gpu: true needs resources.gpus > 0"),
                       ({"gpu_wait": 3}, "did you mean 'gpu_wait_s'")):
        with pytest.raises(E.ConfigError, match=match):
            E.from_dict({**base, "resources": bad})


def test_errors_keep_their_path():
    from sracl_ray.errors import describe
    from sracl_ray.errors import error_line
    from sracl_ray.sweeps.tracking import Progress, trial_error_line

    class RayTaskError(FileNotFoundError):  # the shape of Ray's RayTaskError(FileNotFoundError)
        def __init__(self, cause):
            super().__init__(cause)
            self.cause = cause

    cause = FileNotFoundError(2, "No such file or directory", "/data/beauty/Beauty.txt")
    wrapped = RayTaskError(cause)
    assert wrapped.filename is None  # what the CLI saw: no path
    assert describe(wrapped) == (2, "/data/beauty/Beauty.txt: No such file or directory")
    assert error_line(wrapped) == "/data/beauty/Beauty.txt: No such file or directory"
    assert error_line(RuntimeError("a\nTraceback...\nValueError: bad thing")) == "ValueError: bad thing"

    class Trial:
        trial_id, num_failures = "abc_00001", 1

        def __init__(self, path):
            self.error_file = path

    err = Path(tempfile.mkdtemp()) / "error.txt"
    err.write_text("Failure # 1 (occurred at x)\nray::f()\n  File \"y\"\nFileNotFoundError: [Errno 2] No such "
                   "file or directory: '/x/items.tsv'\n")
    assert trial_error_line(Trial(err)) == "FileNotFoundError: [Errno 2] No such file or directory: '/x/items.tsv'"
    lines: list[str] = []
    Progress("valid/ndcg@20", "max", write=lines.append).on_trial_recover(0, [], Trial(err))
    assert lines[0].startswith("[retry abc_00001 (failure 1): FileNotFoundError:") and "/x/items.tsv" in lines[0]
    assert trial_error_line(Trial(err.with_name("missing.txt"))) == ""
    err.write_text("Failure # 1 (occurred at x)\nThe actor died unexpectedly before finishing this task.\n"
                   "\tclass_name: ImplicitFunc\n\tip: 127.0.0.1\nThe actor died because its node has died. Node Id: "
                   "8f\n\tthe actor's node was terminated unexpectedly: health check failed\n")
    assert trial_error_line(Trial(err)) == ("The actor died unexpectedly before finishing this task: the actor's node "
                                            "was terminated unexpectedly: health check failed")
    shutil.rmtree(err.parent)


def test_sweep_run_refuses_missing_data_path_and_unusable_storage_uris_before_ray(tmp_path):
    from tests.badinput.harness import Case, check_case

    exp = tmp_path / "exp.yaml"

    def setup(tmp: Path) -> str:
        exp.write_text("name: x\nbase:\n  data: {name: beauty, path: ~/no-such-dir/beauty, format: paper}\n"
                       "search: {mode: grid, grid: {train.seed: [1]}}\n")
        return "~/no-such-dir/beauty"

    check_case(Case("missing-data-path", ["sweep", "run", str(exp), "--storage", "{tmp}/s"],
                    ["line 3", "base.data.path", "--set data.path="], setup), tmp_path)
    check_case(Case("storage-uri", ["sweep", "run", str(exp), "--storage", "nosuchfs://bucket/runs/x"],
                    ["nosuchfs://bucket/runs/x", "cannot open this storage URI"]), tmp_path)
    check_case(Case("storage-uri-no-bucket", ["sweep", "run", str(exp), "--storage", "s3://"],
                    ["s3://", "needs a bucket"]), tmp_path)
