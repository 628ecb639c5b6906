"""Readers never crash late or corrupt silently: ids, encodings, item files, renumbering, name and domain.

The error cases are also walked through the real CLI in tests/badinput/test_data_cases.py; here
they are checked at the function level (exact line numbers), next to the behaviours that are NOT
errors: renumbering of gapped ids, warnings with counts, `textless_items`, name/domain derivation.
"""
from __future__ import annotations

import gzip
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sracl_ray.config import DataConfig
from sracl_ray.data.dataset import GENERIC, guess_domain, textless_items
from sracl_ray.data.errors import DataFormatError
from sracl_ray.data.readers import SAMPLE_DIR, load_dataset, read_any, read_paper, read_recbole
from sracl_ray.data.split import leave_one_out
from sracl_ray.errors import UserError

SEQS = {1: [1, 2, 3], 2: [2, 3, 4], 3: [4, 5, 1]}  # user -> items, chronological
ITEMS = "item_id\ttitle\tbrand\n1\tRose oil\tAcme\n2\tWig\t\n3\tComb\tAcme\n4\tSoap\t\n5\tBrush\tAcme\n"
INTER_HEADER = "user_id:token\titem_id:token\ttimestamp:float\n"


def write_paper(folder: Path, seqs: dict[int, list[int]] = SEQS, items: str | None = ITEMS,
                name: str = "Toy.txt") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text("".join(f"{u} {i}\n" for u, s in seqs.items() for i in s))
    if items is not None:
        (folder / "items.tsv").write_text(items)
    return folder


def write_recbole(folder: Path, inter: str, item: str | None = "item_id:token\ttitle:token_seq\n"
                  "a\tA\nb\tB\nc\tC\nd\tD\n") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "toy.inter").write_text(inter)
    if item is not None:
        (folder / "toy.item").write_text(item)
    return folder


def error_of(fn, *args) -> DataFormatError:
    with pytest.raises(DataFormatError) as err:
        fn(*args)
    return err.value


# ---------------------------------------------------------------- ids and encodings


# superscript 2, Arabic-Indic 3, fullwidth 1 (all str.isdigit()), and more digits than an int64 holds
@pytest.mark.parametrize("bad", ["\u00b2", "\u0663", "\uff11", "1" * 19])
def test_only_ascii_digits_are_ids(tmp_path: Path, bad: str) -> None:
    write_paper(tmp_path)
    (tmp_path / "Toy.txt").write_text(f"1 1\n1 2\n1 {bad}\n", encoding="utf-8")
    err = error_of(read_paper, tmp_path)
    assert err.line == 3 and "Toy.txt, line 3" in str(err) and "ASCII digits" in str(err)


def test_decode_errors_name_file_and_line(tmp_path: Path) -> None:
    write_paper(tmp_path)
    (tmp_path / "Toy.txt").write_bytes(b"1 1\n1 2\n1 3\n2 \xff1\n")
    err = error_of(read_paper, tmp_path)
    assert (err.line, err.expected) == (4, "UTF-8 text") and "byte 0xff at column 3" in str(err)
    write_paper(tmp_path, items=None)
    (tmp_path / "items.tsv").unlink()
    with gzip.open(tmp_path / "items.tsv.gz", "wb") as f:
        f.write(ITEMS.encode().replace(b"Comb", b"C\xe9mb"))  # latin-1, not UTF-8
    err = error_of(read_paper, tmp_path)
    assert "items.tsv.gz, line 4: expected UTF-8 text" in str(err)
    data = ITEMS.encode()
    (tmp_path / "items.tsv.gz").write_bytes(gzip.compress(data)[:-12])  # truncated stream
    assert "gzip stream" in str(error_of(read_paper, tmp_path))


def test_bom_and_crlf_are_fine(tmp_path: Path) -> None:
    write_paper(tmp_path)
    (tmp_path / "items.tsv").write_bytes(b"\xef\xbb\xbf" + ITEMS.replace("\n", "\r\n").encode())
    data = read_paper(tmp_path)
    assert data.items["title"].tolist() == ["Rose oil", "Wig", "Comb", "Soap", "Brush"]


# ---------------------------------------------------------------- items.tsv


def test_items_tsv_errors(tmp_path: Path) -> None:
    write_paper(tmp_path, items=ITEMS + "2\tDuplicate\t\n")
    err = error_of(read_paper, tmp_path)
    assert "items.tsv, line 7: duplicate item_id 2 (first on line 3)" in str(err)
    write_paper(tmp_path, items=ITEMS + "6\tOther dataset\t\n")
    err = error_of(read_paper, tmp_path)
    assert "items.tsv, line 7:" in str(err) and "item_id 6 is beyond the largest item id 5" in str(err)
    assert "another dataset" in str(err)
    write_paper(tmp_path, items="item_id\ttitle\n1\tA\n2\tB\n3\tC\n4\tD\n")
    err = error_of(read_paper, tmp_path)
    assert "Toy.txt, line 8: item 5 has no row in items.tsv" in str(err)
    write_paper(tmp_path, items="item_id\tprice\n1\t1\n2\t2\n3\t3\n4\t4\n5\t5\n")
    err = error_of(read_paper, tmp_path)
    assert "items.tsv, line 1: expected a text column" in str(err) and "price" in str(err)
    write_paper(tmp_path, items="item_id\ttitle\n1\t\n2\t\n3\t \n4\t\n5\t\n")
    assert "none of the 5 items has any text" in str(error_of(read_paper, tmp_path))
    (tmp_path / "items.tsv").unlink()
    err = error_of(read_paper, tmp_path)
    assert str(tmp_path / "items.tsv") in str(err) and "no such file" in str(err) and "Toy.txt" in str(err)


def test_textless_items_warned_with_counts(tmp_path: Path, caplog) -> None:
    items = "item_id\ttitle\tbrand\tcategories\n1\tA\t\t\n2\t \t\t\n3\t\tAcme\t\n4\t\t\t\n5\t\t\t'Beauty'\n"
    write_paper(tmp_path, items=items)
    with caplog.at_level(logging.WARNING):
        data = read_paper(tmp_path)
    assert textless_items(data.items).tolist() == [2, 4]
    msg = [r.getMessage() for r in caplog.records if "have no text" in r.getMessage()]
    assert len(msg) == 1 and "2 of 5 items have no text" in msg[0] and "ids 2, 4" in msg[0]
    assert "items.tsv" in msg[0]


def test_textless_items_function() -> None:
    items = pd.DataFrame({"item": [3, 1, 2, 4], "title": ["", "A", None, "  "], "brand": ["", "", np.nan, "B"]})
    got = textless_items(items)
    assert got.dtype == np.int64 and got.tolist() == [2, 3]
    assert textless_items(items, columns=("title",)).tolist() == [2, 3, 4]
    assert textless_items(items, columns=("description",)).tolist() == [1, 2, 3, 4]  # absent = empty
    assert textless_items(items.iloc[:0]).tolist() == []


# ---------------------------------------------------------------- renumbering


def test_gapped_user_ids_renumbered_in_id_order(tmp_path: Path, caplog) -> None:
    seqs = {5: [1, 2, 3], 1: [2, 3, 4], 2: [4, 5, 1]}  # users 1, 2, 5; user 5's lines come first
    write_paper(tmp_path, seqs)
    with caplog.at_level(logging.INFO):
        data = read_paper(tmp_path)
    assert data.n_users == 3
    assert [s.tolist() for s in data.sequences[1:]] == [[2, 3, 4], [4, 5, 1], [1, 2, 3]]  # 1, 2, then 5 -> 3
    info = [r.getMessage() for r in caplog.records if "user ids have gaps" in r.getMessage()]
    assert len(info) == 1 and "renumbered 1 of them" in info[0]
    split = leave_one_out(data, 5)  # used to be an IndexError
    assert split.test_target.tolist() == [4, 1, 3]


def test_huge_item_ids_renumbered_not_allocated(tmp_path: Path, caplog) -> None:
    big = 100_000_000_000
    write_paper(tmp_path, {1: [1, 2, big], 2: [2, big, 7]},
                items=f"item_id\ttitle\n1\tA\n{big}\tHuge\n2\tB\n7\tC\n")
    with caplog.at_level(logging.WARNING):
        data = read_paper(tmp_path)
    assert data.n_items == 4 and data.items["item"].tolist() == [1, 2, 3, 4]
    assert data.items["item_id"].tolist() == ["1", "2", "7", str(big)]  # the file's ids, kept
    assert data.items["title"].tolist() == ["A", "B", "C", "Huge"]
    assert [s.tolist() for s in data.sequences[1:]] == [[1, 2, 4], [2, 4, 3]]
    assert any("item ids have gaps" in r.getMessage() for r in caplog.records)


def test_gap_free_paper_ids_kept_exactly() -> None:
    data = read_any(SAMPLE_DIR)
    assert "item_id" not in data.items.columns and data.items["item"].tolist() == list(range(1, 4911))


def test_recbole_tokens_and_timestamps(tmp_path: Path, caplog) -> None:
    rows = "u9\ta\t3\nu9\tb\t1\nu9\tc\t2\nu1\tb\t5\nu1\tc\t6\nu1\td\t7\n"
    write_recbole(tmp_path, INTER_HEADER + rows)
    with caplog.at_level(logging.INFO):
        data = read_recbole(tmp_path)
    assert [s.tolist() for s in data.sequences[1:]] == [[1, 2, 3], [1, 2, 4]]  # u1, u9; items by first appearance
    assert data.items["token"].tolist() == ["b", "c", "d", "a"]
    assert any("user tokens mapped to ids 1..2" in r.getMessage() for r in caplog.records)
    for bad, line in (("nan", 4), ("inf", 3), ("\u0663", 2), ("", 5)):
        lines = rows.splitlines()
        lines[line - 2] = lines[line - 2].rsplit("\t", 1)[0] + "\t" + bad
        write_recbole(tmp_path, INTER_HEADER + "\n".join(lines) + "\n")
        err = error_of(read_recbole, tmp_path)
        assert f"toy.inter, line {line}: expected a finite numeric timestamp" in str(err)


def test_recbole_without_timestamp_warns(tmp_path: Path, caplog) -> None:
    write_recbole(tmp_path, "user_id:token\titem_id:token\n1\tc\n1\ta\n1\tb\n")
    with caplog.at_level(logging.WARNING):
        data = read_recbole(tmp_path)
    assert data.items["token"].tolist() == ["c", "a", "b"]  # file order
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("toy.inter" in m and "no 'timestamp' column" in m and "file order" in m for m in warned)


def test_recbole_item_file_errors(tmp_path: Path) -> None:
    inter = INTER_HEADER + "1\ta\t1\n1\tb\t2\n1\tc\t3\n"
    write_recbole(tmp_path, inter, item="item_id:token\ttitle:token_seq\na\tA\nb\tB\na\tAgain\n")
    assert "toy.item, line 4: duplicate item_id 'a' (first on line 2)" in str(error_of(read_recbole, tmp_path))
    write_recbole(tmp_path, inter, item="item_id:token\tyear:token\na\t1999\n")
    assert "toy.item, line 1: expected a text column" in str(error_of(read_recbole, tmp_path))
    write_recbole(tmp_path, inter, item="item_id:token\ttitle:token_seq\nx\tX\n")  # another dataset's
    assert "none of the 3 items has any text" in str(error_of(read_recbole, tmp_path))
    (tmp_path / "toy.item").unlink()
    assert "toy.item: no such file" in str(error_of(read_recbole, tmp_path))
    write_recbole(tmp_path, INTER_HEADER, item=None)
    assert "at least one interaction line" in str(error_of(read_recbole, tmp_path))
    write_recbole(tmp_path, "user_id:token\ttimestamp:float\n1\t1\n", item=None)
    assert "toy.inter, line 1: expected a 'item_id' column" in str(error_of(read_recbole, tmp_path))


# ---------------------------------------------------------------- load_dataset: empty, path, name, domain


def test_no_user_long_enough(tmp_path: Path) -> None:
    write_paper(tmp_path, {1: [1, 2], 2: [3], 3: [4, 5]})
    err = error_of(load_dataset, DataConfig(path=str(tmp_path)))
    assert "Toy.txt: no user has >= 3 interactions (leave-one-out needs 3)" in str(err)
    write_paper(tmp_path, {1: [1, 2], 2: [3, 4, 5]})
    err = error_of(load_dataset, DataConfig(path=str(tmp_path), max_users=1))
    assert "among the first 1 users (data.max_users)" in str(err)
    assert load_dataset(DataConfig(path=str(tmp_path))).n_users == 1  # user 1 dropped, user 2 -> 1


def test_bad_paths(tmp_path: Path) -> None:
    err = error_of(load_dataset, DataConfig(path=str(tmp_path / "nope")))
    assert str(tmp_path / "nope") in str(err) and "data.path" in str(err)
    (tmp_path / "empty").mkdir()
    assert "empty directory" in str(error_of(load_dataset, DataConfig(path=str(tmp_path / "empty"))))
    (tmp_path / "notes.csv").write_text("a,b\n")
    assert "expected a dataset" in str(error_of(load_dataset, DataConfig(path=str(tmp_path / "notes.csv"))))
    write_paper(tmp_path / "two")
    (tmp_path / "two" / "Other.txt").write_text("1 1\n")
    err = error_of(load_dataset, DataConfig(path=str(tmp_path / "two")))
    assert "exactly one NAME.txt" in str(err) and "Other.txt, Toy.txt" in str(err)


def test_name_and_domain_come_from_the_data(tmp_path: Path) -> None:
    sample = load_dataset(DataConfig(max_users=50))
    assert (sample.name, sample.domain) == ("beauty_sample[:50u]", "beauty")
    named = load_dataset(DataConfig(name="mine", max_users=50))
    assert (named.name, named.domain) == ("mine[:50u]", "beauty")  # an explicit name is honoured
    toy = load_dataset(DataConfig(path=str(write_paper(tmp_path / "beauty_copy"))))
    assert (toy.name, toy.domain) == ("Toy", GENERIC)  # neither the folder nor a default decides
    assert load_dataset(DataConfig(path=str(tmp_path / "beauty_copy"), name="Sports_toy")).domain == "sports"
    explicit = load_dataset(DataConfig(path=str(tmp_path / "beauty_copy"), domain="office"))
    assert explicit.domain == "office"
    with pytest.raises(UserError, match="data.domain: unknown domain 'books'"):
        load_dataset(DataConfig(domain="books"))
    assert [guess_domain(n) for n in ("Beauty", "ml-1m", "Yelp2019", "Office_Products", "Toy", "")] == [
        "beauty", "movies", "yelp", "office", GENERIC, GENERIC]


def test_generic_domain_prompts_are_neutral(tmp_path: Path) -> None:
    from sracl_ray.semantic.prompts import DOMAINS, build_records, domain_of
    from sracl_ray.semantic.units import build_units

    data = load_dataset(DataConfig(path=str(write_paper(tmp_path))))
    split = leave_one_out(data, 5)
    recs = build_records(split, data.items, build_units(split, "user"), data.domain)
    text = " ".join(recs.system.tolist() + recs.prompt.tolist()).lower()
    assert "beauty" not in text and "purchased" not in text and "products" not in text
    assert "the user has interacted with these items, oldest first" in text
    assert domain_of("") == domain_of(GENERIC) and GENERIC not in DOMAINS


def test_raw_dumps_need_their_item_file(tmp_path: Path) -> None:
    from sracl_ray.data.raw_amazon import read_amazon_raw
    from sracl_ray.data.raw_yelp import read_yelp_raw

    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "reviews_Beauty_5.json").write_text("{'reviewerID': 'A', 'asin': 'P', 'unixReviewTime': 1}\n")
    err = error_of(read_amazon_raw, tmp_path / "a")
    assert "meta_Beauty.json.gz: no such file (nor meta_Beauty.json)" in str(err)
    (tmp_path / "y").mkdir()
    (tmp_path / "y" / "review.json").write_text('{"user_id": "u", "business_id": "b", "date": "2019-01-01 00:00:00"}\n')
    assert "business.json: no such file" in str(error_of(read_yelp_raw, tmp_path / "y"))
