"""semantic.neighbours: the non-semantic controls of the L_CS neighbour table (training/controls.py)."""
import numpy as np
import pytest

from sracl_ray import config as C
from sracl_ray.errors import UserError
from sracl_ray.training import controls


def _table(rng, n_units=60, k=8):
    """A random exact-looking table: row i lists k other units; units 58, 59 are text-less (self rows)."""
    nbrs = np.stack([rng.choice(np.delete(np.arange(n_units), i), k, replace=False) for i in range(n_units)])
    nbrs[58:] = np.arange(58, n_units)[:, None]
    return nbrs


def test_random_other_user_draws_distinct_units_of_other_users_with_text_reproducibly():
    rng = np.random.default_rng(0)
    nbrs = _table(rng)
    user = np.repeat(np.arange(15), 4)  # 4 units per user
    out = controls.random_other_user(nbrs, user, 5, seed=7)
    assert out.shape == (60, 5)
    for i in range(58):
        row = out[i]
        assert len(set(row)) == 5 and (user[row] != user[i]).all() and not np.isin(row, [58, 59]).any()
    assert (out[58:] == np.arange(58, 60)[:, None]).all()  # text-less rows keep pointing to themselves
    np.testing.assert_array_equal(out, controls.random_other_user(nbrs, user, 5, seed=7))
    assert not np.array_equal(out, controls.random_other_user(nbrs, user, 5, seed=8))
    with pytest.raises(UserError, match="random_other_user"):
        controls.random_other_user(nbrs, np.zeros(60, int), 5, seed=0)  # one user: no other users


def test_shuffled_is_the_table_of_permuted_embeddings():
    """Permute the embeddings among units with text and recompute the exact top-k: the same table."""
    rng = np.random.default_rng(1)
    emb = rng.normal(size=(40, 6))
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)

    def topk(e):
        sim = e @ e.T
        np.fill_diagonal(sim, -np.inf)
        return np.argsort(-sim, axis=1, kind="stable")[:, :5]

    table = topk(emb)
    out, pi = controls.shuffled(table, seed=3)
    np.testing.assert_array_equal(out, topk(emb[pi]))
    assert sorted(pi) == list(range(40)) and not np.array_equal(pi, np.arange(40))


def test_control_is_a_typed_setting_and_inert_where_l_cs_reads_no_neighbours():
    assert C.Config().semantic.neighbours == "semantic"
    with pytest.raises(C.ConfigError, match="semantic.neighbours"):
        C.load(None, ["semantic.neighbours=jaccard"])
    inert = C.inert_settings(C.load(None, ["cl.variant=no_cs", "semantic.neighbours=shuffled"]))
    assert "semantic.neighbours=shuffled" in inert


def test_device_tensors_follow_the_control(small_sample):
    import torch

    from sracl_ray.training.inputs import DeviceData, prepare_inputs

    cfg = C.load(None, small_sample)
    prep = prepare_inputs(cfg)
    plain = DeviceData(prep, cfg, torch.device("cpu"))
    shuf = DeviceData(prep, C.load(None, small_sample + ["semantic.neighbours=shuffled"]), torch.device("cpu"))
    rand = DeviceData(prep, C.load(None, small_sample + ["semantic.neighbours=random_other_user"]), torch.device("cpu"))
    assert plain.unit_nbrs.shape == shuf.unit_nbrs.shape == rand.unit_nbrs.shape
    assert not torch.equal(plain.unit_nbrs, shuf.unit_nbrs) and not torch.equal(plain.unit_nbrs, rand.unit_nbrs)
    assert torch.equal(plain.item_nbrs, shuf.item_nbrs) and torch.equal(plain.item_nbrs, rand.item_nbrs)  # L_IS unchanged
    # shuffled permutes the synthesis inputs with the table; random keeps them
    assert not torch.equal(plain.unit_emb, shuf.unit_emb) and torch.equal(plain.unit_emb, rand.unit_emb)
    users = prep.units["user"].to_numpy()
    r = rand.unit_nbrs.numpy()
    text = r[:, 0] != np.arange(len(r))
    assert (users[r[text]] != users[text][:, None]).all()


def _naive_jaccard(train_seqs, n_items, k):
    """Independent: Jaccard of user sets by plain Python sets, ties to the lower id, popularity fill."""
    users = {i: set() for i in range(1, n_items + 1)}
    for u, seq in enumerate(train_seqs):
        for i in seq:
            users[int(i)].add(u)
    pop = sorted(range(1, n_items + 1), key=lambda i: (-len(users[i]), i))
    out = []
    for i in range(1, n_items + 1):
        scored = [(-len(users[i] & users[j]) / len(users[i] | users[j]), j) for j in range(1, n_items + 1)
                  if j != i and users[i] & users[j]]
        best = [j for _, j in sorted(scored)][:k]
        best += [j for j in pop if j != i and j not in best][:k - len(best)]
        out.append(best)
    return np.array([[0] * k] + out)


def test_item_controls_random_and_cooccurrence():
    rng = np.random.default_rng(3)
    n_items = 30
    seqs = [rng.choice(np.arange(1, 26), rng.integers(1, 7), replace=False) for _ in range(40)]  # 26..30 unseen
    co = controls.cooccurrence_items(seqs, n_items, 4)
    np.testing.assert_array_equal(co, _naive_jaccard(seqs, n_items, 4))
    assert (co[0] == 0).all() and (co[1:] != np.arange(1, n_items + 1)[:, None]).all()
    rnd = controls.random_items(n_items, 5, seed=2)
    assert rnd.shape == (31, 5) and (rnd[0] == 0).all()
    for i in range(1, 31):
        assert len(set(rnd[i])) == 5 and i not in rnd[i] and rnd[i].min() >= 1 and rnd[i].max() <= n_items
    np.testing.assert_array_equal(rnd, controls.random_items(n_items, 5, seed=2))
    assert not np.array_equal(rnd, controls.random_items(n_items, 5, seed=3))
    with pytest.raises(UserError, match="item_neighbours=random"):
        controls.random_items(4, 4, seed=0)
    with pytest.raises(C.ConfigError, match="semantic.item_neighbours"):
        C.load(None, ["semantic.item_neighbours=shuffled"])
    assert "semantic.item_neighbours=random" in C.inert_settings(
        C.load(None, ["cl.variant=no_is", "semantic.item_neighbours=random"]))


def test_item_control_changes_only_the_l_is_table_and_reads_training_data_only(small_sample, tmp_path):
    import torch

    from sracl_ray.training.fit import fit
    from sracl_ray.training.inputs import DeviceData, prepare_inputs

    cfg = C.load(None, small_sample)
    prep = prepare_inputs(cfg)
    plain = DeviceData(prep, cfg, torch.device("cpu"))
    co_cfg = C.load(None, small_sample + ["semantic.item_neighbours=cooccurrence"])
    co = DeviceData(prep, co_cfg, torch.device("cpu"))
    assert torch.equal(plain.unit_nbrs, co.unit_nbrs) and not torch.equal(plain.item_nbrs, co.item_nbrs)
    sp = prep.split
    np.testing.assert_array_equal(co.item_nbrs.numpy(), controls.cooccurrence_items(sp.train_seqs[1:], sp.n_items,
                                                                                    C.k_item(co_cfg.cl)))
    # with the validation items added the table differs: so the equality above says that only the
    # training sequences reached it
    leaky = [np.append(s, v) for s, v in zip(sp.train_seqs[1:], sp.valid_target)]
    assert not np.array_equal(co.item_nbrs.numpy(), controls.cooccurrence_items(leaky, sp.n_items,
                                                                                C.k_item(co_cfg.cl)))
    result = fit(C.load(None, small_sample + ["semantic.item_neighbours=random", "train.epochs=1"]), tmp_path / "r")
    assert result["status"] == "ok" and result["config"]["semantic"]["item_neighbours"] == "random"


def _naive_unit_jaccard(hist, textless, k, banned=None):
    sets = [set(int(i) for i in row if i) for row in hist]
    out = []
    for i, a in enumerate(sets):
        if i in textless:
            out.append([i] * k)
            continue
        cand = [(-len(a & b) / len(a | b) if a | b else 0.0, j) for j, b in enumerate(sets)
                if j != i and j not in textless and not (banned is not None and banned[i, j])]
        out.append([j for _, j in sorted(cand)][:k])
    return np.array(out)


def test_cooccurrence_units_equal_a_naive_jaccard_with_and_without_exclusion():
    rng = np.random.default_rng(4)
    n, L = 50, 6
    hist = np.zeros((n, L), np.int64)
    for i in range(n):
        m = rng.integers(1, L + 1)
        hist[i, L - m:] = rng.integers(1, 15, m)  # repeats allowed: a set counts each item once
    nbrs = _table(rng, n_units=n, k=4)
    nbrs[48:] = np.arange(48, 50)[:, None]  # units 48, 49 without text
    got = controls.cooccurrence_units(hist, nbrs, 5)
    np.testing.assert_array_equal(got, _naive_unit_jaccard(hist, {48, 49}, 5))
    user, length = np.repeat(np.arange(10), 5), np.tile(np.arange(1, 6), 10)
    got = controls.cooccurrence_units(hist, nbrs, 5, user, length, "same_user")
    np.testing.assert_array_equal(got, _naive_unit_jaccard(hist, {48, 49}, 5, user[:, None] == user[None, :]))
    assert not (user[got[:48]] == user[:48, None]).any()


def test_cooccurrence_control_on_the_device_tensors(small_sample):
    import torch

    from sracl_ray.training.inputs import DeviceData, prepare_inputs

    cfg = C.load(None, small_sample + ["semantic.neighbours=cooccurrence", "semantic.exclude=longer_same_user"])
    prep = prepare_inputs(cfg)
    dd = DeviceData(prep, cfg, torch.device("cpu"))
    units, hist = prep.unit_inputs()
    want = controls.cooccurrence_units(hist, prep.semantic.unit_nbrs, C.k_user(cfg.cl), units["user"].to_numpy(),
                                       units["length"].to_numpy(), "longer_same_user")
    np.testing.assert_array_equal(dd.unit_nbrs.numpy(), want)
    user, length = units["user"].to_numpy(), units["length"].to_numpy()
    got = dd.unit_nbrs.numpy()
    assert not ((user[got] == user[:, None]) & (length[got] > length[:, None])).any()
