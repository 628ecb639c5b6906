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
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)


def normalise(x: np.ndarray) -> np.ndarray:
    """Row-wise L2 normalisation (zero rows stay zero)."""
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.where(n == 0, 1, n)).astype(np.float32)


def pick_device(device: str = "auto") -> str:
    """'auto' -> 'cuda' when a GPU is visible, else 'cpu'."""
    import torch  # lazy: the pipeline's other stages and its CLI errors need no torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def _mask(sim: torch.Tensor, rows: torch.Tensor, exclude: torch.Tensor | None) -> None:
    """Never return a row itself or an excluded row.  sim: [C, N] for global rows `rows`."""
    import torch  # lazy: the pipeline's other stages and its CLI errors need no torch

    sim[torch.arange(len(rows), device=sim.device), rows] = -float("inf")
    if exclude is not None:
        sim[:, exclude] = -float("inf")


def _exact_rows(x: torch.Tensor, rows: torch.Tensor, k: int, exclude: torch.Tensor | None) -> torch.Tensor:
    """[len(rows), k] exact fp32 top-k of the given rows."""
    import torch  # lazy: the pipeline's other stages and its CLI errors need no torch
    from sracl_ray.semantic import bounded_topk

    sim = x[rows] @ x.T  # [C, N]
    _mask(sim, rows, exclude)
    vals, idx = torch.topk(sim, min(k + 8, sim.shape[1]), dim=1)
    return bounded_topk.sorted_topk(vals, idx, k)


def choose_method(method: str, device: str, n: int) -> str:
    """Resolve "auto" (see the module doc) and reject what cannot run."""
    from sracl_ray.semantic import bounded_topk

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
    import torch  # lazy: the pipeline's other stages and its CLI errors need no torch
    from sracl_ray.semantic import bounded_topk

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
        from tqdm.auto import tqdm

        out = np.empty((n, k), dtype=np.int64)
        with tqdm(total=n, desc=f"top-{k} (exact)", unit="row", disable=not progress, dynamic_ncols=True) as bar:
            for s in range(0, n, chunk):
                rows = torch.arange(s, min(s + chunk, n), device=device)
                out[s:s + len(rows)] = _exact_rows(x, rows, k, ex).cpu().numpy()
                bar.update(len(rows))
    return out


def textless_units(unit_hist: np.ndarray, textless_items: np.ndarray, n_items: int) -> np.ndarray:
    """Sorted indices of the units none of whose items has text.  unit_hist: [U, L], 0 = padding."""
    has_text = np.ones(n_items + 1, dtype=bool)
    has_text[0] = False
    has_text[np.asarray(textless_items, dtype=np.int64)] = False
    return np.flatnonzero(~has_text[unit_hist].any(1)).astype(np.int64)


def warn_textless(ids: np.ndarray, n_items: int, where: str) -> None:
    """One warning counting the items without text (and naming a few)."""
    if len(ids):
        shown = ", ".join(map(str, ids[:5])) + (", ..." if len(ids) > 5 else "")
        log.warning("%s: %d of %d items have no text (ids %s); they are excluded from semantic neighbours "
                    "and never substituted", where, len(ids), n_items, shown)


def semantic_neighbours(item_emb: np.ndarray, unit_emb: np.ndarray, textless_item_ids: np.ndarray,
                        textless_unit_ids: np.ndarray, max_k: int, **kw) -> tuple[np.ndarray, np.ndarray]:
    """(item_nbrs [n_items + 1, K], unit_nbrs [n_units, K]) for the semantic artifact.

    Items and units without text are in nobody's neighbour list (their embedding stands for no
    text), and their own row holds their own id in every column: substitution (L_IS) then keeps
    such an item, and a text-less unit's L_CS positive is its own history.  Row 0 (padding) is 0.
    kw: chunk, device, method, progress (see topk_cosine).
    """
    from sracl_ray.semantic.artifact import ArtifactError

    t_items = np.asarray(textless_item_ids, dtype=np.int64)
    t_units = np.asarray(textless_unit_ids, dtype=np.int64)
    n_items, n_units = len(item_emb) - 1, len(unit_emb)
    k_items = min(max_k, n_items - len(t_items) - 1)
    k_units = min(max_k, n_units - len(t_units) - 1)
    if k_items < 1 or k_units < 1:
        raise ArtifactError(f"too little text for semantic neighbours: {n_items - len(t_items)} of {n_items} "
                            f"items and {n_units - len(t_units)} of {n_units} user units have text")
    log.info("item neighbours: top-%d of %d items (%d without text excluded)", k_items, n_items, len(t_items))
    item_nbrs = topk_cosine(item_emb, k_items, exclude=np.concatenate([[0], t_items]), **kw)
    item_nbrs[0] = 0
    item_nbrs[t_items] = t_items[:, None]
    log.info("unit neighbours: top-%d of %d user units (%d without text excluded)", k_units, n_units, len(t_units))
    unit_nbrs = topk_cosine(unit_emb, k_units, exclude=t_units if len(t_units) else None, **kw)
    unit_nbrs[t_units] = t_units[:, None]
    return item_nbrs, unit_nbrs
