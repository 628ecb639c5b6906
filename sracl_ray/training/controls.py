"""Non-semantic controls of the L_CS neighbour table (`semantic.neighbours`), built on the device
inputs from the artifact's own table, so a control trial shares the prepared inputs of the trial it
controls and differs from it in nothing but the neighbours.

  semantic           the artifact's table (the method).
  random_other_user  each unit's k neighbours drawn uniformly, without repeats, from the units of
                     other users that have text (numpy Generator seeded by train.seed): no semantics,
                     no same-user prefix.
  cooccurrence       each unit's k units with the highest Jaccard similarity of item sets (from the
                     unit histories; semantic.exclude applied while ranking): collaborative, no text.
  shuffled           the table the artifact would have if the unit embeddings were permuted among the
                     units with text (permutation seeded by train.seed): unit i receives the neighbour
                     list of unit pi(i), renamed through pi.  The table keeps its structure (same
                     similarity profile, same share of rows with tight clusters), the semantics and the
                     same-user structure are scrambled.  The synthesis head reads the permuted
                     embeddings too (emb[pi]), so the control is the whole artifact permuted.
Text-less units (rows pointing to themselves, semantic/composition.py) stay as they are.
"""
from __future__ import annotations

import numpy as np

from sracl_ray.errors import UserError

MAX_DRAWS = 64  # rejection rounds for random_other_user before a pool is declared too small


def _textless(nbrs: np.ndarray) -> np.ndarray:
    from sracl_ray.semantic.composition import textless_rows

    return textless_rows(nbrs)


def random_other_user(nbrs: np.ndarray, unit_user: np.ndarray, k: int, seed: int) -> np.ndarray:
    """[U, k] k distinct random units of other users (with text) per unit with text."""
    nbrs = np.asarray(nbrs, np.int64)
    user = np.asarray(unit_user, np.int64)
    textless = _textless(nbrs)
    pool = np.flatnonzero(~textless)
    out = np.repeat(np.arange(len(nbrs))[:, None], k, axis=1)  # text-less rows point to themselves
    rng = np.random.default_rng(seed)
    todo = pool.copy()
    for _ in range(MAX_DRAWS):
        if not len(todo):
            return out
        draw = pool[rng.integers(0, len(pool), (len(todo), k))]
        out[todo] = draw
        srt = np.sort(draw, axis=1)
        bad = (user[draw] == user[todo, None]).any(1) | (srt[:, 1:] == srt[:, :-1]).any(1)
        todo = todo[bad]
    raise UserError(f"semantic.neighbours=random_other_user: {len(todo)} units found no {k} distinct units of other "
                    f"users with text in {MAX_DRAWS} draws (too few users for cl.k={k})")


def shuffled(nbrs: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(the permuted table [U, K], the permutation pi [U]: unit i now carries unit pi(i)'s embedding)."""
    nbrs = np.asarray(nbrs, np.int64)
    textless = _textless(nbrs)
    pi = np.arange(len(nbrs))
    text = np.flatnonzero(~textless)
    pi[text] = text[np.random.default_rng(seed).permutation(len(text))]
    inv = np.empty_like(pi)
    inv[pi] = np.arange(len(pi))
    out = inv[nbrs[pi]]
    out[textless] = np.flatnonzero(textless)[:, None]
    return out, pi


# Item side (semantic.item_neighbours): the L_IS substitute pools.  [n_items + 1, k], row 0 zeros
# (padding), item ids in [1, n_items], never the item itself.
#   semantic      the artifact's table (the method).
#   random        k distinct uniformly random other items per item (seeded by train.seed).
#   cooccurrence  collaborative neighbours: the k items with the highest Jaccard similarity of the
#                 sets of users whose *training* sequences hold them (ties to the lower id); an item
#                 with fewer than k co-occurring items is filled with the most popular training items
#                 it does not already list.  No text, no validation or test interaction.


def random_items(n_items: int, k: int, seed: int) -> np.ndarray:
    """[n_items + 1, k] k distinct random other items per item."""
    if n_items - 1 < k:
        raise UserError(f"semantic.item_neighbours=random: {n_items} items leave fewer than cl.k_item={k} others")
    rng = np.random.default_rng(seed)
    out = np.zeros((n_items + 1, k), np.int64)
    for i in range(1, n_items + 1):  # draw from the n_items - 1 others: ids 1..n_items without i
        draw = rng.choice(n_items - 1, size=k, replace=False) + 1
        out[i] = np.where(draw >= i, draw + 1, draw)
    return out


def cooccurrence_items(train_seqs, n_items: int, k: int) -> np.ndarray:
    """[n_items + 1, k] the Jaccard neighbours (over training users) of every item."""
    from scipy import sparse

    if n_items - 1 < k:
        raise UserError(f"semantic.item_neighbours=cooccurrence: {n_items} items leave fewer than cl.k_item={k} others")
    rows, cols = [], []
    for u, seq in enumerate(train_seqs):
        items = np.unique(np.asarray(seq, np.int64))
        rows.append(np.full(len(items), u))
        cols.append(items)
    r, c = (np.concatenate(x) if x else np.zeros(0, np.int64) for x in (rows, cols))
    x = sparse.csr_matrix((np.ones(len(r), np.int64), (r, c)), shape=(len(train_seqs), n_items + 1))
    co = (x.T @ x).tocsr()  # [n_items + 1]^2 co-occurrence counts
    deg = np.asarray(x.sum(0)).ravel()
    popular = np.lexsort((np.arange(n_items + 1), -deg))
    popular = popular[popular != 0]
    out = np.zeros((n_items + 1, k), np.int64)
    for i in range(1, n_items + 1):
        j = co.indices[co.indptr[i]:co.indptr[i + 1]]
        n = co.data[co.indptr[i]:co.indptr[i + 1]]
        keep = (j != i) & (j != 0)
        j, n = j[keep], n[keep]
        jac = n / (deg[i] + deg[j] - n)
        best = j[np.lexsort((j, -jac))][:k]
        if len(best) < k:
            fill = popular[~np.isin(popular, np.append(best, i))][:k - len(best)]
            best = np.concatenate([best, fill])
        out[i] = best
    return out


def cooccurrence_units(unit_hist: np.ndarray, nbrs: np.ndarray, k: int, unit_user: np.ndarray | None = None,
                       unit_length: np.ndarray | None = None, exclude: str = "none", chunk: int = 256) -> np.ndarray:
    """[U, k] collaborative L_CS neighbours (semantic.neighbours=cooccurrence): per unit with text, the k
    units with text whose item sets (from the unit histories) have the highest Jaccard similarity to
    its own, ties to the lower index, itself and (semantic.exclude) the excluded units never; no text
    is read.  Text-less rows (of the artifact's table `nbrs`) keep pointing to themselves."""
    from scipy import sparse

    from sracl_ray.semantic.composition import exact_topk, excluded_pairs

    hist = np.asarray(unit_hist, np.int64)
    n = len(hist)
    textless = _textless(np.asarray(nbrs, np.int64))
    rows, cols = np.nonzero(hist > 0)
    x = sparse.csr_matrix((np.ones(len(rows), np.float32), (rows, hist[rows, cols])), shape=(n, int(hist.max()) + 1))
    x.sum_duplicates()
    x.data[:] = 1.0  # a set: an item repeated in a history counts once
    deg = np.asarray(x.sum(1)).ravel()
    out = np.repeat(np.arange(n)[:, None], k, axis=1)
    text = np.flatnonzero(~textless)
    if len(text) - 1 < k:
        raise UserError(f"semantic.neighbours=cooccurrence: {len(text)} units with text, too few for cl.k={k}")
    every = np.arange(n)
    for s in range(0, len(text), chunk):
        r = text[s:s + chunk]
        inter = (x[r] @ x.T).toarray()
        union = deg[r, None] + deg[None, :] - inter
        jac = np.where(union > 0, inter / np.maximum(union, 1), 0.0)
        jac[:, textless] = -np.inf
        jac[every[None, :] == r[:, None]] = -np.inf
        if exclude != "none":
            jac[excluded_pairs(np.broadcast_to(every, (len(r), n)), r, unit_user, unit_length, exclude)] = -np.inf
        if (np.isfinite(jac).sum(1) < k).any():
            raise UserError(f"semantic.neighbours=cooccurrence with semantic.exclude={exclude}: a unit has fewer than "
                            f"cl.k={k} allowed units with text")
        out[r] = exact_topk(jac, k)  # Jaccard desc, index asc
    return out
