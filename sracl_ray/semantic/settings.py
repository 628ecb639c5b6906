"""Typed, frozen settings of the semantic pipeline (prompts, summaries, embeddings, neighbours).

They live beside the experiment config in the same YAML file and the same `--set` overrides,
under their own top-level sections `prompts`, `summary`, `embed` and `neighbours`; unknown keys
are errors, as everywhere.  sracl_ray/config.py `load_all` reads both parts of a file; this
module only defines and validates the pipeline part (it does not import config.py).  Example:

    sracl-ray semantic --set data.max_users=200 --set summary.backend=raw --out runs/sem
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

from sracl_ray.configtools import _build, require

BACKENDS = ("openai", "vllm", "raw")
POOLINGS = ("mean", "cls_pooler")


@dataclass(frozen=True)
class PromptConfig:
    # Training sequences quoted in an item prompt (paper: 10; 5 keeps a prompt inside 2k tokens).
    n_item_seqs: int = 5
    # Items per quoted sequence, the item itself included (paper: 10).
    max_seq_items: int = 10
    # Characters kept of an item description (paper: 500).
    desc_chars: int = 500
    # Characters kept of a title inside a list (long Amazon titles would crowd out the rest).
    title_chars: int = 120


@dataclass(frozen=True)
class SummaryConfig:
    # openai: any OpenAI-compatible endpoint (`sracl-ray llm serve` starts a local one);
    # vllm: offline engine through ray.data.llm; raw: no LLM, embed the prompt's own text.
    backend: str = "openai"
    # Model name sent to the endpoint (openai) or model path / HF id (vllm).
    model: str = "smollm2-135m-instruct"
    base_url: str = "http://127.0.0.1:8000/v1"
    # Name of the environment variable holding the API key (the key itself is never stored).
    api_key_env: str = "OPENAI_API_KEY"
    # Sampling (paper: temperature 0, top_p 0.001); part of every summary's cache key.
    temperature: float = 0.0
    top_p: float = 0.001
    max_tokens: int = 200
    # Requests in flight at once (all actors together), per-request timeout and retries.
    concurrency: int = 4
    timeout_s: float = 120.0
    retries: int = 3
    backoff_s: float = 1.0
    # Stop the stage (exit 3, summaries so far kept) after this many failed prompts in a row;
    # 0 never stops (every failure is stored and retried by the next run).
    max_consecutive_failures: int = 8
    # Rows per Ray Data batch; each finished batch is written as one Parquet shard.
    batch_size: int = 8
    actors: int = 1
    # vllm only: context length, and "cpu" asks Ray for a CPU bundle instead of a GPU.
    max_model_len: int = 4096
    vllm_device: str = "gpu"


@dataclass(frozen=True)
class EmbedConfig:
    # sentence-transformers name or local path; "" = the packaged all-MiniLM-L6-v2 (offline).
    model: str = ""
    # mean: mean of token states (sentence-transformers default); cls_pooler: the CLS state
    # through the model's pooler (dense + tanh), the paper's SimCSE setup.
    pooling: str = "mean"
    batch_size: int = 64
    max_seq_length: int = 256
    actors: int = 1
    device: str = "auto"  # auto | cpu | cuda


@dataclass(frozen=True)
class NeighbourConfig:
    max_k: int = 100  # neighbours stored; training picks k <= max_k
    # auto | exact | bounded (exact too, faster on CPU); see semantic/neighbours.py
    method: str = "auto"
    chunk: int = 4096
    device: str = "auto"


@dataclass(frozen=True)
class PipelineConfig:
    prompts: PromptConfig = field(default_factory=PromptConfig)
    summary: SummaryConfig = field(default_factory=SummaryConfig)
    embed: EmbedConfig = field(default_factory=EmbedConfig)
    neighbours: NeighbourConfig = field(default_factory=NeighbourConfig)


SECTIONS = tuple(f.name for f in dataclasses.fields(PipelineConfig))


def validate(p: PipelineConfig) -> PipelineConfig:
    """Reject impossible values with a message naming the key."""
    s, e, n, q = p.summary, p.embed, p.neighbours, p.prompts
    checks = [
        (s.backend in BACKENDS, "summary.backend", f"must be one of {BACKENDS}"),
        (s.temperature >= 0, "summary.temperature", "must be >= 0"),
        (0 < s.top_p <= 1, "summary.top_p", "must be in (0, 1]"),
        (s.max_tokens >= 1, "summary.max_tokens", "must be >= 1"),
        (s.concurrency >= 1, "summary.concurrency", "must be >= 1"),
        (s.timeout_s > 0, "summary.timeout_s", "must be > 0"),
        (s.retries >= 0, "summary.retries", "must be >= 0"),
        (s.backoff_s >= 0, "summary.backoff_s", "must be >= 0"),
        (s.max_consecutive_failures >= 0, "summary.max_consecutive_failures", "must be >= 0 (0 never stops)"),
        (s.backend != "openai" or s.base_url.startswith(("http://", "https://")), "summary.base_url", "must start with http:// or https://"),
        (s.batch_size >= 1, "summary.batch_size", "must be >= 1"),
        (s.actors >= 1, "summary.actors", "must be >= 1"),
        (s.vllm_device in ("gpu", "cpu"), "summary.vllm_device", "must be gpu or cpu"),
        (e.pooling in POOLINGS, "embed.pooling", f"must be one of {POOLINGS}"),
        (e.batch_size >= 1, "embed.batch_size", "must be >= 1"),
        (e.actors >= 1, "embed.actors", "must be >= 1"),
        (n.max_k >= 1, "neighbours.max_k", "must be >= 1"),
        (n.method in ("auto", "exact", "bounded"), "neighbours.method", "must be auto, exact or bounded"),
        (n.chunk >= 1, "neighbours.chunk", "must be >= 1"),
        (q.n_item_seqs >= 0, "prompts.n_item_seqs", "must be >= 0"),
        (q.max_seq_items >= 2, "prompts.max_seq_items", "must be >= 2"),
        (q.desc_chars >= 0, "prompts.desc_chars", "must be >= 0"),
        (q.title_chars >= 8, "prompts.title_chars", "must be >= 8"),
    ]
    require(checks)
    return p


def pipeline_from_dict(data: Mapping[str, Any] | None) -> PipelineConfig:
    """Build a validated PipelineConfig from {section: {key: value}} (unknown keys are errors)."""
    return validate(_build(PipelineConfig, data or {}, ""))
