"""Loading the results store: dir forms, errors naming the path, ranks_path resolution."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from analysis.store import load_store, metric_columns, require_columns


def test_storage_dir_and_results_dir_load_the_same_rows(store):
    root, rows = store
    a, b = load_store(root), load_store(root / "results")
    assert len(a) == len(rows) == 66
    pd.testing.assert_frame_equal(a, b)
    assert a.attrs["storage_dir"] == str(root)
    assert set(a["trial_id"]) == set(rows["trial_id"])


def test_rows_keep_the_stored_values(loaded, store):
    _, rows = store
    got = loaded.set_index("trial_id").loc[rows["trial_id"], "test/hr@20"].to_numpy()
    assert got == pytest.approx(rows["test/hr@20"].to_numpy())


def test_ranks_path_absolute_and_relative_both_resolve(loaded, store):
    root, rows = store
    stored = rows.set_index("trial_id")["ranks_path"].dropna()
    assert any(Path(p).is_absolute() for p in stored) and any(not Path(p).is_absolute() for p in stored)
    resolved = loaded.set_index("trial_id")["ranks_path"]
    for tid, p in stored.items():
        assert Path(resolved[tid]).is_absolute()
        assert Path(resolved[tid]) == (root / p).resolve()  # absolute p: root / p == p
        assert Path(resolved[tid]).is_file()
    assert resolved.drop(stored.index).isna().all()  # rows without ranks stay None


def test_missing_store_names_the_path(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(FileNotFoundError, match=str(missing)):
        load_store(missing)


def test_empty_store_names_the_results_dir(tmp_path):
    (tmp_path / "sweep" / "results").mkdir(parents=True)
    (tmp_path / "sweep" / "results" / ".trial-x.parquet.tmp").write_bytes(b"partial")
    with pytest.raises(FileNotFoundError, match=r"empty.*sweep/results"):
        load_store(tmp_path / "sweep")


def test_unreadable_file_is_named(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    (results / "trial-bad.parquet").write_bytes(b"not parquet")
    with pytest.raises(ValueError, match="trial-bad.parquet"):
        load_store(tmp_path)


def test_metric_columns_and_require_columns(loaded):
    assert "test/ndcg@20" in metric_columns(loaded) and "cfg.cl.variant" not in metric_columns(loaded)
    with pytest.raises(KeyError, match="test/mrr@10"):
        require_columns(loaded, ["test/mrr@10"])
