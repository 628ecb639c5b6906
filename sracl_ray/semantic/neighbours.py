"""Chunked top-k cosine neighbours in torch (self excluded), exact, CPU or GPU.

Methods:
- "exact": fp32 similarities of a chunk of rows against all rows, then top-k.
- "bf16": bf16 similarities (2x the fp32 matmul speed on CPUs with AVX512-BF16, far more on GPUs)
  pick a shortlist of k + margin candidates per row, which is re-ranked with exact fp32 dot
  products.  bf16 rounding moves a score by at most EPS_BF16 (unit vectors, fp32 accumulation,
  bf16 output), so a row whose exact k-th score beats the last shortlisted approximate score by
  more than EPS_BF16 provably has its true top-k inside the shortlist; any other row is redone
  with the exact method.  Exact, but on dense data (nested training prefixes: the 100th and the
  150th neighbour often lie within 0.01) most rows are redone, so it is rarely faster.
- "fast": the bf16 shortlist and fp32 re-rank without the redo.  Every returned id and its order
  come from exact fp32 scores; what can differ from "exact" is a neighbour whose true score is
  within the bf16 error of the k-th one (measured max error 0.0027 on Beauty prefixes; see
  benchmarks/neighbours_speed.py for the recall against a float64 brute force).
- "auto": "exact". Neighbour sets decide which positives L_CS and L_IS see, so the default does
  not trade exactness for speed; choose "fast" explicitly (`neighbours.method=fast`) when a
  near-tie swap is acceptable (about 2x faster on these CPUs, recall@100 0.995 on Beauty).
Ties are broken by the lower index, so results are deterministic.
"""
from __future__ import annotations

import logging

import numpy as np
import torch

log = logging.getLogger(__name__)

# |bf16(x).bf16(y) - x.y| for unit x, y: input rounding 2 * 2^-8 (+2^-16), bf16 output rounding
# 2^-8, fp32 accumulation ~D * 2^-24; rounded up generously.
EPS_BF16 = 0.0125


def normalise(x: np.ndarray) -> np.ndarray:
    """Row-wise L2 normalisation (zero rows stay zero)."""
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.where(n == 0, 1, n)).astype(np.float32)


def pick_device(device: str = "auto") -> str:
    """'auto' -> 'cuda' when a GPU is visible, else 'cpu'."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def _sorted_topk(vals: torch.Tensor, idx: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Order candidates by (value desc, index asc) and keep k.  vals, idx: [C, S]."""
    by_idx = torch.argsort(idx, dim=1)
    vals, idx = vals.gather(1, by_idx), idx.gather(1, by_idx)
    by_val = torch.sort(vals, dim=1, descending=True, stable=True).indices
    return vals.gather(1, by_val)[:, :k], idx.gather(1, by_val)[:, :k]


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
    return _sorted_topk(vals, idx, k)[1]


def _bf16_rows(x: torch.Tensor, xb: torch.Tensor, rows: torch.Tensor, k: int, short: int,
               exclude: torch.Tensor | None, sub: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
    """Shortlist by bf16, exact re-rank; returns ([C, k] ids, [C] bool: provably exact)."""
    approx = xb[rows] @ xb.T  # [C, N] bf16
    _mask(approx, rows, exclude)
    av, ai = torch.topk(approx, short, dim=1)  # [C, S], sorted descending
    del approx
    out = torch.empty((len(rows), k), dtype=torch.int64, device=x.device)
    ok = torch.empty(len(rows), dtype=torch.bool, device=x.device)
    for s in range(0, len(rows), sub):  # small pieces keep the [sub, S, D] gather in cache
        q = x[rows[s:s + sub]]  # [c, D]
        cand = ai[s:s + sub]
        exact = torch.einsum("cd,csd->cs", q, x[cand])  # [c, S] fp32
        vals, idx = _sorted_topk(exact, cand, k)
        out[s:s + sub] = idx
        ok[s:s + sub] = vals[:, -1] > av[s:s + sub, -1].float() + EPS_BF16
    return out, ok


def topk_cosine(emb: np.ndarray, k: int, chunk: int = 4096, device: str = "cpu",
                exclude: np.ndarray | None = None, progress: bool = False, method: str = "auto",
                margin: int | None = None) -> np.ndarray:
    """[N, k] indices of each row's k most cosine-similar other rows (self excluded).

    Rows listed in `exclude` (e.g. the padding row 0) are never returned as neighbours.
    method: "exact" | "bf16" (exact too) | "fast" (near-exact) | "auto"; see the module doc.
    margin: extra shortlist candidates of the bf16 path (default max(32, k // 2)).
    """
    emb = np.asarray(emb, dtype=np.float32)
    n, d = emb.shape
    excl = np.unique(np.asarray(exclude, dtype=np.int64)) if exclude is not None and len(exclude) else None
    pool = n - 1 - (0 if excl is None else len(excl))
    if k > pool:
        raise ValueError(f"k={k} is larger than the neighbour pool ({pool} candidates)")
    if method == "auto":
        method = "exact"
    if method not in ("exact", "bf16", "fast"):
        raise ValueError(f"method must be auto, exact, bf16 or fast, got {method!r}")
    device = pick_device(device)
    x = torch.from_numpy(normalise(emb)).to(device)
    xb = x.to(torch.bfloat16) if method != "exact" else None
    ex = torch.from_numpy(excl).to(device) if excl is not None else None
    short = min(pool, k + (margin if margin is not None else max(32, k // 2)))
    out = np.empty((n, k), dtype=np.int64)
    redo = 0
    starts = range(0, n, chunk)
    if progress:
        from tqdm.auto import tqdm
        starts = tqdm(starts, desc=f"top-{k} ({method})", unit="chunk")
    with torch.inference_mode():
        for s in starts:
            rows = torch.arange(s, min(s + chunk, n), device=device)
            if method == "exact":
                out[s:s + len(rows)] = _exact_rows(x, rows, k, ex).cpu().numpy()
                continue
            idx, ok = _bf16_rows(x, xb, rows, k, short, ex)
            if method == "fast":
                redo += int((~ok).sum())
            elif not bool(ok.all()):
                bad = rows[~ok]
                idx[~ok] = _exact_rows(x, bad, k, ex)
                redo += len(bad)
            out[s:s + len(rows)] = idx.cpu().numpy()
    if method != "exact":
        what = "redone exactly" if method == "bf16" else "not provably exact (near-ties possible)"
        log.info("top-k %s: %d of %d rows (%.1f%%) %s", method, redo, n, 100 * redo / max(n, 1), what)
    return out
