"""Shared fixtures: tiny datasets and a fast semantic artifact (no downloads, no LLM)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Under pytest-xdist (`-n 2`, the README's default) each worker process has its own session Ray: a
# private RAY_TMPDIR keeps a worker's Ray, and the "is a Ray already running here?" lookup of the
# CLI under test, away from the other worker's (Ray finds a running cluster through
# $RAY_TMPDIR/ray/ray_current_cluster).  Tests that simulate a cluster set their own on top.
if os.environ.get("PYTEST_XDIST_WORKER") and "RAY_TMPDIR" not in os.environ:
    import tempfile

    os.environ["RAY_TMPDIR"] = tempfile.mkdtemp(prefix=f"ray-{os.environ['PYTEST_XDIST_WORKER']}-", dir="/tmp")

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
if str(REPO) not in sys.path:  # `from tests.badinput.harness import ...` from any test folder
    sys.path.insert(0, str(REPO))
# Ray workers import the sweep tests' engines (tests/sweeps/sweep_fakes.py) by module name, and a
# local Ray's workers inherit the environment of the process that started it: so the folder goes on
# PYTHONPATH here, before any test of any folder starts the session's Ray.
SWEEP_TESTS = str(REPO / "tests" / "sweeps")
if SWEEP_TESTS not in os.environ.get("PYTHONPATH", "").split(os.pathsep):
    os.environ["PYTHONPATH"] = os.pathsep.join([SWEEP_TESTS, *filter(None, os.environ.get("PYTHONPATH", "").split(
        os.pathsep))])


def fake_artifact(data, split, out_dir: Path, granularity: str = "prefix", dim: int = 16, seed: int = 0):
    """A real-format artifact from seeded random item vectors (fast; for engine tests)."""
    from sracl_ray.semantic.interim import build_from_item_embeddings
    from sracl_ray.semantic.artifact import SemanticArtifact, save_artifact

    vecs = np.random.default_rng(seed).normal(size=(split.n_items, dim)).astype(np.float32)
    art = build_from_item_embeddings(split, vecs, granularity, 20, {"builder": "test-random", "granularity": granularity})
    art = SemanticArtifact(**{**art.__dict__, "manifest": {"stage": "test", "settings": {"granularity": granularity}}})
    save_artifact(out_dir, art)
    return art


# Test modules that start their own (simulated multi-node) Ray clusters run first, before the
# process's session Ray exists, so that every later test shares one local Ray (starting Ray costs
# seconds each time); then the files that take longest (in the order a `--durations=0` run
# measured, longest first), so that pytest-xdist (-n 2 --dist loadfile: whole files, handed to
# whichever worker is free) does not end on one long file while the other worker idles.
CLUSTER_MODULES = ("test_multinode", "test_running_ray", "test_readme_cluster", "test_cloud_storage_slow",
                   "test_multinode_slow", "test_multinode_llm_slow")
LONG_FIRST = ("test_cloud_storage", "test_benchmark_smoke", "test_train", "test_resume", "test_sweep",
              "test_pipeline", "test_whole_report", "test_diverged_sweep", "test_trust_train", "test_quickstart",
              "test_status_filter", "test_reproduce_gpu_smoke", "test_summaries", "test_llm_serve_signals",
              "test_analysis_report", "test_reproduce", "test_llm_real")


def _module(item) -> str:
    return item.module.__name__.rsplit(".", 1)[-1]


def pytest_collection_modifyitems(config, items):
    def rank(item) -> tuple[int, int]:
        name = _module(item)
        if name.startswith(CLUSTER_MODULES):
            return (0, 0)
        if name in LONG_FIRST:
            return (1, LONG_FIRST.index(name))
        return (2, 0)
    items[:] = sorted(items, key=rank)  # stable: each file keeps its own order


@pytest.fixture
def local_ray():
    """The session's local Ray (2 CPUs): started on first use, kept up for every later test.

    Never shut down here: a test that needs another Ray (a simulated cluster) shuts this one down
    itself, and the next test asking for local_ray starts it again; those tests run first.
    """
    start_local_ray()
    yield


def start_local_ray() -> None:
    """The session's local Ray (2 CPUs, never one already running on the machine), once."""
    import ray

    from sracl_ray.raytools import ensure_ray

    if not ray.is_initialized():
        ensure_ray(num_cpus=2, address="local")


@pytest.fixture(scope="session")
def small_sample(tmp_path_factory):
    """(config overrides, Prepared) for the first 120 users of the packaged sample + a random artifact."""
    from sracl_ray.config import load
    from sracl_ray.data.readers import load_dataset
    from sracl_ray.data.split import leave_one_out

    cfg = load(None, ["data.max_users=120"])
    data = load_dataset(cfg.data)
    split = leave_one_out(data, cfg.data.max_len)
    art_dir = tmp_path_factory.mktemp("artifact")
    fake_artifact(data, split, art_dir)
    sets = ["data.max_users=120", f"semantic.artifact={art_dir}", "train.progress=false", "train.num_threads=1"]
    return sets
