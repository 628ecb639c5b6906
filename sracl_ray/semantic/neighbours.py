"""Chunked top-k cosine neighbours in torch (self excluded)."""
from __future__ import annotations

import numpy as np
import torch


def normalise(x: np.ndarray) -> np.ndarray:
    """Row-wise L2 normalisation (zero rows stay zero)."""
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.where(n == 0, 1, n)).astype(np.float32)


def topk_cosine(emb: np.ndarray, k: int, chunk: int = 4096, device: str = "cpu",
                exclude: np.ndarray | None = None, progress: bool = False) -> np.ndarray:
    """[N, k] indices of each row's k most cosine-similar other rows (self excluded).

    Rows listed in `exclude` (e.g. the padding row 0) are never returned as neighbours.
    Ties are broken by the lower index, so the result is deterministic.
    """
    n = emb.shape[0]
    pool = n - 1 - (0 if exclude is None else len(np.setdiff1d(exclude, [])))
    if k > pool:
        raise ValueError(f"k={k} is larger than the neighbour pool ({pool} candidates)")
    x = torch.from_numpy(normalise(np.asarray(emb, dtype=np.float32))).to(device)
    out = np.empty((n, k), dtype=np.int64)
    starts = range(0, n, chunk)
    if progress:
        from tqdm.auto import tqdm
        starts = tqdm(starts, desc="top-k", unit="chunk")
    for s in starts:
        sim = x[s:s + chunk] @ x.T  # [C, N]
        rows = torch.arange(s, min(s + chunk, n), device=device)
        sim[rows - s, rows] = -float("inf")
        if exclude is not None and len(exclude):
            sim[:, torch.as_tensor(exclude, device=device)] = -float("inf")
        # Stable tie-break on index: subtract a tiny index-proportional amount is unsafe for
        # near-equal scores, so sort (values desc, index asc) explicitly on the top candidates.
        vals, idx = torch.topk(sim, min(k + 8, sim.shape[1]), dim=1)
        order = np.lexsort((idx.cpu().numpy(), -vals.cpu().numpy()), axis=1)
        out[s:s + len(rows)] = np.take_along_axis(idx.cpu().numpy(), order, axis=1)[:, :k]
    return out
