"""Who a unit's semantic neighbours are, and neighbour pools without the unit's own user.

With prefix units (one per training prefix, the authors' release) a prefix's nearest units are
often the same user's other prefixes, and the *longer* ones contain the prefix's own training
target (the next item).  L_CS then acts largely as a prefix-consistency loss with a glimpse of the
target rather than the cross-user signal the paper describes.  `neighbour_composition` measures
this per k and by prefix length; the neighbours stage stores it in the artifact manifest
(`composition`) and `sracl-ray neighbours --stats DIR` prints it.  `allowed_neighbours` builds
the pools of `semantic.exclude` (same_user, longer_same_user).  Pure numpy.

A text-less unit (in nobody's list, its own row pointing to itself: semantic/neighbours.py) has no
neighbours; it is left out of the statistics and keeps its self-pointing row in any pool.
"""
from __future__ import annotations

import logging

import numpy as np

from sracl_ray.errors import UserError

log = logging.getLogger(__name__)
KS = (1, 5, 10, 20, 50, 100, 200, 500, 1000)
# Prefix-length buckets (the unit's own number of training items), inclusive bounds.
LENGTH_BUCKETS = ((1, 2), (3, 6), (7, 10), (11, 20), (21, None))


def bucket_label(lo: int, hi: int | None) -> str:
    return f"{lo}-{hi}" if hi is not None else f">{lo - 1}"


def textless_rows(unit_nbrs: np.ndarray) -> np.ndarray:
    """[U] bool: rows pointing to themselves (units without text; self is never a real neighbour)."""
    if unit_nbrs.shape[1] == 0:
        return np.zeros(len(unit_nbrs), bool)
    return unit_nbrs[:, 0] == np.arange(len(unit_nbrs))


def ks_for(stored: int) -> list[int]:
    """1, 5, 10, 20, 50, 100, ... up to the stored K, and K itself."""
    ks = [k for k in KS if k <= stored]
    return ks + ([stored] if stored and stored not in ks else [])


def neighbour_composition(unit_nbrs: np.ndarray, unit_user: np.ndarray, unit_length: np.ndarray,
                          ks: list[int] | None = None, chunk: int = 32768) -> dict:
    """Share of each unit's top-k neighbours that are its own user's units, and its user's longer units.

    unit_nbrs [U, K] (best first, self excluded), unit_user [U], unit_length [U] (training items in
    the unit).  Per k: `same_user` and `longer_same_user` = share of all (unit, neighbour) pairs;
    `any_same_user` = share of units with at least one; `by_length` the same per prefix-length
    bucket; `distinct_users` = mean and histogram (index d-1: share of units whose k neighbours come
    from d distinct users).  JSON-ready.
    """
    nbrs = np.asarray(unit_nbrs, dtype=np.int64)
    user, length = np.asarray(unit_user, dtype=np.int64), np.asarray(unit_length, dtype=np.int64)
    ks = ks_for(nbrs.shape[1]) if ks is None else [k for k in ks if 1 <= k <= nbrs.shape[1]]
    keep = ~textless_rows(nbrs)
    rows = np.flatnonzero(keep)
    kmax = max(ks) if ks else 0
    same = np.zeros((len(rows), kmax), np.int32)  # cumulative counts over the first j+1 neighbours
    longer = np.zeros((len(rows), kmax), np.int32)
    distinct = {k: np.zeros(len(rows), np.int32) for k in ks}
    for s in range(0, len(rows), chunk):
        r = rows[s:s + chunk]
        nb = nbrs[r, :kmax]
        nb_user = user[nb]  # [C, kmax]
        is_same = nb_user == user[r, None]
        same[s:s + len(r)] = np.cumsum(is_same, axis=1)
        longer[s:s + len(r)] = np.cumsum(is_same & (length[nb] > length[r, None]), axis=1)
        for k in ks:
            srt = np.sort(nb_user[:, :k], axis=1)
            distinct[k][s:s + len(r)] = 1 + (np.diff(srt, axis=1) != 0).sum(1)
    lens = length[rows]
    out = {"units": int(len(nbrs)), "textless_units": int((~keep).sum()), "stored_k": int(nbrs.shape[1]),
           "length_buckets": [bucket_label(lo, hi) for lo, hi in LENGTH_BUCKETS], "by_k": []}
    for k in ks:
        s_k, l_k = same[:, k - 1], longer[:, k - 1]
        entry = {"k": k, **_shares(s_k, l_k, k), "by_length": {}}
        for lo, hi in LENGTH_BUCKETS:
            m = (lens >= lo) & (lens <= (hi if hi is not None else np.iinfo(np.int64).max))
            entry["by_length"][bucket_label(lo, hi)] = {"units": int(m.sum()), **_shares(s_k[m], l_k[m], k)}
        hist = np.bincount(distinct[k], minlength=k + 1)[1:k + 1] / max(1, len(rows))
        entry["distinct_users"] = {"mean": float(distinct[k].mean()) if len(rows) else 0.0,
                                   "hist": [round(float(x), 6) for x in hist]}
        out["by_k"].append(entry)
    return out


def _shares(same_k: np.ndarray, longer_k: np.ndarray, k: int) -> dict:
    n = max(1, len(same_k))
    return {"same_user": float(same_k.sum() / (n * k)), "longer_same_user": float(longer_k.sum() / (n * k)),
            "any_same_user": float((same_k > 0).sum() / n)}


def composition_of(unit_nbrs: np.ndarray, units) -> dict:
    """neighbour_composition for an artifact's units frame (columns user, length)."""
    return neighbour_composition(unit_nbrs, units["user"].to_numpy(), units["length"].to_numpy())


def compare_composition(stored: object, actual: dict, tol: float = 1e-6) -> str:
    """'' when a manifest's stored composition matches the one computed from the arrays, else one
    line saying how it differs (a malformed or foreign block counts as differing)."""
    try:
        rows = {int(e["k"]): e for e in stored["by_k"]}  # type: ignore[index]
        for e in actual["by_k"]:
            s = rows[e["k"]]
            for key in ("same_user", "longer_same_user", "any_same_user"):
                if abs(float(s[key]) - e[key]) > tol:
                    return (f"its manifest says {key} {100 * float(s[key]):.1f}% at k={e['k']}, the arrays give "
                            f"{100 * e[key]:.1f}%")
        if int(stored["units"]) != actual["units"]:  # type: ignore[index]
            return f"its manifest counts {int(stored['units'])} units, the arrays {actual['units']}"  # type: ignore[index]
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        return f"its manifest's composition block is not one this version wrote ({type(e).__name__}: {e})"
    return ""


def format_composition(comp: dict, title: str = "") -> str:
    """A plain-text table of a `neighbour_composition` result (percentages)."""
    pct = lambda x: f"{100 * x:5.1f}%"  # noqa: E731
    lines = [title] if title else []
    lines.append(f"{comp['units']} units ({comp['textless_units']} without text, left out), "
                 f"top-{comp['stored_k']} stored")
    lines.append(f"{'k':>5}  {'same user':>9}  {'longer (target)':>15}  {'units with any':>14}  "
                 f"{'distinct users':>14}")
    for e in comp["by_k"]:
        lines.append(f"{e['k']:>5}  {pct(e['same_user']):>9}  {pct(e['longer_same_user']):>15}  "
                     f"{pct(e['any_same_user']):>14}  {e['distinct_users']['mean']:>14.2f}")
    ks = [e["k"] for e in comp["by_k"]]
    lines.append("")
    lines.append("by prefix length: same user / longer prefixes of it (which contain the target)")
    lines.append(f"{'length':>7}  {'units':>7}  " + "  ".join(f"{'k=' + str(k):>13}" for k in ks))
    for label in comp["length_buckets"]:
        cells = [comp["by_k"][i]["by_length"][label] for i in range(len(ks))]
        n = cells[0]["units"] if cells else 0
        lines.append(f"{label:>7}  {n:>7}  " + "  ".join(
            f"{pct(c['same_user'])}/{pct(c['longer_same_user'])}".rjust(13) for c in cells))
    return "\n".join(lines)


def excluded_pairs(nb: np.ndarray, rows: np.ndarray, user: np.ndarray, length: np.ndarray | None,
                   exclude: str) -> np.ndarray:
    """[len(rows), C] bool: which of the candidate units nb[i, :] unit rows[i] may not use.

    same_user: any unit of the same user; longer_same_user: the same user's units with more
    training items (a longer prefix of the same sequence, so it holds the unit's training target)."""
    same = user[nb] == user[rows, None]
    if exclude == "same_user":
        return same
    if exclude == "longer_same_user":
        return same & (length[nb] > length[rows, None])
    raise ValueError(f"unknown exclusion {exclude!r}")


def allowed_neighbours(unit_nbrs: np.ndarray, unit_user: np.ndarray, k: int, unit_emb: np.ndarray | None = None,
                       exclude: str = "same_user", unit_length: np.ndarray | None = None,
                       chunk: int = 256) -> tuple[np.ndarray, int]:
    """([U, k] each unit's k nearest units less the excluded ones, how many rows were recomputed).

    `exclude` is semantic.exclude (excluded_pairs): same_user leaves out every unit of the unit's
    user, longer_same_user only its user's longer units (unit_length needed).  The first k stored
    neighbours that are allowed keep the stored order, which is exact: the stored list is the exact
    top-K over all units.  A unit with fewer than k allowed neighbours among the K stored gets its
    row recomputed exactly from unit_emb (fp32 cosine over the allowed units with text, ties to the
    lower index); without unit_emb that is a UserError.  Text-less rows keep pointing to themselves.
    """
    nbrs = np.asarray(unit_nbrs, dtype=np.int64)
    user = np.asarray(unit_user, dtype=np.int64)
    length = None if unit_length is None else np.asarray(unit_length, dtype=np.int64)
    if exclude == "longer_same_user" and length is None:
        raise ValueError("semantic.exclude=longer_same_user needs the units' lengths")
    textless = textless_rows(nbrs)
    ok = ~excluded_pairs(nbrs, np.arange(len(nbrs)), user, length, exclude)  # [U, K]
    enough = ok.sum(1) >= k
    order = np.argsort(~ok, axis=1, kind="stable")[:, :k]  # allowed columns first, in stored order
    out = np.take_along_axis(nbrs, order, axis=1)
    out[textless] = np.flatnonzero(textless)[:, None]
    short = np.flatnonzero(~enough & ~textless)
    if len(short):
        if unit_emb is None:
            raise UserError(f"semantic.exclude={exclude}: {len(short)} units have fewer than cl.k={k} allowed "
                            f"neighbours among the {nbrs.shape[1]} stored")
        out[short] = _recompute(np.asarray(unit_emb, np.float32), user, length, exclude, textless, short, k, chunk)
    return out, int(len(short))


def _recompute(emb: np.ndarray, user: np.ndarray, length: np.ndarray | None, exclude: str, textless: np.ndarray,
               rows: np.ndarray, k: int, chunk: int) -> np.ndarray:
    """[len(rows), k] exact top-k cosine over the allowed units with text (emb rows are unit vectors)."""
    out = np.empty((len(rows), k), np.int64)
    every = np.arange(len(user))
    for s in range(0, len(rows), chunk):
        r = rows[s:s + chunk]
        sim = emb[r] @ emb.T  # [C, U]
        banned = excluded_pairs(np.broadcast_to(every, (len(r), len(every))), r, user, length, exclude)
        sim[banned | textless[None, :] | (every[None, :] == r[:, None])] = -np.inf
        pool = np.isfinite(sim).sum(1)
        if (pool < k).any():
            bad = int(r[np.argmax(pool < k)])
            raise UserError(f"semantic.exclude={exclude}: unit {bad} has only {int(pool.min())} allowed units "
                            f"with text, fewer than cl.k={k}")
        out[s:s + len(r)] = exact_topk(sim, k)
    return out


def exact_topk(scores: np.ndarray, k: int) -> np.ndarray:
    """[R, k] per row the columns of the k highest scores, score desc then column asc (exact under
    ties); banned columns are -inf and every row must have k finite ones."""
    cand = np.argpartition(-scores, k - 1, axis=1)[:, :k]  # the k best, unordered
    # the k-th best score may tie with columns outside cand: take every column scoring >= it
    kth = np.take_along_axis(scores, cand, 1).min(1)
    out = np.empty((len(scores), k), np.int64)
    for j, row in enumerate(scores):
        ids = np.flatnonzero(row >= kth[j])
        out[j] = ids[np.lexsort((ids, -row[ids]))][:k]
    return out
