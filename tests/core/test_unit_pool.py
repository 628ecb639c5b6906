"""semantic.unit_pool: which units (and so which items) the L_CS neighbour pool holds."""
import numpy as np
import pytest

from sracl_ray import config as C
from sracl_ray.semantic.units import build_units, sample_units, unit_histories


@pytest.fixture(scope="module")
def split():
    from sracl_ray.data.readers import load_dataset
    from sracl_ray.data.split import leave_one_out

    cfg = C.load(None, ["data.max_users=80"])
    return leave_one_out(load_dataset(cfg.data), cfg.data.max_len)


def _items_by_user(units, hist):
    out = {}
    for u, row in zip(units["user"].to_numpy(), hist):
        out.setdefault(int(u), set()).update(int(i) for i in row if i)
    return out


def test_train_pool_holds_training_items_only_and_release_adds_exactly_the_validation_items(split):
    train = build_units(split, "prefix", "train")
    release = build_units(split, "prefix", "release")
    n, n_users = split.n_samples, split.n_users
    assert len(train) == n and len(release) == n + 2 * n_users  # Beauty: 131,413 -> 176,139 in the release
    # the first N units are the training samples' own, unchanged; samples still map to them
    assert release.iloc[:n]["key"].tolist() == train["key"].tolist()
    assert np.array_equal(sample_units(split, "prefix"), np.arange(n))
    h_train, h_rel = unit_histories(split, train), unit_histories(split, release)
    assert np.array_equal(h_rel[:n], h_train)
    valid, test = split.valid_target, split.test_target
    # independent: per user, which positions of its full sequence (train + valid + test) reach the pool
    for u in range(1, n_users + 1):
        seq = list(split.train_seqs[u])
        rows_t = np.flatnonzero(train["user"].to_numpy() == u)
        assert train["length"].to_numpy()[rows_t].max() == len(seq) - 1  # never the last training item's prefix
        rows_r = np.flatnonzero(release["user"].to_numpy() == u)
        extra = rows_r[rows_r >= n]
        assert sorted(release["length"].to_numpy()[extra]) == [len(seq), len(seq) + 1]
        last = h_rel[extra[np.argmax(release["length"].to_numpy()[extra])]]
        assert last[-1] == valid[u - 1] and last[-2] == seq[-1]  # the test input: ... + validation item
        full = h_rel[extra[np.argmin(release["length"].to_numpy()[extra])]]
        assert full[-1] == seq[-1]  # the whole training sequence (its next item is the validation item)
    # no training-pool unit holds a user's validation item at its validation position, and no unit of
    # either pool holds the test item after the validation item (the test item never reaches training)
    for hist, units in ((h_train, train), (h_rel, release)):
        users = units["user"].to_numpy()
        for r in range(len(units)):
            u = users[r]
            row = hist[r][hist[r] > 0]
            assert not (len(row) >= 1 and row[-1] == test[u - 1] and len(row) >= 2 and row[-2] == valid[u - 1])
    assert all(units_len == split.train_len[u - 1] - 1
               for u, units_len in zip(*np.unique(train["user"], return_counts=True)))
    with pytest.raises(ValueError, match="granularity=prefix"):
        build_units(split, "user", "release")


def test_unit_pool_is_a_typed_setting_checked_against_the_artifact(small_sample, tmp_path):
    from sracl_ray.semantic.artifact import ArtifactError
    from sracl_ray.training.prepare import prepare_inputs

    assert C.Config().semantic.unit_pool == "train"
    with pytest.raises(C.ConfigError, match="semantic.unit_pool"):
        C.load(None, ["semantic.unit_pool=full"])
    with pytest.raises(C.ConfigError, match="granularity=prefix"):
        C.load(None, ["semantic.unit_pool=release", "semantic.granularity=user"])
    with pytest.raises(ArtifactError, match="unit_pool=train.*unit_pool=release"):
        prepare_inputs(C.load(None, small_sample + ["semantic.unit_pool=release"]))  # a train-pool artifact given
    assert "semantic.unit_pool=release" in C.inert_settings(C.load(None, ["cl.variant=no_cl",
                                                                          "semantic.unit_pool=release"]))


def test_release_pool_trains_and_the_validation_items_reach_l_cs(tmp_path, caplog):
    """The interim artifact built with the release's pool: units beyond the samples' appear among the
    neighbours the device tensors hold, their histories carry validation items; a train-pool run's never."""
    import torch

    from sracl_ray.training.fit import fit
    from sracl_ray.training.inputs import DeviceData
    from sracl_ray.training.prepare import prepare_inputs

    sets = ["data.max_users=60", f"semantic.cache_dir={tmp_path / 'cache'}", "train.progress=false",
            "train.num_threads=1", "semantic.unit_pool=release"]
    cfg = C.load(None, sets)
    with caplog.at_level("WARNING"):
        prep = prepare_inputs(cfg)
    assert "semantic.unit_pool=release" in caplog.text and "validation items reach training" in caplog.text
    sp = prep.split
    assert prep.semantic.unit_pool == "release" and len(prep.units) == sp.n_samples + 2 * sp.n_users
    dd = DeviceData(prep, cfg, torch.device("cpu"))
    nbrs = dd.unit_nbrs.numpy()
    assert (nbrs >= sp.n_samples).any()  # extra units are neighbours of training samples
    valid_units = np.flatnonzero(prep.units["length"].to_numpy() > sp.train_len[prep.units["user"].to_numpy() - 1])
    assert np.isin(valid_units, nbrs).any()  # a test-input unit (ends with the validation item) is reached
    result = fit(C.load(None, sets + ["train.epochs=1"]), tmp_path / "run")
    assert result["status"] == "ok" and result["config"]["semantic"]["unit_pool"] == "release"
