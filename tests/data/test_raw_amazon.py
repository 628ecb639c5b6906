"""read_amazon_raw: the paper's ids on a hand-built raw dump, and malformed lines rejected."""
from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from sracl_ray.data.errors import DataFormatError
from sracl_ray.data.raw_amazon import read_amazon_raw
from sracl_ray.data.readers import read_any

# (reviewerID, asin, unixReviewTime) in file order: users and times deliberately out of order.
# Core: users A1..A5 each review P, Q, R, S, T.  Periphery, removed pass by pass:
#   pass 1: Y1..Y4 (1 review each) and A0 (2 reviews) go; B9 drops to 1 review (M);
#   pass 2: B9 goes, so M drops to 4 reviews (A1..A4);  pass 3: M goes;  pass 4: stable.
# A single pass would keep B9 and M; without the filter A0 would sort first and be user 1.
# Line 24 repeats line 12 exactly (A5, R, 50): counted by the 5-core, then dropped.
REVIEWS = [
    ("A3", "R", 9), ("B9", "Y1", 3), ("A1", "Q", 50), ("A4", "P", 6), ("A2", "T", 15),
    ("A0", "P", 1), ("A3", "M", 7), ("A5", "T", 80), ("A1", "T", 10), ("A2", "R", 60),
    ("A4", "M", 1), ("A5", "R", 50), ("A3", "S", 5), ("B9", "M", 4), ("A1", "M", 25),
    ("A2", "Q", 15), ("A4", "R", 2), ("A5", "S", 60), ("A3", "P", 6), ("A1", "R", 20),
    ("A2", "P", 30), ("A4", "T", 3), ("B9", "Y2", 5), ("A5", "R", 50), ("A3", "Q", 8),
    ("A1", "P", 30), ("A2", "M", 35), ("A4", "Q", 4), ("A0", "Q", 2), ("A5", "P", 70),
    ("A3", "T", 10), ("A1", "S", 40), ("A2", "S", 40), ("A4", "S", 5), ("B9", "Y3", 6),
    ("A5", "Q", 90), ("B9", "Y4", 7),
]
# After the filter, each user's items by time (stable: A2's T and Q share t=15, T's line first):
#   A1: T10 R20 P30 S40 Q50     A2: T15 Q15 P30 S40 R60     A3: S5 P6 Q8 R9 T10
#   A4: R2 T3 Q4 S5 P6          A5: R50 S60 P70 T80 Q90
# Users sorted by reviewerID -> A1..A5 = 1..5.  Items by first appearance along that order:
#   T=1 R=2 P=3 S=4 Q=5.
EXPECTED_SEQS = [[1, 2, 3, 4, 5], [1, 5, 3, 4, 2], [4, 3, 5, 2, 1], [2, 1, 5, 4, 3], [2, 4, 3, 1, 5]]
EXPECTED_ASINS = ["T", "R", "P", "S", "Q"]

META = [
    {"asin": "T", "title": "Tweezers &amp; Brush", "brand": "Acme", "price": 5.5,
     "salesRank": {"Beauty": 1234}, "categories": [["Beauty", "Tools & Accessories"], ["Beauty", "Women's"]],
     "description": "d" * 600, "imUrl": "http://x", "related": {"also_bought": ["R"]}},
    {"asin": "Z", "title": "never reviewed"},
    {"asin": "R", "title": "Rouge", "categories": [["Beauty", "Makeup"]]},
    {"asin": "P", "title": "Polish", "brand": "Nails", "price": 12.0, "salesRank": {},
     "categories": [["Beauty"]], "description": "short"},
    {"asin": "S", "title": "Soap", "categories": [["Beauty", "Bath & Body"]], "salesRank": {"Health": 77}},
    {"asin": "M", "title": "removed by the 5-core"},
]  # Q has no metadata line


def review_line(user: str, asin: str, t: int) -> str:
    """A review as the 2014 dump writes it: a Python literal (single quotes, not JSON)."""
    rec = {"reviewerID": user, "asin": asin, "reviewerName": "O'Neil", "helpful": [0, 0],
           "reviewText": "it's fine", "overall": 4.0, "summary": "ok", "unixReviewTime": t,
           "reviewTime": "01 1, 1970"}
    return repr(rec)


def write(path: Path, lines: list[str]) -> Path:
    """Write lines, gzipped when the name ends in .gz."""
    data = ("\n".join(lines) + "\n").encode("utf-8")
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def make_dump(folder: Path, gz: bool = True, x: str = "Beauty") -> Path:
    """The hand-built dump above as reviews_X_5 + meta_X files."""
    ext = ".json.gz" if gz else ".json"
    write(folder / f"reviews_{x}_5{ext}", [review_line(*r) for r in REVIEWS])
    write(folder / f"meta_{x}{ext}", [repr(m) for m in META])
    return folder


def test_ids_match_hand_derivation(tmp_path: Path) -> None:
    data = read_amazon_raw(make_dump(tmp_path))
    assert (data.name, data.domain, data.n_users, data.n_items) == ("Beauty", "beauty", 5, 5)
    assert [s.tolist() for s in data.sequences[1:]] == EXPECTED_SEQS
    assert data.items["asin"].tolist() == EXPECTED_ASINS
    assert data.items["item"].tolist() == [1, 2, 3, 4, 5]
    assert str(data.interactions["user"].dtype) == "int64" and str(data.interactions["item"].dtype) == "int64"
    assert data.interactions.groupby("user")["order"].apply(list).tolist() == [[0, 1, 2, 3, 4]] * 5


def test_item_text_columns(tmp_path: Path) -> None:
    items = read_amazon_raw(make_dump(tmp_path)).items.set_index("asin")
    assert list(items.columns) == ["item", "title", "brand", "categories", "price", "sales_type",
                                   "sales_rank", "description"]
    t = items.loc["T"]
    assert t["title"] == "Tweezers &amp; Brush"  # HTML entities kept raw
    assert t["categories"] == "'Beauty', 'Tools & Accessories', \"Women's\""  # flattened, repeats dropped
    assert (t["brand"], t["price"], t["sales_type"], t["sales_rank"]) == ("Acme", "5.5", "Beauty", "1234")
    assert t["description"] == "d" * 500
    assert items.loc["P", ["price", "sales_type", "sales_rank", "description"]].tolist() == ["12.0", "", "", "short"]
    assert items.loc["S", ["brand", "sales_type", "sales_rank"]].tolist() == ["", "Health", "77"]
    assert items.loc["Q"].drop("item").tolist() == [""] * 7  # no metadata line at all


def test_plain_files_single_file_path_and_read_any(tmp_path: Path) -> None:
    make_dump(tmp_path, gz=False, x="Sports_and_Outdoors")
    by_dir = read_amazon_raw(tmp_path)
    by_file = read_amazon_raw(tmp_path / "reviews_Sports_and_Outdoors_5.json", name="sports")
    auto = read_any(tmp_path)
    assert (by_dir.name, by_dir.domain, by_file.name, by_file.domain) == (
        "Sports_and_Outdoors", "sports", "sports", "sports")
    assert by_dir.fingerprint == by_file.fingerprint == auto.fingerprint
    assert [s.tolist() for s in by_dir.sequences[1:]] == EXPECTED_SEQS


def test_office_domain_and_name_picks_the_file(tmp_path: Path) -> None:
    make_dump(tmp_path, x="Office_Products")
    make_dump(tmp_path, x="Beauty")
    assert read_amazon_raw(tmp_path, name="Office_Products").domain == "office"
    with pytest.raises(DataFormatError, match="exactly one"):
        read_amazon_raw(tmp_path)


@pytest.mark.parametrize("line_no, bad, expected", [
    (3, "{'reviewerID': 'A1', 'asin': ", "Python-literal dict"),
    (5, "[1, 2, 3]", "Python-literal dict"),
    (2, "{'reviewerID': 'A1', 'asin': 'P'}", "unixReviewTime"),
    (7, "{'reviewerID': 'A1', 'asin': 'P', 'unixReviewTime': '12'}", "unixReviewTime"),
    (4, "__import__('os').system('touch PWNED')", "Python-literal dict"),
])
def test_malformed_review_line(tmp_path: Path, line_no: int, bad: str, expected: str) -> None:
    lines = [review_line(*r) for r in REVIEWS]
    lines[line_no - 1] = bad
    make_dump(tmp_path)  # the metadata file is required (and found before the reviews are read)
    write(tmp_path / "reviews_Beauty_5.json.gz", lines)
    before = sorted(tmp_path.iterdir())
    with pytest.raises(DataFormatError, match=expected) as err:
        read_amazon_raw(tmp_path)
    assert "reviews_Beauty_5.json.gz" in str(err.value) and f"line {line_no}:" in str(err.value)
    assert err.value.line == line_no
    assert sorted(tmp_path.iterdir()) == before  # nothing written (and nothing eval'd)
    assert not (tmp_path / "PWNED").exists() and not Path("PWNED").exists()


@pytest.mark.parametrize("line_no, bad, expected", [
    (2, "{'asin': 'Z', 'title': 'unterminated}", "Python-literal dict"),
    (3, "{'title': 'no asin'}", "'asin'"),
    (1, "{'asin': 'T', 'categories': 'Beauty'}", "list of lists"),
])
def test_malformed_meta_line(tmp_path: Path, line_no: int, bad: str, expected: str) -> None:
    make_dump(tmp_path)
    lines = [repr(m) for m in META]
    lines[line_no - 1] = bad
    write(tmp_path / "meta_Beauty.json.gz", lines)
    with pytest.raises(DataFormatError, match=expected) as err:
        read_amazon_raw(tmp_path)
    assert "meta_Beauty.json.gz" in str(err.value) and f"line {line_no}:" in str(err.value)


def test_truncated_gzip_and_empty_core(tmp_path: Path) -> None:
    data = gzip.compress(("\n".join(review_line(*r) for r in REVIEWS) + "\n").encode())
    make_dump(tmp_path)
    (tmp_path / "reviews_Beauty_5.json.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataFormatError, match="gzip"):
        read_amazon_raw(tmp_path)
    write(tmp_path / "reviews_Beauty_5.json.gz", [review_line(*r) for r in REVIEWS[:6]])
    with pytest.raises(DataFormatError, match="5-core"):
        read_amazon_raw(tmp_path)
