"""Top-k cosine neighbours against a float64 brute force."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from sracl_ray.semantic import bounded_topk as bt
from sracl_ray.semantic.neighbours import choose_method, normalise, topk_cosine


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


def prefix_like(users: int, d: int, seed: int = 0) -> np.ndarray:
    """Beauty-like units: means of nested prefixes of item vectors sharing a common direction."""
    rng = np.random.default_rng(seed)
    items = normalise(rng.normal(size=(400, d)) + 2.0)
    rows = []
    for _ in range(users):
        seq = rng.integers(0, len(items), rng.integers(2, 12))
        rows += [items[seq[:t]].mean(0) for t in range(1, len(seq) + 1)]
    return np.asarray(rows, dtype=np.float32)


def bounded(emb: np.ndarray, k: int, **kw) -> np.ndarray:
    """The bounded search with small tiles, groups and pools so that every path runs on small data."""
    kw = {"tile": 256, "group": 8, "pool": 200, **kw}
    banned = kw.pop("banned", None)
    return bt.bounded_topk(torch.from_numpy(normalise(emb)), k, banned, **kw)


@pytest.mark.parametrize("method", ["exact", "bounded"])
def test_topk_matches_brute_force(method):
    emb = clustered(1500, 24)
    k = 17
    got = topk_cosine(emb, k, chunk=256, method=method)
    _, sim = brute_force(emb, k)
    assert got.shape == (1500, k) and got.dtype == np.int64
    assert_matches(got, sim)
    assert got[6, 0] == 5 and got[5, 0] == 6 and got[7, 0] == 5  # exact ties -> lower index first


@pytest.mark.parametrize("data", ["clustered", "prefix_like", "random"])
def test_bounded_is_exact_across_tiles(data):
    """Many tiles, groups and clusters; near-ties and exact duplicates; self never returned."""
    emb = {"clustered": lambda: clustered(2000, 48, seed=1), "prefix_like": lambda: prefix_like(300, 32),
           "random": lambda: np.random.default_rng(3).normal(size=(1500, 64)).astype(np.float32)}[data]()
    k = 30
    got = bounded(emb, k)
    _, sim = brute_force(emb, k)
    assert got.shape == (len(emb), k)
    assert_matches(got, sim)
    np.testing.assert_array_equal(got, bounded(emb, k))  # deterministic


def test_bounded_rows_short_of_candidates_are_recomputed(monkeypatch):
    """A wrong (too high) lower bound could prune true neighbours: the self-check catches the row."""
    real = bt.seed_bounds

    def too_high(*args, **kw):
        low = real(*args, **kw)
        low[::7] = 0.9999
        return low

    redone = []
    brute = bt._Scan.brute

    def counted(self, rows):
        redone.extend(rows.tolist())
        return brute(self, rows)

    monkeypatch.setattr(bt, "seed_bounds", too_high)
    monkeypatch.setattr(bt._Scan, "brute", counted)
    emb = clustered(900, 16, seed=2)
    got = bounded(emb, 10)
    _, sim = brute_force(emb, 10)
    assert_matches(got, sim)
    assert len(redone) >= 900 // 7 - 5  # the rows with a wrong bound were caught


def test_bounded_error_bound_holds():
    """Every pair's bf16 product stays within its proven bound of the float64 score."""
    for emb in (clustered(1500, 384, seed=3), prefix_like(200, 384, seed=4),
                np.random.default_rng(5).normal(size=(1000, 384)) * np.linspace(3, 0.01, 384)):
        x = torch.from_numpy(normalise(emb.astype(np.float32)))
        half = torch.from_numpy(np.random.default_rng(6).uniform(0.2, 0.5, len(x)).astype(np.float32))
        a, b, rho = bt.bf16_factors(x, half, head=8)
        v = (a @ b.T).double()
        hf = half.bfloat16().double()
        exact = x.double() @ x.double().T
        err = (v + hf[:, None] + hf[None, :] - exact).abs()
        bound = rho.double()[:, None] + rho.double()[None, :] + bt.ACC + v.abs() * 2 ** -8
        assert bool((err <= bound).all()), float((err - bound).max())
        assert float(rho.max()) < 0.01  # tight enough to prune


def test_seed_bounds_are_lower_bounds():
    x = torch.from_numpy(normalise(prefix_like(300, 32, seed=7)))
    assign, cent = bt.cluster_order(x, 6)
    order = torch.argsort(assign, stable=True)
    banned = torch.zeros(len(x), dtype=torch.bool)
    low = bt.seed_bounds(x[order], assign[order], cent, 25, 150, banned)
    sim = x[order].double() @ x[order].double().T
    sim.fill_diagonal_(-9)
    assert bool((low.double() <= torch.topk(sim, 25, dim=1).values[:, -1]).all())


def test_auto_method_choice():
    assert choose_method("auto", "cuda", 10 ** 6) == "exact"
    assert choose_method("auto", "cpu", 100) == "exact"
    big = choose_method("auto", "cpu", 10 ** 6)
    assert big == ("bounded" if bt.bf16_gemm_is_fast() else "exact")
    with pytest.raises(ValueError, match="runs on CPU"):
        choose_method("bounded", "cuda", 10)
    with pytest.raises(ValueError, match="auto, exact or bounded"):
        choose_method("fast", "cpu", 10)


def test_exclude_padding_row_and_pool_limit():
    emb = np.random.default_rng(2).normal(size=(50, 8)).astype(np.float32)
    emb[0] = 0  # padding row
    for method in ("exact", "bounded"):
        got = topk_cosine(emb, 48, method=method, exclude=np.array([0]))
        assert (got != 0).all()
        _, sim = brute_force(emb, 48, exclude=[0])
        assert_matches(got[1:], sim, rows=np.arange(1, 50))
    with pytest.raises(ValueError, match="larger than the neighbour pool"):
        topk_cosine(emb, 49, exclude=np.array([0]))


def test_bounded_exclude_and_zero_rows():
    emb = clustered(1200, 24, seed=8)
    emb[0] = 0
    emb[100] = 0  # a zero row scores 0 with everyone
    banned = torch.zeros(len(emb), dtype=torch.bool)
    banned[[0, 3]] = True
    got = bounded(emb, 15, banned=banned)
    assert not np.isin(got, [0, 3]).any()
    _, sim = brute_force(emb, 15, exclude=[0, 3])
    assert_matches(got[1:], sim, rows=np.arange(1, len(emb)))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_topk_on_gpu_matches_brute_force():
    emb = clustered(3000, 64, seed=5)
    got = topk_cosine(emb, 25, chunk=1024, device="cuda", method="auto")
    _, sim = brute_force(emb, 25)
    assert_matches(got, sim)


@pytest.mark.parametrize("method", ["exact", "bounded"])
def test_deterministic_and_chunk_independent(method):
    """Same ids on a rerun and for any chunk size (ties broken by the lower index, self never returned)."""
    emb = clustered(700, 16, seed=6)
    a = topk_cosine(emb, 12, chunk=128, method=method)
    b = topk_cosine(emb, 12, chunk=128, method=method)
    c = topk_cosine(emb, 12, chunk=700, method=method)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)
    assert not (a == np.arange(700)[:, None]).any()


def test_bounded_refuses_isotropic_data_and_auto_falls_back(monkeypatch, caplog):
    """Near-isotropic vectors leave loose bounds: the scan is skipped and the exact product used."""
    emb = np.random.default_rng(9).normal(size=(3000, 64)).astype(np.float32)
    with pytest.raises(bt.TooDense, match="candidates per row"):
        bounded(emb, 10, max_candidates=5)  # at least k=10 per row lie above the bound
    monkeypatch.setattr(bt, "expected_candidates", lambda *a, **kw: 1e9)
    with caplog.at_level("INFO", logger="sracl_ray.semantic.neighbours"):
        got = topk_cosine(emb, 10, method="bounded")
    assert "using exact" in caplog.text
    _, sim = brute_force(emb, 10)
    assert_matches(got, sim)
