"""Non-semantic controls of the L_CS neighbour table (`semantic.neighbours`), built on the device
inputs from the artifact's own table, so a control trial shares the prepared inputs of the trial it
controls and differs from it in nothing but the neighbours.

  semantic           the artifact's table (the method).
  random_other_user  each unit's k neighbours drawn uniformly, without repeats, from the units of
                     other users that have text (numpy Generator seeded by train.seed): no semantics,
                     no same-user prefix.
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
