"""Exact top-k cosine neighbours on CPU from one bounded bf16 pass over half the similarity matrix.

The plain exact method multiplies every row by every row in fp32.  This one gets the same
neighbours (exact fp32 scores, ties to the lower id) several times faster on CPUs with native bf16
(AVX512-BF16, AMX), by never ranking anything it has not proven may belong to a row's top k:

1. **Order.** A few rounds of spherical k-means put similar rows next to each other.
2. **Lower bounds.** Each row's exact k-th score over a pool of its nearest clusters (fp32) is a
   lower bound L_i of its true k-th score: the true top k must score at least L_i.
3. **Bounded scan.** Rows are rotated onto their principal axes (scores do not change) and split
   into bf16 factors: the first `head` axes, which carry most of the weight, as a hi + lo pair, the
   rest in bf16, plus two offset columns so that the product is v_ij = s_ij - h_i - h_j with
   h_i ~ L_i / 2, a small number whose bf16 rounding is small too.  For every pair the error of
   that product has a proven bound rho_i + rho_j + ACC + 2^-8 |v| (rho: the norm of what bf16
   rounding dropped from the row).  One bf16 GEMM per tile pair of the upper triangle (the matrix
   is symmetric), a max over groups of rows, and only pairs whose bound reaches L_i (or L_j) are
   kept as candidates, for both rows.
4. **Exact re-rank.** Each row's candidates are pruned with the same bounds and re-scored with
   fp32 dot products; the top k by (score desc, original id asc) is the answer.
5. **Self-check.** A row whose k-th exact score reaches L_i proves its bound held; a row that does
   not (or has fewer than k candidates) is recomputed by brute force.  Neither has been seen.
"""
from __future__ import annotations

import logging

import numpy as np
import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)

ACC = 1e-4  # fp32 accumulation error of a ~400-term product of factors of norm <= 1.5, rounded up
SEED_SLACK = 5e-5  # fp32 error of the lower-bound scores (384 terms), rounded up
FAR = 1.0e4  # padding value no threshold can reach
TILE = 4096  # rows per side of one bf16 GEMM


def sorted_topk(vals: torch.Tensor, ids: torch.Tensor, k: int) -> torch.Tensor:
    """[C, k] ids of each row's candidates ordered by (value desc, id asc).  vals, ids: [C, S]."""
    by_id = torch.argsort(ids, dim=1, stable=True)
    vals, ids = vals.gather(1, by_id), ids.gather(1, by_id)
    return ids.gather(1, torch.sort(vals, dim=1, descending=True, stable=True).indices)[:, :k]


def bf16_gemm_is_fast() -> bool:
    """True when oneDNN has native bf16 kernels on this CPU (else bf16 is emulated and slow)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def cluster_order(x: torch.Tensor, n_clusters: int, iters: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    """Spherical k-means (bf16 assignment, seeded): (cluster of each row, unit centroids)."""
    n_clusters = max(1, min(n_clusters, len(x)))
    gen = torch.Generator().manual_seed(0)
    cent = x[torch.randperm(len(x), generator=gen)[:n_clusters]].clone()
    xb = x.bfloat16()
    for _ in range(iters):
        assign = (xb @ cent.bfloat16().T).argmax(1)
        total = torch.zeros_like(cent).index_add_(0, assign, x)
        norm = total.norm(dim=1)
        cent[norm > 0] = total[norm > 0] / norm[norm > 0, None]
    return (xb @ cent.bfloat16().T).argmax(1), cent


def seed_bounds(xs: torch.Tensor, assign: torch.Tensor, cent: torch.Tensor, k: int, pool: int,
                banned: torch.Tensor, progress: bool = False) -> torch.Tensor:
    """[n] lower bounds of each row's exact k-th score: its k-th best over its nearest clusters.

    xs and assign are sorted by cluster; banned marks rows that may not be neighbours."""
    sizes = torch.bincount(assign, minlength=len(cent))
    starts = torch.cumsum(sizes, 0) - sizes
    nearest = torch.argsort(cent @ cent.T, dim=1, descending=True)
    usable = sizes - torch.bincount(assign[banned], minlength=len(cent))
    need = max(pool, k + 1)
    low = torch.full((len(xs),), -FAR)
    clusters = torch.nonzero(sizes).flatten().tolist()
    if progress:
        from tqdm.auto import tqdm
        clusters = tqdm(clusters, desc=f"top-{k} bounds", unit="cluster")
    for c in clusters:
        near = nearest[c]
        take = int((torch.cumsum(usable[near], 0) < need).sum()) + 1
        cols = torch.cat([torch.arange(int(starts[q]), int(starts[q] + sizes[q])) for q in near[:take].tolist()])
        rows = torch.arange(int(starts[c]), int(starts[c] + sizes[c]))
        sim = xs[rows] @ xs[cols].T
        sim[(cols[None, :] == rows[:, None]) | banned[cols][None, :]] = -FAR
        low[rows] = torch.topk(sim, min(k, sim.shape[1]), dim=1).values[:, -1] - SEED_SLACK
    return low


def bf16_factors(xs: torch.Tensor, half: torch.Tensor, head: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Row factors A, column factors B (bf16) with A_i . B_j ~ x_i . x_j - h_i - h_j, and rho.

    |x_i . x_j - h_i - h_j - A_i . B_j| <= rho_i + rho_j (+ accumulation and output rounding)."""
    x64 = xs.double()
    _, vecs = torch.linalg.eigh(x64.T @ x64)
    rot = x64 @ vecs.flip(1)  # principal axes first; dot products unchanged (fp64)
    hd, tl = rot[:, :head], rot[:, head:]
    hh = hd.bfloat16()
    hl = (hd - hh.double()).bfloat16()
    th = tl.bfloat16()
    lost = (tl - th.double()).norm(dim=1) + (hd - hh.double() - hl.double()).norm(dim=1)
    hl_norm = hl.double().norm(dim=1)
    rho = (1.01 * lost + hl_norm * hl_norm.max()).float()
    hb = half.bfloat16()[:, None]
    one = torch.ones_like(hb)
    a = torch.cat([hh, hl, hh, th, hb, one], 1)
    b = torch.cat([hh, hh, hl, th, -one, -hb], 1)
    pad = (-a.shape[1]) % 16
    return F.pad(a, (0, pad)).contiguous(), F.pad(b, (0, pad)).contiguous(), rho


class TooDense(RuntimeError):
    """The lower bounds leave too many candidates per row for the bounded scan to pay off."""


def expected_candidates(xs: torch.Tensor, low: torch.Tensor, sample: int = 256) -> float:
    """Mean count per row of scores within 0.01 of the row's lower bound or above, on a sample."""
    rows = torch.linspace(0, len(xs) - 1, min(sample, len(xs))).long()
    sim = xs[rows] @ xs.T
    return float((sim >= low[rows, None] - 0.01).sum(1).double().mean())


class _Scan:
    """Candidate pairs of one bounded pass; rows are in cluster order, `ids` maps them back."""

    def __init__(self, xs: torch.Tensor, low: torch.Tensor, banned: torch.Tensor, ids: torch.Tensor,
                 k: int, head: int, tile: int, group: int):
        self.xs, self.banned, self.ids, self.k, self.tile, self.group = xs, banned, ids, k, tile, group
        self.low = low
        half = (low / 2).bfloat16()
        self.a, self.b, self.rho = bf16_factors(xs, half, head)
        self.half = half.float()
        self.q = self.half + self.rho  # what column j takes off a row threshold
        self.base = low - self.q - ACC  # row i keeps j when v' >= base_i - q_j
        self.n_tiles = -(-len(xs) // tile)
        self.found: list[list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]] = [[] for _ in range(self.n_tiles)]
        self.candidates = self.reranked = 0

    def span(self, t: int) -> tuple[int, int]:
        return t * self.tile, min(len(self.xs), (t + 1) * self.tile)

    def pair(self, ti: int, tj: int) -> None:
        """Scan tile pair (ti, tj), tj >= ti, and file the candidates of both tiles' rows."""
        (i0, i1), (j0, j1) = self.span(ti), self.span(tj)
        g = self.group
        groups = -(-(i1 - i0) // g)
        pad = groups * g - (i1 - i0)
        sim = self.a[i0:i1] @ self.b[j0:j1].T  # bf16: s - h_i - h_j
        if pad:
            sim = F.pad(sim, (0, 0, 0, pad), value=-FAR)
        best = sim.view(groups, g, -1).amax(1).float()
        best = best + best.abs() * 2 ** -8
        base_r = F.pad(self.base[i0:i1], (0, pad), value=FAR)
        q_r = F.pad(self.q[i0:i1], (0, pad), value=-FAR)
        base_c, q_c = self.base[j0:j1], self.q[j0:j1]
        limit = base_r.view(groups, g).amin(1)[:, None] - q_c[None, :]
        if ti != tj:
            limit = torch.minimum(limit, base_c[None, :] - q_r.view(groups, g).amax(1)[:, None])
        gi, cj = torch.nonzero(best >= limit, as_tuple=True)
        ri = gi[:, None] * g + torch.arange(g)[None, :]  # [P, g] local rows
        v = sim[ri, cj[:, None]].float()
        vp = v + v.abs() * 2 ** -8
        rows = ri + i0
        cols = (cj + j0)[:, None].expand_as(ri)
        real = rows < i1
        keep = real & (vp >= base_r[ri] - q_c[cj][:, None]) & ~self.banned[cols]
        if ti == tj:
            keep &= rows != cols
        else:
            back = real & (vp >= base_c[cj][:, None] - q_r[ri]) & ~self.banned[rows.clamp(max=i1 - 1)]
            self.found[tj].append((cols[back], rows[back], v[back]))
        self.found[ti].append((rows[keep], cols[keep], v[keep]))

    def finish(self, t: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(rows of tile t, their [rows, k] neighbours in original ids) once its scan is complete."""
        r0, r1 = self.span(t)
        local, cols, short = self.prune(t)
        exact = self.dots(local + r0, cols)
        self.reranked += len(cols)
        ids = self.ids[cols]
        by_id = torch.argsort(ids, stable=True)
        local, ids, exact = local[by_id], ids[by_id], exact[by_id]
        order = torch.sort(local.double() * 8 - exact.double(), stable=True).indices
        local, ids, exact = local[order], ids[order], exact[order]
        count = torch.bincount(local, minlength=r1 - r0)
        first = torch.cumsum(count, 0) - count
        out = torch.empty((r1 - r0, self.k), dtype=torch.long)
        ok = ~short
        out[ok] = ids[first[ok, None] + torch.arange(self.k)[None, :]]
        # Self-check: a k-th score at or above the row's lower bound proves the bound held, so no
        # neighbour was pruned.  Otherwise (never seen) the row is recomputed by brute force.
        ok[ok.clone()] = exact[first[ok] + self.k - 1] - 1e-6 >= self.low[r0:r1][ok]
        if not bool(ok.all()):
            redo = torch.nonzero(~ok).flatten() + r0
            log.warning("bounded top-k: %d rows failed the self-check; recomputed by brute force", len(redo))
            out[~ok] = self.brute(redo)
        return self.ids[r0:r1], out

    def prune(self, t: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Tile t's candidates that may still make a top k: (local rows, cols, rows short of k)."""
        r0, r1 = self.span(t)
        rows, cols, v = (torch.cat(p) for p in zip(*self.found[t]))
        self.found[t] = []
        self.candidates += len(rows)
        approx = v + self.half[rows] + self.half[cols]
        err = self.rho[rows] + self.rho[cols] + ACC + v.abs() * 2 ** -8
        local = rows - r0
        order = torch.argsort(local.double() * 8 - (approx - err).double())
        local, cols, approx, err = local[order], cols[order], approx[order], err[order]
        count = torch.bincount(local, minlength=r1 - r0)
        first = torch.cumsum(count, 0) - count
        short = count < self.k
        kth_low = torch.full((r1 - r0,), FAR)  # k-th best lower bound among the candidates
        kth_low[~short] = (approx - err)[first[~short] + self.k - 1]
        keep = approx + err >= kth_low[local]
        return local[keep], cols[keep], short

    def dots(self, rows: torch.Tensor, cols: torch.Tensor, chunk: int = 2048) -> torch.Tensor:
        """fp32 x_r . x_c pair by pair, in cache-sized pieces."""
        out = torch.empty(len(rows))
        for s in range(0, len(rows), chunk):
            out[s:s + chunk] = torch.linalg.vecdot(self.xs.index_select(0, rows[s:s + chunk]),
                                                   self.xs.index_select(0, cols[s:s + chunk]))
        return out

    def brute(self, rows: torch.Tensor) -> torch.Tensor:
        """[len(rows), k] neighbour ids of the given rows from their full fp32 products."""
        sim = self.xs[rows] @ self.xs.T
        sim[:, self.banned] = -FAR
        sim[torch.arange(len(rows)), rows] = -FAR
        vals, idx = torch.topk(sim, min(self.k + 8, sim.shape[1]), dim=1)  # room for ties at rank k
        return sorted_topk(vals, self.ids[idx], self.k)


def bounded_topk(x: torch.Tensor, k: int, banned: torch.Tensor | None = None, pool: int = 4096,
                 head: int = 8, tile: int = TILE, group: int = 16, progress: bool = False,
                 max_candidates: float = 2000.0) -> np.ndarray:
    """[n, k] exact top-k neighbour ids of unit rows x (fp32, CPU), self and banned rows excluded.

    Raises TooDense, before the scan, when the lower bounds would leave more than about
    `max_candidates` per row (near-isotropic data, where the plain exact product is faster)."""
    n = len(x)
    banned = torch.zeros(n, dtype=torch.bool) if banned is None else banned
    assign, cent = cluster_order(x, max(1, n // 512))
    order = torch.argsort(assign, stable=True)
    xs, assign_s = x[order], assign[order]
    low = seed_bounds(xs, assign_s, cent, k, pool, banned[order], progress)
    within = torch.argsort(assign_s.double() * 8 - low.double(), stable=True)  # similar bounds per group
    order, low, xs = order[within], low[within], xs[within]
    expect = expected_candidates(xs, low)
    if expect > max_candidates:
        raise TooDense(f"about {expect:.0f} candidates per row (limit {max_candidates:.0f})")
    scan = _Scan(xs, low, banned[order], order, k, head, tile, group)
    out = np.empty((n, k), dtype=np.int64)
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=scan.n_tiles * (scan.n_tiles + 1) // 2, desc=f"top-{k} (bounded)", unit="tile")
    for ti in range(scan.n_tiles):
        for tj in range(ti, scan.n_tiles):
            scan.pair(ti, tj)
            if bar is not None:
                bar.update()
        ids, nbrs = scan.finish(ti)
        out[ids.numpy()] = nbrs.numpy()
    if bar is not None:
        bar.close()
    log.info("bounded top-%d: %d rows, %.1f candidate pairs per row, %.1f re-ranked exactly (~%.0f expected)",
             k, n, scan.candidates / n, scan.reranked / n, expect)
    return out
