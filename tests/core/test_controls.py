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
        C.load(None, ["semantic.neighbours=cooccurrence"])
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
