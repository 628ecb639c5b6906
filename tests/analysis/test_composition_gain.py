"""The gain-by-composition panel: per-user shares of own / own-longer neighbours and the binned gain."""
import numpy as np
import pandas as pd
import pytest

from analysis.composition_gain import composition_gain, gain_by_share, plot_composition_gain, user_shares
from sracl_ray.errors import UserError

# user 1: units 0, 1, 2 (lengths 1, 2, 3); user 2: units 3, 4 (lengths 1, 2); unit 5: no text
USER = [1, 1, 1, 2, 2, 3]
LENGTH = [1, 2, 3, 1, 2, 1]
NBRS = np.array([[1, 3], [2, 0], [4, 3], [4, 0], [0, 1], [5, 5]])


def test_user_shares_by_hand_and_against_a_loop():
    units = pd.DataFrame({"user": USER, "length": LENGTH})
    got = user_shares(NBRS, units, 2)
    # user 1: unit 0 -> 1 (own, longer), 3;  unit 1 -> 2 (own, longer), 0 (own, shorter);  unit 2 -> 4, 3
    assert got.loc[1, "same_user"] == pytest.approx((1 / 2 + 2 / 2 + 0) / 3)
    assert got.loc[1, "longer_same_user"] == pytest.approx((1 / 2 + 1 / 2 + 0) / 3)
    # user 2: unit 3 -> 4 (own, longer), 0;  unit 4 -> 0, 1
    assert got.loc[2, "same_user"] == pytest.approx(0.25) and got.loc[2, "longer_same_user"] == pytest.approx(0.25)
    assert 3 not in got.index  # no unit with text
    rng = np.random.default_rng(0)
    n = 40
    user = np.sort(rng.integers(1, 8, n))
    length = np.concatenate([np.arange(1, (user == u).sum() + 1) for u in np.unique(user)])
    nbrs = np.stack([rng.choice(np.delete(np.arange(n), i), 4, replace=False) for i in range(n)])
    got = user_shares(nbrs, pd.DataFrame({"user": user, "length": length}), 3)
    for u in np.unique(user):
        rows = np.flatnonzero(user == u)
        same = np.mean([np.mean([user[j] == u for j in nbrs[i, :3]]) for i in rows])
        longer = np.mean([np.mean([user[j] == u and length[j] > length[i] for j in nbrs[i, :3]]) for i in rows])
        assert got.loc[u, "same_user"] == pytest.approx(same) and got.loc[u, "longer_same_user"] == pytest.approx(longer)


def test_gain_by_share_bins_means_and_errors():
    shares = pd.DataFrame({"same_user": [0.0, 0.1, 0.5, 0.6, 1.0, np.nan]}, index=[1, 2, 3, 4, 5, 6])
    diff = pd.Series([1.0, 3.0, -1.0, 1.0, 5.0, 9.0], index=[1, 2, 3, 4, 5, 6])
    out = gain_by_share(diff, shares, "same_user", (0, 0.5, 1.0))
    assert out["label"].tolist() == ["[0, 0.5)", "[0.5, 1]"]
    assert out["n_users"].tolist() == [2, 3]  # user 6 has no share; 1.0 falls in the closed last bin
    assert out["mean_diff"].tolist() == pytest.approx([2.0, 5 / 3])
    assert out["se"].iloc[0] == pytest.approx(np.std([1.0, 3.0], ddof=1) / np.sqrt(2))
    empty = gain_by_share(diff, shares, "same_user", (0, 0.05, 0.09, 1.0))
    assert empty["n_users"].tolist()[1] == 0 and np.isnan(empty["mean_diff"].iloc[1])  # an empty bin: NaN, not 0
    with pytest.raises(UserError, match="increasing"):
        gain_by_share(diff, shares, "same_user", (0.5, 0.5))


@pytest.fixture(scope="module")
def small_split_artifact():
    from sracl_ray.config import load
    from sracl_ray.data.readers import load_dataset
    from sracl_ray.data.split import leave_one_out
    from sracl_ray.semantic.interim import build_from_item_embeddings

    cfg = load(None, ["data.max_users=80"])
    split = leave_one_out(load_dataset(cfg.data), cfg.data.max_len)
    vecs = np.random.default_rng(0).normal(size=(split.n_items, 8)).astype(np.float32)
    return build_from_item_embeddings(split, vecs, "prefix", 20, {"builder": "test", "granularity": "prefix"}), split


def test_composition_gain_from_a_store_and_an_artifact(small_split_artifact, tmp_path):
    """End to end: two arms' ranks files, the artifact on disk; a missing artifact is a clear error."""
    from sracl_ray.semantic.artifact import save_artifact

    art, split = small_split_artifact
    save_artifact(tmp_path / "art", art)
    users = np.arange(1, split.n_users + 1)
    rng = np.random.default_rng(1)
    rows = []
    for variant in ("full", "no_cl"):
        for seed in (1, 2):
            path = tmp_path / f"{variant}-{seed}.parquet"
            pd.DataFrame({"user": users, "rank_test": rng.integers(0, 30, len(users)), "ties_test": 0}).to_parquet(path)
            rows.append({"trial_id": f"{variant}-{seed}", "variant": variant, "seed": seed, "status": "ok",
                         "ranks_path": str(path), "semantic_source": str(tmp_path / "art"),
                         "data_fingerprint": "x", "ties": "pessimistic"})
    df = pd.DataFrame(rows)
    out = composition_gain(df, "test/hr@10", {"variant": "full"}, {"variant": "no_cl"}, k=5)
    assert set(out["share"]) == {"same_user", "longer_same_user"}
    assert out.groupby("share")["n_users"].sum().max() <= split.n_users
    # the binned means agree with a direct computation of one bin
    hit = {r["trial_id"]: (pd.read_parquet(r["ranks_path"])["rank_test"].to_numpy() < 10).astype(float) for r in rows}
    diff = (hit["full-1"] + hit["full-2"]) / 2 - (hit["no_cl-1"] + hit["no_cl-2"]) / 2
    shares = user_shares(art.unit_nbrs, art.units, 5)
    first = out[(out["share"] == "same_user") & (out["bin"] == 0)].iloc[0]
    in_bin = shares.index[(shares["same_user"] >= 0) & (shares["same_user"] < 0.25)]
    assert first["n_users"] == len(in_bin) > 0
    assert first["mean_diff"] == pytest.approx(diff[in_bin.to_numpy() - 1].mean())
    plot_composition_gain(out, tmp_path / "fig.png", "test/hr@10", "full vs no_cl")
    assert (tmp_path / "fig.png").stat().st_size > 0
    with pytest.raises(UserError, match="not here"):
        composition_gain(df.assign(semantic_source=str(tmp_path / "gone")), "test/hr@10", {"variant": "full"},
                         {"variant": "no_cl"}, k=5)
