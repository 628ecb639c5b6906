"""read_yelp_raw: 2019 reviews only, the paper's ids on a hand-built dump, malformed lines rejected."""
from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from sracl_ray.data.errors import DataFormatError
from sracl_ray.data.raw_yelp import read_yelp_raw

# (user_id, business_id, date) in file order.  Core: c1..c5 each review b1..b5 in 2019.
# Dropped by the year filter: a0's three 2018 reviews, c2's 2018-12-31 23:59:59 and c1's
# 2020-01-01 00:00:00 (2019-01-01 00:00:00 and 2019-12-31 23:59:59 are kept).
# 5-core on what is left:  pass 1: y1..y4 (1 review each) and a0 (2 reviews) go, z9 drops to 1;
#   pass 2: z9 goes, m drops to 4 (c1..c4);  pass 3: m goes;  pass 4: stable.
# Without the year filter a0 would keep 5 reviews and, sorting first, become user 1.
REVIEWS = [
    ("c3", "b2", "2019-01-14 08:00:00"), ("z9", "y1", "2019-02-01 10:00:00"),
    ("c1", "b4", "2019-12-31 23:59:59"), ("a0", "b1", "2018-05-01 12:00:00"),
    ("c2", "b4", "2019-02-02 10:00:00"), ("c5", "b3", "2019-09-05 10:00:00"),
    ("c4", "m", "2019-08-01 10:00:00"), ("c1", "b1", "2020-01-01 00:00:00"),
    ("c3", "b5", "2019-01-10 08:00:00"), ("c2", "b1", "2019-02-02 10:00:00"),
    ("a0", "b4", "2019-05-04 12:00:00"), ("c1", "b3", "2019-01-05 09:00:00"),
    ("z9", "m", "2019-02-02 11:00:00"), ("c4", "b5", "2019-08-06 10:00:00"),
    ("c5", "b4", "2019-09-01 10:00:00"), ("c2", "b3", "2018-12-31 23:59:59"),
    ("c3", "m", "2019-01-12 08:00:00"), ("c1", "m", "2019-02-01 09:00:00"),
    ("a0", "b2", "2018-05-02 12:00:00"), ("c4", "b1", "2019-08-02 10:00:00"),
    ("c2", "b2", "2019-01-01 00:00:00"), ("z9", "y2", "2019-02-03 10:00:00"),
    ("c5", "b2", "2019-09-02 10:00:00"), ("c3", "b4", "2019-01-11 08:00:00"),
    ("c1", "b5", "2019-03-01 09:30:00"), ("c4", "b3", "2019-08-04 10:00:00"),
    ("a0", "b5", "2019-05-05 12:00:00"), ("c2", "m", "2019-04-04 10:00:00"),
    ("c5", "b5", "2019-09-03 10:00:00"), ("c3", "b3", "2019-01-13 08:00:00"),
    ("z9", "y3", "2019-02-04 10:00:00"), ("c1", "b1", "2019-03-01 08:00:00"),
    ("c4", "b2", "2019-08-03 10:00:00"), ("c2", "b3", "2019-05-05 10:00:00"),
    ("a0", "b3", "2018-05-03 12:00:00"), ("c5", "b1", "2019-09-04 10:00:00"),
    ("c3", "b1", "2019-01-15 08:00:00"), ("c1", "b2", "2019-06-10 10:00:00"),
    ("z9", "y4", "2019-02-05 10:00:00"), ("c4", "b4", "2019-08-05 10:00:00"),
    ("c2", "b5", "2019-07-07 10:00:00"),
]
# Kept, by time (c2's b4 and b1 share 2019-02-02 10:00:00; b4's line comes first):
#   c1: b3 b1 b5 b2 b4   c2: b2 b4 b1 b3 b5   c3: b5 b4 b3 b2 b1   c4: b1 b2 b3 b4 b5
#   c5: b4 b2 b5 b1 b3
# Users c1..c5 = 1..5; items by first appearance: b3=1 b1=2 b5=3 b2=4 b4=5.
EXPECTED_SEQS = [[1, 2, 3, 4, 5], [4, 5, 2, 1, 3], [3, 5, 1, 4, 2], [2, 4, 1, 5, 3], [5, 4, 3, 2, 1]]
EXPECTED_IDS = ["b3", "b1", "b5", "b2", "b4"]

BUSINESSES = [
    {"business_id": "b1", "name": "Joe's Diner", "categories": "Restaurants, Diners", "city": "Reno",
     "state": "NV", "stars": 4.5, "attributes": {"WiFi": "u'free'", "GoodForKids": "True"}},
    {"business_id": "b2", "name": "Nail Bar", "categories": None, "city": "Boise", "state": "ID",
     "stars": 3.0, "attributes": None},
    {"business_id": "b3", "name": "Caf\u00e9 &amp; Co", "categories": "Cafes", "city": "Tampa", "state": "FL",
     "stars": 4.0, "attributes": {"Parking": {"garage": False, "lot": True}, "Alcohol": "none"}},
    {"business_id": "zz", "name": "never reviewed"},
    {"business_id": "b5", "name": "Gym", "categories": "Fitness", "city": "Tucson", "state": "AZ", "stars": 5.0},
]  # b4 has no business line


def write(path: Path, lines: list[str]) -> Path:
    """Write lines, gzipped when the name ends in .gz."""
    data = ("\n".join(lines) + "\n").encode("utf-8")
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def review_lines() -> list[str]:
    """REVIEWS as JSON lines of the Yelp Open Dataset."""
    return [json.dumps({"review_id": f"r{i}", "user_id": u, "business_id": b, "stars": 4.0,
                        "text": "good", "date": d}) for i, (u, b, d) in enumerate(REVIEWS)]


def make_dump(folder: Path, prefix: str = "", ext: str = ".json") -> Path:
    """The hand-built dump above as review + business files."""
    write(folder / f"{prefix}review{ext}", review_lines())
    write(folder / f"{prefix}business{ext}", [json.dumps(b) for b in BUSINESSES])
    return folder


def test_ids_match_hand_derivation(tmp_path: Path) -> None:
    data = read_yelp_raw(make_dump(tmp_path))
    assert (data.name, data.domain, data.n_users, data.n_items) == ("Yelp", "yelp", 5, 5)
    assert [s.tolist() for s in data.sequences[1:]] == EXPECTED_SEQS
    assert data.items["business_id"].tolist() == EXPECTED_IDS
    assert len(data.interactions) == 25


def test_item_text_columns(tmp_path: Path) -> None:
    items = read_yelp_raw(make_dump(tmp_path)).items.set_index("business_id")
    assert list(items.columns) == ["item", "title", "categories", "city", "state", "stars", "attributes"]
    assert items.loc["b1"].drop("item").tolist() == [
        "Joe's Diner", "Restaurants, Diners", "Reno", "NV", "4.5", "WiFi: u'free'; GoodForKids: True"]
    assert items.loc["b2", ["categories", "attributes"]].tolist() == ["", ""]
    assert items.loc["b3", ["title", "attributes"]].tolist() == [
        "Caf\u00e9 &amp; Co", "Parking.garage: False; Parking.lot: True; Alcohol: none"]
    assert items.loc["b4"].drop("item").tolist() == [""] * 6


def test_official_names_gzipped_and_single_file(tmp_path: Path) -> None:
    make_dump(tmp_path, prefix="yelp_academic_dataset_", ext=".json.gz")
    by_dir = read_yelp_raw(tmp_path, name="yelp2019")
    by_file = read_yelp_raw(tmp_path / "yelp_academic_dataset_review.json.gz")
    assert by_dir.name == "yelp2019" and by_dir.fingerprint == by_file.fingerprint
    assert by_dir.items.loc[0, "title"] == "Caf\u00e9 &amp; Co"  # item 1 = b3, UTF-8 through gzip


def test_only_2019_reviews_kept(tmp_path: Path) -> None:
    # Two users, ten reviews each on the same five businesses: 2019 lines alone form a 5-core.
    rows = [(u, f"b{i}", f"{y}-06-0{i} 10:00:00") for u in ("u1", "u2") for i in range(1, 6)
            for y in (2018, 2019)]
    rows += [(u, f"b{i}", f"2019-07-0{i} 10:00:00") for u in ("u3", "u4", "u5") for i in range(1, 6)]
    write(tmp_path / "review.json", [json.dumps({"user_id": u, "business_id": b, "date": d}) for u, b, d in rows])
    write(tmp_path / "business.json", [json.dumps(b) for b in BUSINESSES])
    data = read_yelp_raw(tmp_path)
    assert len(data.interactions) == 25  # the ten 2018 reviews are gone
    assert data.items.columns.tolist() == ["item", "business_id", "title", "categories", "city", "state",
                                           "stars", "attributes"]
    write(tmp_path / "review.json", [json.dumps({"user_id": "u", "business_id": "b",
                                                 "date": "2020-01-01 00:00:00"})])
    with pytest.raises(DataFormatError, match="dated 2019"):
        read_yelp_raw(tmp_path)


@pytest.mark.parametrize("line_no, bad, expected", [
    (4, '{"user_id": "c1", "business_id": "b1", "date": ', "JSON object"),
    (2, "{'user_id': 'c1'}", "JSON object"),
    (6, '"just a string"', "JSON object"),
    (9, '{"user_id": "c1", "date": "2019-01-01 00:00:00"}', "business_id"),
    (3, '{"user_id": "c1", "business_id": "b1", "date": "2019/01/01"}', "YYYY-MM-DD"),
    (5, '{"user_id": 7, "business_id": "b1", "date": "2019-01-01 00:00:00"}', "user_id"),
])
def test_malformed_review_line(tmp_path: Path, line_no: int, bad: str, expected: str) -> None:
    make_dump(tmp_path)
    lines = review_lines()
    lines[line_no - 1] = bad
    write(tmp_path / "review.json", lines)
    before = sorted(tmp_path.iterdir())
    with pytest.raises(DataFormatError, match=expected) as err:
        read_yelp_raw(tmp_path)
    assert "review.json" in str(err.value) and f"line {line_no}:" in str(err.value)
    assert err.value.line == line_no and sorted(tmp_path.iterdir()) == before


@pytest.mark.parametrize("line_no, bad, expected", [
    (2, '{"business_id": "b2", "name": ', "JSON object"),
    (4, '{"name": "no id"}', "business_id"),
    (1, '{"business_id": "b1", "attributes": "WiFi"}', "attributes"),
])
def test_malformed_business_line(tmp_path: Path, line_no: int, bad: str, expected: str) -> None:
    make_dump(tmp_path)
    lines = [json.dumps(b) for b in BUSINESSES]
    lines[line_no - 1] = bad
    write(tmp_path / "business.json", lines)
    with pytest.raises(DataFormatError, match=expected) as err:
        read_yelp_raw(tmp_path)
    assert "business.json" in str(err.value) and f"line {line_no}:" in str(err.value)


def test_missing_review_file(tmp_path: Path) -> None:
    with pytest.raises(DataFormatError, match="review.json"):
        read_yelp_raw(tmp_path)
