"""Bad data through the real CLI: each case exits 2 with one line naming the file (and line), no traceback,
nothing written.  Most cases run `sracl-ray prepare` (reading the data is its first step); a few
run `sracl-ray train`, whose data check also comes before anything is written.

Covered at the function level only (same code path as a case here): Arabic-Indic digits, ids
longer than int64, NaN/inf timestamps.  Not an error, and so tested in
tests/data/test_reader_hardening.py instead: user ids with gaps (renumbered), items without text
(a warning with counts), a .inter without timestamps (a warning).
"""
from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from tests.badinput.harness import Case, check_case

PREPARE = ("prepare", "--out", "{tmp}/prep", "--set", "data.path={tmp}/d")
TRAIN = ("train", "--out", "{tmp}/run", "--set", "data.path={tmp}/d", "--set", "cl.variant=no_cl",
         "--set", "train.epochs=1")
FETCH = ("data", "fetch", "beauty", "--to", "{tmp}/afile", "--cache", "{tmp}/cache", "--base-url", "http://127.0.0.1:9")
GOOD_TXT = "1 1\n1 2\n1 3\n2 2\n2 3\n2 4\n3 4\n3 5\n3 1\n"
GOOD_ITEMS = "item_id\ttitle\n1\tRose oil\n2\tWig\n3\tComb\n4\tSoap\n5\tBrush\n"
INTER_HEADER = "user_id:token\titem_id:token\ttimestamp:float\n"
GOOD_ITEM_FILE = "item_id:token\ttitle:token_seq\na\tA\nb\tB\nc\tC\n"


def paper(txt: str | bytes = GOOD_TXT, items: str | bytes | None = GOOD_ITEMS, items_name: str = "items.tsv",
          extra: dict[str, str] | None = None, named: bool = True):
    """setup(tmp) writing tmp/d/Toy.txt, tmp/d/<items_name> (bytes as given) and extra files;
    the error line must then name tmp/d (unless named=False: a config key is the culprit)."""
    def setup(tmp: Path) -> list[str]:
        d = tmp / "d"
        d.mkdir()
        (d / "Toy.txt").write_bytes(txt if isinstance(txt, bytes) else txt.encode())
        if items is not None:
            (d / items_name).write_bytes(items if isinstance(items, bytes) else items.encode())
        for name, text in (extra or {}).items():
            (d / name).write_text(text)
        return [str(d)] if named else []
    return setup


def recbole(inter: str, item: str | None = GOOD_ITEM_FILE):
    def setup(tmp: Path) -> list[str]:
        d = tmp / "d"
        d.mkdir()
        (d / "toy.inter").write_text(inter)
        if item is not None:
            (d / "toy.item").write_text(item)
        return [str(d)]
    return setup


def empty_dir(tmp: Path) -> list[str]:
    (tmp / "d").mkdir()
    return [str(tmp / "d")]


def csv_file(tmp: Path) -> list[str]:
    (tmp / "d").mkdir()
    (tmp / "d" / "notes.csv").write_text("a,b\n")
    return [str(tmp / "d" / "notes.csv")]


CASES = [
    Case("superscript-digit", PREPARE, ["Toy.txt", "line 2", "ASCII digits"], paper("1 1\n1 \u00b2\n1 3\n")),
    Case("non-utf8-byte", PREPARE, ["Toy.txt", "line 4", "UTF-8"],
         paper(GOOD_TXT.encode().replace(b"2 2", b"2 \xff2"))),
    Case("non-utf8-byte-gz", PREPARE, ["items.tsv.gz", "line 4", "UTF-8"],
         paper(items=gzip.compress(GOOD_ITEMS.encode().replace(b"Comb", b"C\xe9mb")), items_name="items.tsv.gz")),
    Case("truncated-gz", PREPARE, ["items.tsv.gz", "gzip"],
         paper(items=gzip.compress(GOOD_ITEMS.encode())[:-12], items_name="items.tsv.gz")),
    Case("duplicate-item-id", PREPARE, ["items.tsv", "line 7", "duplicate item_id 3", "line 4"],
         paper(items=GOOD_ITEMS + "3\tComb again\n")),
    Case("items-of-another-dataset", PREPARE, ["items.tsv", "line 7", "item_id 6", "another dataset"],
         paper(items=GOOD_ITEMS + "6\tNot here\n")),
    Case("item-missing-from-items", PREPARE, ["Toy.txt", "line 8", "item 5", "items.tsv"],
         paper(items="item_id\ttitle\n1\tA\n2\tB\n3\tC\n4\tD\n")),
    Case("missing-items-tsv", PREPARE, ["items.tsv", "no such file"], paper(items=None)),
    Case("items-without-text-columns", PREPARE, ["items.tsv", "line 1", "text column"],
         paper(items="item_id\tprice\n1\t1\n2\t2\n3\t3\n4\t4\n5\t5\n")),
    Case("items-all-textless", PREPARE, ["items.tsv", "none of the 5 items has any text"],
         paper(items="item_id\ttitle\n1\t\n2\t\n3\t\n4\t\n5\t\n")),
    Case("all-users-shorter-than-3", PREPARE, ["Toy.txt", "no user has >= 3", "leave-one-out needs 3"],
         paper("1 1\n1 2\n2 3\n3 4\n3 5\n")),
    Case("item-id-1e11", PREPARE, ["Toy.txt", "line 2", "100000000000"], paper("1 1\n1 100000000000\n1 2\n")),
    Case("empty-file", PREPARE, ["Toy.txt", "at least one"], paper("")),
    Case("blank-lines-only", PREPARE, ["Toy.txt", "at least one"], paper("\n  \n\t\n")),
    Case("three-fields", PREPARE, ["Toy.txt", "line 3", "two positive integer ids"], paper("1 1\n1 2\n1 3 5\n")),
    Case("negative-id", PREPARE, ["Toy.txt", "line 2"], paper("1 1\n-1 2\n1 3\n")),
    Case("zero-id", PREPARE, ["Toy.txt", "line 1", "ids >= 1"], paper("1 0\n1 2\n1 3\n")),
    Case("two-txt-files", PREPARE, ["exactly one", "Other.txt"], paper(extra={"Other.txt": "1 1\n"})),
    Case("recbole-no-user-id", PREPARE, ["toy.inter", "line 1", "user_id"],
         recbole("session:token\titem_id:token\ttimestamp:float\n1\ta\t1\n")),
    Case("recbole-bad-timestamp", PREPARE, ["toy.inter", "line 3", "timestamp"],
         recbole(INTER_HEADER + "1\ta\t1\n1\tb\tsoon\n1\tc\t3\n")),
    Case("recbole-missing-item-file", PREPARE, ["toy.item", "no such file"],
         recbole(INTER_HEADER + "1\ta\t1\n1\tb\t2\n1\tc\t3\n", item=None)),
    Case("recbole-duplicate-item", PREPARE, ["toy.item", "line 3", "duplicate item_id"],
         recbole(INTER_HEADER + "1\ta\t1\n1\tb\t2\n1\tc\t3\n", item=GOOD_ITEM_FILE.replace("\nb\t", "\na\t"))),
    Case("data-path-missing", PREPARE, ["No such file"], lambda tmp: [str(tmp / "d")]),
    Case("data-path-empty-dir", PREPARE, ["empty directory"], empty_dir),
    Case("data-path-wrong-kind", ("prepare", "--out", "{tmp}/prep", "--set", "data.path={tmp}/d/notes.csv"),
         ["expected a dataset"], csv_file),
    Case("yelp-format-on-paper-dir", PREPARE + ("--set", "data.format=yelp_raw"), ["review.json"], paper()),
    Case("unknown-domain", PREPARE + ("--set", "data.domain=books"), ["data.domain", "books"], paper(named=False)),
    Case("train-superscript-digit", TRAIN, ["Toy.txt", "line 2", "ASCII digits"], paper("1 1\n1 \u00b2\n1 3\n")),
    Case("train-all-users-short", TRAIN, ["Toy.txt", "leave-one-out needs 3"], paper("1 1\n1 2\n2 3\n2 4\n3 5\n")),
    # every user has exactly 3 interactions: 0 training samples (before: exit 0 and an untrained model's HR@10)
    Case("train-zero-training-samples", TRAIN, ["Toy.txt", "0 training samples", ">= 4 interactions"], paper()),
    # --- data fetch: options and --to checked before any download (nothing listens on the base URL)
    Case("fetch-timeout-nan", FETCH + ("--timeout", "nan"), ["--timeout", "finite"]),
    Case("fetch-max-size-bogus", FETCH + ("--max-size", "lots"), ["--max-size", "500M"]),
    Case("fetch-to-is-file", FETCH, ["afile", "not a directory"], lambda t: (t / "afile").write_text("x") and None),
]


def test_case_ids_unique() -> None:
    assert len({c.id for c in CASES}) == len(CASES) >= 14


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_data(case: Case, tmp_path: Path) -> None:
    check_case(case, tmp_path)
