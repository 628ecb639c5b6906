"""Neighbour composition (same-user / longer same-user shares) and pools without the same user."""
import numpy as np
import pytest

from sracl_ray.errors import UserError
from sracl_ray.semantic.composition import (format_composition, neighbour_composition, allowed_neighbours,
                                            textless_rows)

# A hand-built artifact: user 1 has units 0, 1, 2 (prefix lengths 1, 2, 3), user 2 units 3, 4
# (lengths 1, 2), user 3 unit 5 (length 1, no text: its row points to itself, nobody lists it).
USER = np.array([1, 1, 1, 2, 2, 3])
LENGTH = np.array([1, 2, 3, 1, 2, 1])
NBRS = np.array([[1, 2, 3],
                 [0, 3, 2],
                 [1, 0, 4],
                 [4, 0, 1],
                 [3, 0, 1],
                 [5, 5, 5]])


def by_k(comp, k):
    return next(e for e in comp["by_k"] if e["k"] == k)


def test_composition_of_a_hand_built_artifact():
    comp = neighbour_composition(NBRS, USER, LENGTH)
    assert [e["k"] for e in comp["by_k"]] == [1, 3]
    assert comp["units"] == 6 and comp["textless_units"] == 1 and comp["stored_k"] == 3
    k1, k3 = by_k(comp, 1), by_k(comp, 3)
    # k=1: every top-1 is the same user; longer ones: 0->1 and 3->4
    assert k1["same_user"] == pytest.approx(1.0) and k1["longer_same_user"] == pytest.approx(2 / 5)
    # k=3: same-user pairs 2+2+2+1+1 of 15; longer: 0->{1,2}, 1->2, 3->4
    assert k3["same_user"] == pytest.approx(8 / 15) and k3["longer_same_user"] == pytest.approx(4 / 15)
    assert k3["any_same_user"] == pytest.approx(1.0)
    # distinct users among the 3 neighbours: 2, 2, 2, 2 (users 2,1,1) ... unit 3 -> users {2, 1}
    assert k3["distinct_users"]["mean"] == pytest.approx(2.0)
    assert k3["distinct_users"]["hist"] == pytest.approx([0.0, 1.0, 0.0])
    b1 = k1["by_length"]
    assert b1["1-2"] == {"units": 4, "same_user": 1.0, "longer_same_user": 0.5, "any_same_user": 1.0}
    assert b1["3-6"]["units"] == 1 and b1["3-6"]["longer_same_user"] == 0.0
    assert b1[">20"]["units"] == 0
    text = format_composition(comp, "title")
    assert "title" in text and "100.0%" in text and "1-2" in text


def naive_composition(nbrs, user, length, k):
    same = longer = n = 0
    distinct = []
    for u in range(len(nbrs)):
        if nbrs[u, 0] == u:
            continue
        n += 1
        row = nbrs[u, :k]
        same += sum(user[v] == user[u] for v in row)
        longer += sum(user[v] == user[u] and length[v] > length[u] for v in row)
        distinct.append(len({user[v] for v in row}))
    return same / (n * k), longer / (n * k), float(np.mean(distinct))


def random_prefix_artifact(seed=0, n_users=30, dim=8, K=6):
    """Units = prefixes of random users (nested, so similar within a user); exact top-K neighbours."""
    rng = np.random.default_rng(seed)
    user, length, emb = [], [], []
    for u in range(1, n_users + 1):
        base = rng.normal(size=dim)
        for t in range(1, rng.integers(2, 12)):
            user.append(u)
            length.append(t)
            emb.append(base + rng.normal(size=dim) * 0.3 * t)
    emb = np.asarray(emb, np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    sim = emb @ emb.T
    np.fill_diagonal(sim, -np.inf)
    nbrs = np.argsort(-sim, axis=1, kind="stable")[:, :K]
    return nbrs, np.asarray(user), np.asarray(length), emb


def test_composition_matches_a_naive_loop():
    nbrs, user, length, _ = random_prefix_artifact()
    nbrs[3] = 3  # one text-less unit
    comp = neighbour_composition(nbrs, user, length, ks=[1, 4, 6])
    for k in (1, 4, 6):
        same, longer, distinct = naive_composition(nbrs, user, length, k)
        e = by_k(comp, k)
        assert e["same_user"] == pytest.approx(same) and e["longer_same_user"] == pytest.approx(longer)
        assert e["distinct_users"]["mean"] == pytest.approx(distinct)
        assert sum(e["distinct_users"]["hist"]) == pytest.approx(1.0, abs=1e-5)
        assert sum(b["units"] for b in e["by_length"].values()) == len(nbrs) - 1


def brute_other_user(emb, user, k, textless=()):
    sim = emb @ emb.T
    sim[user[:, None] == user[None, :]] = -np.inf
    sim[:, list(textless)] = -np.inf
    return np.argsort(-sim, axis=1, kind="stable")[:, :k]


def test_other_user_pools_equal_brute_force_with_recomputed_rows():
    nbrs, user, length, emb = random_prefix_artifact(K=6)
    for k in (1, 3, 6):
        pools, recomputed = allowed_neighbours(nbrs, user, k, emb)
        assert (user[pools] != user[:, None]).all()
        assert np.array_equal(pools, brute_other_user(emb, user, k))
        if k == 6:
            assert recomputed > 0  # long users' prefixes fill the stored 6 with their own units


def brute_not_longer(emb, user, length, k):
    """Independent: top-k cosine over all units except self and the same user's longer prefixes."""
    sim = emb @ emb.T
    np.fill_diagonal(sim, -np.inf)
    sim[(user[:, None] == user[None, :]) & (length[None, :] > length[:, None])] = -np.inf
    return np.argsort(-sim, axis=1, kind="stable")[:, :k]


def test_longer_same_user_pools_drop_only_the_prefixes_holding_the_target():
    nbrs, user, length, emb = random_prefix_artifact(K=6)
    for k in (1, 3, 6):
        pools, recomputed = allowed_neighbours(nbrs, user, k, emb, "longer_same_user", length)
        same = user[pools] == user[:, None]
        assert not (same & (length[pools] > length[:, None])).any()  # no longer prefix of the same user
        assert np.array_equal(pools, brute_not_longer(emb, user, length, k))
    # shorter prefixes of the same user stay: the stored order is kept where enough are allowed
    plain, _ = allowed_neighbours(nbrs, user, 6, emb, "longer_same_user", length)
    shorter = (user[plain] == user[:, None]) & (length[plain] < length[:, None])
    assert shorter.any()
    # on the hand-built artifact: unit 0 (user 1, length 1) loses 1 and 2 (longer), keeps 3;
    # unit 2 (length 3) keeps its shorter prefixes 1 and 0
    pools, _ = allowed_neighbours(NBRS, USER, 1, None, "longer_same_user", LENGTH)
    assert pools[:, 0].tolist() == [3, 0, 1, 0, 3, 5]  # unit 3 (length 1) loses 4, its longer prefix
    with pytest.raises(ValueError, match="lengths"):
        allowed_neighbours(NBRS, USER, 1, None, "longer_same_user")


def test_other_user_pools_keep_textless_rows_and_skip_textless_units():
    nbrs, user, length, emb = random_prefix_artifact(K=6)
    t = 4
    sim = emb @ emb.T
    np.fill_diagonal(sim, -np.inf)
    sim[:, t] = -np.inf
    nbrs = np.argsort(-sim, axis=1, kind="stable")[:, :6]
    nbrs[t] = t
    assert textless_rows(nbrs).sum() == 1
    pools, _ = allowed_neighbours(nbrs, user, 6, emb)
    assert (pools[t] == t).all()
    keep = np.arange(len(nbrs)) != t
    assert np.array_equal(pools[keep], brute_other_user(emb, user, 6, textless=[t])[keep])


def test_other_user_pools_without_embeddings_or_candidates_say_so():
    with pytest.raises(UserError, match="exclude=same_user.*cl.k=2"):
        allowed_neighbours(NBRS, USER, 2)  # unit 0 has one other-user neighbour stored
    emb = np.eye(6, dtype=np.float32)
    with pytest.raises(UserError, match="exclude=same_user: unit .* fewer than cl.k=3"):
        allowed_neighbours(NBRS, USER, 3, emb)  # unit 0 (user 1): only units 3, 4 elsewhere


def test_interim_artifact_stores_its_composition(small_split_artifact):
    art, split = small_split_artifact
    comp = art.manifest["composition"]
    units = art.units
    same, longer, _ = naive_composition(art.unit_nbrs, units["user"].to_numpy(), units["length"].to_numpy(), 10)
    e = by_k(comp, 10)
    assert e["same_user"] == pytest.approx(same) and e["longer_same_user"] == pytest.approx(longer)


@pytest.fixture(scope="module")
def small_split_artifact():
    from sracl_ray.config import load
    from sracl_ray.data.readers import load_dataset
    from sracl_ray.data.split import leave_one_out
    from sracl_ray.semantic.interim import build_from_item_embeddings

    cfg = load(None, ["data.max_users=80"])
    split = leave_one_out(load_dataset(cfg.data), cfg.data.max_len)
    vecs = np.random.default_rng(0).normal(size=(split.n_items, 8)).astype(np.float32)
    art = build_from_item_embeddings(split, vecs, "prefix", 20, {"builder": "test", "granularity": "prefix"})
    return art, split


def test_neighbours_stats_command(small_split_artifact, tmp_path, capsys):
    from sracl_ray.cli import main
    from sracl_ray.semantic.artifact import SemanticArtifact, save_artifact

    art, _ = small_split_artifact
    save_artifact(tmp_path / "a", art)
    assert main(["neighbours", "--stats", str(tmp_path / "a")]) == 0
    out = capsys.readouterr().out
    assert "matching its manifest" in out and "same user" in out and "k=10" in out
    bare = SemanticArtifact(**{**art.__dict__, "manifest": {"stage": "old", "settings": {"granularity": "prefix"}}})
    save_artifact(tmp_path / "b", bare)
    assert main(["neighbours", "--stats", str(tmp_path / "b")]) == 0
    out2 = capsys.readouterr().out
    assert "its manifest has no record" in out2
    assert out2.splitlines()[1:] == out.splitlines()[1:]  # the same table either way


def test_neighbours_stats_recomputes_a_tampered_or_foreign_artifact(small_split_artifact, tmp_path, capsys):
    """A neighbour table replaced after the build (0% same-user), or a foreign `composition` block:
    the printed numbers come from the arrays, and a warning names the manifest."""
    from sracl_ray.cli import main
    from sracl_ray.semantic.artifact import save_artifact
    from sracl_ray.semantic.composition import composition_of

    art, _ = small_split_artifact
    save_artifact(tmp_path / "a", art)
    users = art.units["user"].to_numpy()
    other = np.array([[j for j in np.flatnonzero(users != users[i])[:art.unit_nbrs.shape[1]]]
                      for i in range(len(users))], np.int64)  # every neighbour another user's unit
    np.save(tmp_path / "a" / "unit_nbrs.npy", other)
    assert composition_of(art.unit_nbrs, art.units)["by_k"][2]["same_user"] > 0  # the original had some
    assert main(["neighbours", "--stats", str(tmp_path / "a")]) == 0
    cap = capsys.readouterr()
    k10 = next(line for line in cap.out.splitlines() if line.split()[:1] == ["10"])
    assert k10.split()[1] == "0.0%" and "disagrees and is ignored" in cap.out
    assert "manifest.json: its manifest says same_user" in cap.err and "the arrays give 0.0%" in cap.err
    for foreign in ({"by_k": "x"}, "a string", {"units": 3}, [1, 2]):
        save_artifact(tmp_path / "f", type(art)(**{**art.__dict__, "manifest": {**art.manifest, "composition": foreign}}))
        assert main(["neighbours", "--stats", str(tmp_path / "f")]) == 0
        cap = capsys.readouterr()
        assert "not one this version wrote" in cap.err and len(cap.err.strip().splitlines()) == 1


def test_neighbours_stats_refuses_string_user_ids(small_split_artifact, tmp_path, capsys):
    import pandas as pd

    from sracl_ray.cli import main
    from sracl_ray.semantic.artifact import save_artifact

    art, _ = small_split_artifact
    save_artifact(tmp_path / "a", art)
    units = pd.read_parquet(tmp_path / "a" / "units.parquet")
    units.assign(user=units["user"].astype(str)).to_parquet(tmp_path / "a" / "units.parquet", index=False)
    assert main(["neighbours", "--stats", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("sracl-ray: error:") and "units.parquet: column 'user' must hold integers" in err


def test_pipeline_neighbours_stage_stores_the_composition(tmp_path):
    """The neighbours stage (no LLM, no Ray: embeddings written by hand) records `composition`."""
    from sracl_ray.config import load_all
    from sracl_ray.semantic.artifact import load_artifact
    from sracl_ray.semantic.pipeline import _finish, load_prepared, neighbours, prepare, stage_dirs

    cfg, pipe = load_all(None, ["data.max_users=40", "neighbours.max_k=12"])
    d = stage_dirs(tmp_path)
    prepare(cfg, d["prepared"])
    _, split = load_prepared(d["prepared"])
    n_units = len(split.sample_user)
    rng = np.random.default_rng(0)
    item_emb = rng.normal(size=(split.n_items + 1, 8)).astype(np.float32)
    item_emb[0] = 0
    d["embeddings"].mkdir(parents=True)
    np.save(d["embeddings"] / "item_emb.npy", item_emb)
    np.save(d["embeddings"] / "unit_emb.npy", rng.normal(size=(n_units, 8)).astype(np.float32))
    _finish(d["embeddings"], "embed", {"model": "test"}, {"summaries": "none"})
    neighbours(d["prepared"], d["embeddings"], d["artifact"], "prefix", pipe, progress=False)
    art = load_artifact(d["artifact"])
    comp = art.manifest["composition"]
    assert comp["stored_k"] == 12 and [e["k"] for e in comp["by_k"]] == [1, 5, 10, 12]
    assert comp == neighbour_composition(art.unit_nbrs, art.units["user"].to_numpy(), art.units["length"].to_numpy())
