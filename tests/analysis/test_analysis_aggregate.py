"""Mean ± std over seeds, method naming and the reference setting."""
from __future__ import annotations

import numpy as np
import pytest

from analysis.aggregate import aggregate, lookup
from analysis.methods import (
    at_reference, method_label, method_name, metric_label, resolve_reference, select,
)


def test_mean_and_sample_std_over_seeds(loaded, store):
    _, rows = store
    agg = aggregate(loaded, ["test/hr@20", "test/ndcg@10"])
    for metric in ("test/hr@20", "test/ndcg@10"):
        r = rows[(rows.dataset == "office") & (rows.backbone == "sasrec") & (rows.variant == "full")
                 & (rows.alpha == 0.2)]
        cell = lookup(agg, metric, dataset="office", backbone="sasrec", variant="full", alpha=0.2)
        assert cell["mean"] == pytest.approx(np.mean(r[metric]))
        assert cell["std"] == pytest.approx(np.std(r[metric], ddof=1))
        assert cell["n"] == cell["n_seeds"] == 3
    # 5 full settings + no_cl for sasrec, 2 for gru4rec, 3 ablations = 11 groups per dataset
    assert len(agg) == 2 * 11 * 2


def test_group_keys_are_configurable(loaded, store):
    _, rows = store
    agg = aggregate(loaded, ["test/hr@20"], keys=["dataset", "variant"])
    r = rows[(rows.dataset == "beauty") & (rows.variant == "full")]
    cell = lookup(agg, "test/hr@20", dataset="beauty", variant="full")
    assert cell["n"] == len(r) == 3 * 6 and cell["n_seeds"] == 3
    assert cell["mean"] == pytest.approx(r["test/hr@20"].mean())


def test_missing_metric_is_named(loaded):
    with pytest.raises(KeyError, match="test/hr@5"):
        aggregate(loaded, ["test/hr@5"])


def test_names():
    assert method_name("sasrec", "full") == "SASRec+SRA-CL"
    assert method_name("gru4rec", "no_cl") == "GRU4Rec"
    assert method_name("sasrec", "no_cs") == "SASRec+SRA-CL"
    assert method_label("sasrec", "no_cs") == "SASRec+SRA-CL (w/o L_CS)"
    assert metric_label("test/ndcg@20") == "NDCG@20" and metric_label("valid/hr@10") == "HR@10"


def test_reference_is_the_most_common_setting_and_ignores_irrelevant_ones(loaded):
    ref = resolve_reference(loaded)
    assert ref == {"alpha": 0.1, "beta": 0.1, "k": 10, "mask_history": False, "max_len": 20}
    at = at_reference(loaded)
    # no_cl recorded alpha=beta=0 and no_cs alpha=0: still at the reference
    counts = at.groupby(["dataset", "backbone", "variant"]).size()
    assert (counts == 3).all() and len(counts) == 2 * (4 + 3)
    assert set(at.loc[at.variant == "full", "alpha"]) == {0.1}


def test_explicit_reference_and_ignore(loaded):
    at = at_reference(loaded, {"alpha": 0.2})
    assert set(at.loc[at.variant == "full", "alpha"]) == {0.2}
    assert (at.variant == "no_cl").sum() == 12  # no_cl does not depend on alpha
    swept = at_reference(loaded[loaded.variant == "full"], ignore=("alpha",))
    assert sorted(swept.loc[swept.backbone == "sasrec", "alpha"].unique()) == [0.05, 0.1, 0.2]
    assert set(select(loaded, {"alpha": 0.05})["trial_id"]) == set(
        loaded.loc[np.isclose(loaded.alpha, 0.05), "trial_id"])
