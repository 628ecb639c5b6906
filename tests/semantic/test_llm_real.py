"""The real path: llama.cpp's OpenAI-compatible server with SmolLM2-135M on loopback."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from sracl_ray import cli
from sracl_ray.config import DataConfig
from sracl_ray.data.readers import load_dataset
from sracl_ray.data.split import leave_one_out
from sracl_ray.semantic.artifact import load_artifact
from sracl_ray.semantic.pipeline import load_prepared, prompt_records, stage_dirs
from sracl_ray.semantic.settings import PipelineConfig, SummaryConfig
from sracl_ray.semantic.store import SummaryStore
from sracl_ray.semantic.summaries import run_summaries
from sracl_ray.semantic.units import build_units


def test_real_llm_summaries(llama_server, ray_local, tmp_path):
    data = load_dataset(DataConfig(max_users=3))
    split = leave_one_out(data, 20)
    cfg = SummaryConfig(base_url=llama_server.base_url, model=llama_server.model, max_tokens=24, batch_size=2)
    recs = prompt_records(data, split, "user", PipelineConfig(summary=cfg)).iloc[:3]
    rep = run_summaries(recs, cfg, tmp_path, progress=False)
    assert rep.complete and rep.asked == 3 and rep.completion_tokens > 0, rep
    stored = SummaryStore(tmp_path).read()
    assert (stored["text"].str.len() > 10).all() and (stored["completion_tokens"] <= 24).all()
    assert set(stored["finish_reason"]) <= {"stop", "length"}
    again = run_summaries(recs, cfg, tmp_path, progress=False)
    assert again.asked == 0 and again.complete


@pytest.mark.slow
def test_real_llm_end_to_end(llama_server, ray_local, tmp_path):
    """~20 prompts (2 users, one unit each, and their items) through the whole pipeline."""
    args = ["semantic", "--no-progress", "--out", str(tmp_path)]
    for s in ["data.max_users=2", "semantic.granularity=user", f"summary.base_url={llama_server.base_url}",
              f"summary.model={llama_server.model}", "summary.max_tokens=48", "neighbours.max_k=5"]:
        args += ["--set", s]
    assert cli.main(args) == 0
    d = stage_dirs(tmp_path)
    data, split = load_prepared(d["prepared"])
    art = load_artifact(d["artifact"])
    art.check(data.n_items, split.n_users, k=1)
    stored = SummaryStore(d["summaries"]).read()
    assert 10 <= len(stored) <= 40 and (stored["error"] == "").all() and (stored["text"].str.len() > 0).all()
    assert np.allclose(np.linalg.norm(art.unit_emb, axis=1), 1, atol=1e-5)
    assert art.manifest["provenance"]["summarize"]["summary"]["backend"] == "openai"


@pytest.mark.vllm
@pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vllm is not importable")
def test_vllm_backend_offline(ray_local, tmp_path):
    """ray.data.llm's vLLM engine on a few prompts (model: $SRACL_VLLM_MODEL, an HF model dir)."""
    import os

    model = os.environ.get("SRACL_VLLM_MODEL")
    if not model:
        pytest.skip("set SRACL_VLLM_MODEL to an HF-format model directory (see docs/VLLM_CPU.md)")
    data = load_dataset(DataConfig(max_users=2))
    split = leave_one_out(data, 20)
    cfg = SummaryConfig(backend="vllm", model=model, max_tokens=16, batch_size=2, max_model_len=2048,
                        vllm_device="cpu" if not _cuda() else "gpu")
    recs = prompt_records(data, split, "prefix", PipelineConfig(summary=cfg)).iloc[:4]
    assert len(build_units(split, "prefix")) >= 1
    rep = run_summaries(recs, cfg, tmp_path, progress=False)
    assert rep.complete and rep.asked == recs["key"].nunique() and rep.completion_tokens > 0, rep
    stored = SummaryStore(tmp_path).read()
    assert (stored["error"] == "").all() and (stored["text"].str.len() > 0).all(), stored
    assert (stored["completion_tokens"] <= 16).all() and (stored["model"] == model).all()
    print(f"\nvllm: {len(stored)} answers, {rep.completion_tokens} tokens in {rep.seconds:.1f}s:",
          *stored["text"].map(repr), sep="\n  ")
    assert run_summaries(recs, cfg, tmp_path, progress=False).asked == 0  # resumed from the store


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()
