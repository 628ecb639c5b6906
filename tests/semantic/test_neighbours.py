"""Top-k cosine neighbours against a float64 brute force."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from sracl_ray.semantic.neighbours import EPS_BF16, normalise, topk_cosine


def brute_force(emb: np.ndarray, k: int, exclude=()) -> tuple[np.ndarray, np.ndarray]:
    """float64 reference: ([N, k] ids, [N, N] scores), ties by lower index, self excluded."""
    x = emb.astype(np.float64)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-300)
    sim = x @ x.T
    np.fill_diagonal(sim, -np.inf)
    sim[:, list(exclude)] = -np.inf
    order = np.lexsort((np.broadcast_to(np.arange(len(x)), sim.shape), -sim), axis=1)
    return order[:, :k], sim


def clustered(n: int, d: int, seed: int = 0) -> np.ndarray:
    """Tight clusters plus exact duplicates: many near-ties, the hard case for a bf16 shortlist."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n // 40, d))
    x = centres[rng.integers(0, len(centres), n)] + 0.05 * rng.normal(size=(n, d))
    x[5] = x[6]  # exact duplicates: the tie must go to the lower index
    x[7] = x[6]
    return x.astype(np.float32)


def assert_matches(got: np.ndarray, sim: np.ndarray, rows: np.ndarray | None = None, tol: float = 1e-5) -> None:
    """Same neighbour scores as the brute force at every rank; same ids except inside near-ties."""
    rows = (np.arange(len(got)) if rows is None else rows)[:, None]
    k = got.shape[1]
    order = np.lexsort((np.broadcast_to(np.arange(sim.shape[1]), sim[rows[:, 0]].shape), -sim[rows[:, 0]]), axis=1)
    ref = order[:, :k + 1]  # one more than k: a near-tie with rank k+1 is a tie too
    ref_s = sim[rows, ref]
    np.testing.assert_allclose(sim[rows, got], ref_s[:, :k], atol=tol)
    gap = np.minimum(np.abs(np.diff(ref_s, axis=1, prepend=np.inf))[:, :k], np.abs(np.diff(ref_s, axis=1))[:, :k])
    clear = gap > tol
    assert (got[clear] == ref[:, :k][clear]).all()
    assert not (got == rows).any(), "self returned as a neighbour"


@pytest.mark.parametrize("method", ["exact", "bf16"])
def test_topk_matches_brute_force(method):
    emb = clustered(1500, 24)
    k = 17
    got = topk_cosine(emb, k, chunk=256, method=method)
    _, sim = brute_force(emb, k)
    assert got.shape == (1500, k) and got.dtype == np.int64
    assert_matches(got, sim)
    assert got[6, 0] == 5 and got[5, 0] == 6 and got[7, 0] == 5  # exact ties -> lower index first


def test_bf16_fallback_rows_stay_exact():
    """margin 0 makes most rows fail the bf16 guarantee; they must be redone exactly."""
    emb = clustered(900, 16, seed=1)
    got = topk_cosine(emb, 10, chunk=300, method="bf16", margin=0)
    _, sim = brute_force(emb, 10)
    assert_matches(got, sim)


def test_exclude_padding_row_and_pool_limit():
    emb = np.random.default_rng(2).normal(size=(50, 8)).astype(np.float32)
    emb[0] = 0  # padding row
    for method in ("exact", "bf16"):
        got = topk_cosine(emb, 48, method=method, exclude=np.array([0]))
        assert (got != 0).all()
        _, sim = brute_force(emb, 48, exclude=[0])
        assert_matches(got[1:], sim, rows=np.arange(1, 50))
    with pytest.raises(ValueError, match="larger than the neighbour pool"):
        topk_cosine(emb, 49, exclude=np.array([0]))


def test_bf16_error_bound_holds():
    """The shortlist guarantee rests on EPS_BF16 bounding the bf16 score error."""
    x = torch.from_numpy(normalise(clustered(2000, 384, seed=3)))
    exact = x @ x.T
    xb = x.bfloat16()
    approx = (xb @ xb.T).float()
    assert float((approx - exact).abs().max()) < EPS_BF16 / 2


def test_fast_method_is_near_exact():
    """'fast' skips the redo: ids may swap only inside the bf16 error band around the k-th score."""
    emb = clustered(1500, 24, seed=4)
    got = topk_cosine(emb, 20, chunk=512, method="fast")
    _, sim = brute_force(emb, 20)
    rows = np.arange(len(got))[:, None]
    ref = -np.sort(-sim, axis=1)[:, :20]
    assert np.abs(sim[rows, got] - ref).max() < EPS_BF16 / 2
    recall = np.mean([len(set(a) & set(b)) / 20 for a, b in zip(got.tolist(), np.argsort(-sim, 1)[:, :20].tolist())])
    assert recall > 0.98
    mine = sim[rows, got]
    assert (np.diff(mine, axis=1) <= 1e-6).all()  # returned in exact-score order


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("method", ["exact", "bf16", "fast"])
def test_topk_on_gpu_matches_brute_force(method):
    emb = clustered(3000, 64, seed=5)
    got = topk_cosine(emb, 25, chunk=1024, device="cuda", method=method)
    _, sim = brute_force(emb, 25)
    if method == "fast":
        rows = np.arange(len(got))[:, None]
        assert np.abs(sim[rows, got] - (-np.sort(-sim, axis=1)[:, :25])).max() < EPS_BF16 / 2
    else:
        assert_matches(got, sim)


@pytest.mark.parametrize("method", ["exact", "bf16", "fast"])
def test_deterministic_and_chunk_independent(method):
    """Same ids on a rerun and for any chunk size (ties broken by the lower index, self never returned)."""
    emb = clustered(700, 16, seed=6)
    a = topk_cosine(emb, 12, chunk=128, method=method)
    b = topk_cosine(emb, 12, chunk=128, method=method)
    c = topk_cosine(emb, 12, chunk=700, method=method)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)
    assert not (a == np.arange(700)[:, None]).any()
