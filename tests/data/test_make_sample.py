"""The packaged sample is exactly what make_sample builds from the shared Beauty files."""
import gzip
from pathlib import Path

import pytest

from sracl_ray.data.make_sample import make_sample
from sracl_ray.data.readers import SAMPLE_DIR

BEAUTY = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "beauty"


@pytest.mark.skipif(not (BEAUTY / "Beauty.txt").exists(), reason="shared Beauty data not present")
def test_packaged_sample_is_reproducible(tmp_path):
    make_sample(BEAUTY, 1000, tmp_path)
    assert (tmp_path / "Beauty.txt").read_text() == (SAMPLE_DIR / "Beauty.txt").read_text()
    assert gzip.open(tmp_path / "items.tsv.gz").read() == gzip.open(SAMPLE_DIR / "items.tsv.gz").read()


def test_packaged_sample_is_small():
    assert sum(p.stat().st_size for p in SAMPLE_DIR.iterdir()) < 1_000_000
