"""Top-k cosine neighbours in torch (self excluded), exact, CPU or GPU.

Methods (all return the same neighbours: exact fp32 scores, ties to the lower index):
- "exact": fp32 similarities of a chunk of rows against all rows, then top-k.
- "bounded" (CPU): one bf16 pass over half the similarity matrix with proven error bounds, then an
  exact fp32 re-rank of the pairs the bounds cannot rule out; see semantic/bounded_topk.py.
  About 3x faster than "exact" on Beauty's 131k prefixes on 2 CPU cores (benchmarks/RESULTS.md).
- "auto": "bounded" on a CPU with native bf16 (AVX512-BF16 / AMX) and at least 16,384 rows, else
  "exact" (GPUs, CPUs that would emulate bf16, and small inputs: Beauty's 12k items take ~1.5 s
  either way).  "bounded" itself falls back to "exact" when a sample shows its lower bounds would
  leave too many candidates (near-isotropic vectors, unlike sentence embeddings).
"""
from __future__ import annotations

import logging

import numpy as np
import torch

from sracl_ray.semantic import bounded_topk

log = logging.getLogger(__name__)


def normalise(x: np.ndarray) -> np.ndarray:
    """Row-wise L2 normalisation (zero rows stay zero)."""
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.where(n == 0, 1, n)).astype(np.float32)


def pick_device(device: str = "auto") -> str:
    """'auto' -> 'cuda' when a GPU is visible, else 'cpu'."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def _mask(sim: torch.Tensor, rows: torch.Tensor, exclude: torch.Tensor | None) -> None:
    """Never return a row itself or an excluded row.  sim: [C, N] for global rows `rows`."""
    sim[torch.arange(len(rows), device=sim.device), rows] = -float("inf")
    if exclude is not None:
        sim[:, exclude] = -float("inf")


def _exact_rows(x: torch.Tensor, rows: torch.Tensor, k: int, exclude: torch.Tensor | None) -> torch.Tensor:
    """[len(rows), k] exact fp32 top-k of the given rows."""
    sim = x[rows] @ x.T  # [C, N]
    _mask(sim, rows, exclude)
    vals, idx = torch.topk(sim, min(k + 8, sim.shape[1]), dim=1)
    return bounded_topk.sorted_topk(vals, idx, k)


def choose_method(method: str, device: str, n: int) -> str:
    """Resolve "auto" (see the module doc) and reject what cannot run."""
    if method not in ("auto", "exact", "bounded"):
        raise ValueError(f"method must be auto, exact or bounded, got {method!r}")
    if method == "auto":
        fast_cpu = device == "cpu" and bounded_topk.bf16_gemm_is_fast()
        return "bounded" if fast_cpu and n >= 4 * bounded_topk.TILE else "exact"
    if method == "bounded" and device != "cpu":
        raise ValueError("neighbours.method=bounded runs on CPU; use exact (or auto) on a GPU")
    return method


def topk_cosine(emb: np.ndarray, k: int, chunk: int = 4096, device: str = "cpu",
                exclude: np.ndarray | None = None, progress: bool = False, method: str = "auto") -> np.ndarray:
    """[N, k] indices of each row's k most cosine-similar other rows (self excluded).

    Rows listed in `exclude` (e.g. the padding row 0) are never returned as neighbours.
    method: "auto" | "exact" | "bounded"; see the module doc.
    """
    emb = np.asarray(emb, dtype=np.float32)
    n, d = emb.shape
    excl = np.unique(np.asarray(exclude, dtype=np.int64)) if exclude is not None and len(exclude) else None
    pool = n - 1 - (0 if excl is None else len(excl))
    if k > pool:
        raise ValueError(f"k={k} is larger than the neighbour pool ({pool} candidates)")
    device = pick_device(device)
    method = choose_method(method, device, n)
    x = torch.from_numpy(normalise(emb)).to(device)
    ex = torch.from_numpy(excl).to(device) if excl is not None else None
    with torch.inference_mode():
        if method == "bounded":
            banned = torch.zeros(n, dtype=torch.bool)
            if ex is not None:
                banned[ex] = True
            try:
                return bounded_topk.bounded_topk(x, k, banned, progress=progress)
            except bounded_topk.TooDense as err:
                log.info("neighbours: bounded search skipped (%s); using exact", err)
        out = np.empty((n, k), dtype=np.int64)
        starts = range(0, n, chunk)
        if progress:
            from tqdm.auto import tqdm
            starts = tqdm(starts, desc=f"top-{k} (exact)", unit="chunk")
        for s in starts:
            rows = torch.arange(s, min(s + chunk, n), device=device)
            out[s:s + len(rows)] = _exact_rows(x, rows, k, ex).cpu().numpy()
    return out
