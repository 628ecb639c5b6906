"""Reader for the raw Amazon 2014 review dumps (McAuley et al.), rebuilding the paper's ids.

A directory holds `reviews_X_5.json.gz` (one Python-literal dict per line: reviewerID, asin,
unixReviewTime, ...) and `meta_X.json.gz` (asin, title, brand, categories, price, salesRank,
description, ...); plain `.json` files work too.  The SRA-CL release builds its ids this way
(build_datasets&prompts/Amazon_Beauty.ipynb): 5-core until stable on the file's rows, drop exact
(user, item, time) duplicates, sort by (reviewerID, time) with a stable sort, then number users
and items in order of first appearance.  Lines are parsed with `ast.literal_eval`, never `eval`.
"""
from __future__ import annotations

import ast
import logging
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from sracl_ray.data.dataset import (InteractionData, check_item_text, guess_domain, k_core,
                                    remap_by_first_appearance)
from sracl_ray.data.errors import DataFormatError
from sracl_ray.data.textfile import decoded_lines

log = logging.getLogger(__name__)

CORE = 5
DESCRIPTION_CHARS = 500
REVIEW_KEYS = {"reviewerID": str, "asin": str, "unixReviewTime": int}
TEXT_COLUMNS = ["title", "brand", "categories", "price", "sales_type", "sales_rank", "description"]
DOMAINS = {"Beauty": "beauty", "Sports_and_Outdoors": "sports", "Office_Products": "office"}
REVIEWS_RE = re.compile(r"^reviews_(?P<x>.+?)(?:_5)?\.json(?:\.gz)?$")


def iter_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(1-based line number, stripped text) of every non-blank line; .gz is streamed."""
    for n, line in enumerate(decoded_lines(path), 1):
        line = line.strip()
        if line:
            yield n, line


def parse_literal(path: Path, n: int, line: str) -> dict:
    """One line as a Python-literal dict (ast.literal_eval), or DataFormatError."""
    try:
        obj = ast.literal_eval(line)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError) as e:
        raise DataFormatError(path, n, "a Python-literal dict", line[:80]) from e
    if not isinstance(obj, dict):
        raise DataFormatError(path, n, "a Python-literal dict", line[:80])
    return obj


def require_keys(path: Path, n: int, rec: dict, keys: dict[str, type]) -> None:
    """Raise DataFormatError unless every key is present with the given type."""
    for key, typ in keys.items():
        if key not in rec:
            raise DataFormatError(path, n, f"a {key!r} field", ", ".join(map(str, rec))[:80])
        val = rec[key]
        if not isinstance(val, typ) or isinstance(val, bool):
            raise DataFormatError(path, n, f"{key!r} of type {typ.__name__}", repr(val)[:80])


def text(value: object) -> str:
    """A metadata value as raw text ('' when missing; HTML entities kept)."""
    return "" if value is None else str(value)


def items_frame(keys: np.ndarray, meta: dict[str, dict[str, str]], key_col: str,
                columns: list[str]) -> pd.DataFrame:
    """One row per item id 1..n: `item`, the raw key, then the text columns ('' if unknown)."""
    rows = [meta.get(k, {}) for k in keys]
    df = pd.DataFrame({"item": np.arange(1, len(keys) + 1, dtype=np.int64), key_col: [str(k) for k in keys]})
    for col in columns:
        df[col] = [r.get(col, "") for r in rows]
    return df


def build_ids(raw: pd.DataFrame, path: Path) -> tuple[pd.DataFrame, np.ndarray]:
    """5-core until stable, drop exact duplicates, ids by first appearance after (user, time) sort."""
    core = k_core(raw, CORE).drop_duplicates(["user", "item", "time"])
    if core.empty:
        raise DataFormatError(path, None, f"interactions left after the {CORE}-core filter")
    inter, _, item_keys = remap_by_first_appearance(core)
    return inter, item_keys


def read_rows(path: Path, parse: Callable[[Path, int, str], tuple | None],
              expected: str = "at least one review line") -> pd.DataFrame:
    """Rows (user, item, time) from the lines `parse` keeps (it returns None to skip a line)."""
    rows = [r for n, line in iter_lines(path) if (r := parse(path, n, line)) is not None]
    if not rows:
        raise DataFormatError(path, None, expected)
    return pd.DataFrame(rows, columns=["user", "item", "time"])


def parse_review(path: Path, n: int, line: str) -> tuple[str, str, int]:
    """One review line -> (reviewerID, asin, unixReviewTime)."""
    rec = parse_literal(path, n, line)
    require_keys(path, n, rec, REVIEW_KEYS)
    return rec["reviewerID"], rec["asin"], rec["unixReviewTime"]


def format_categories(path: Path, n: int, cats: object) -> str:
    """[['A', 'B'], ['A', 'C']] -> "'A', 'B', 'C'" (flattened, first occurrence kept)."""
    ok = isinstance(cats, list) and all(isinstance(c, list) and all(isinstance(s, str) for s in c) for c in cats)
    if not ok:
        raise DataFormatError(path, n, "'categories' as a list of lists of strings", repr(cats)[:80])
    flat = dict.fromkeys(s for c in cats for s in c)
    return ", ".join(repr(s) for s in flat)


def meta_text(path: Path, n: int, rec: dict) -> dict[str, str]:
    """The text columns of one metadata record."""
    rank = rec.get("salesRank") or {}
    if not isinstance(rank, dict):
        raise DataFormatError(path, n, "'salesRank' as a dict {category: rank}", repr(rank)[:80])
    sales_type, sales_rank = next(iter(rank.items()), ("", ""))
    return {"title": text(rec.get("title")), "brand": text(rec.get("brand")),
            "categories": format_categories(path, n, rec.get("categories") or []),
            "price": text(rec.get("price")), "sales_type": text(sales_type), "sales_rank": text(sales_rank),
            "description": text(rec.get("description"))[:DESCRIPTION_CHARS]}


def read_wanted(path: Path, wanted: set[str], key: str, parse, to_text) -> dict[str, dict[str, str]]:
    """rec[key] -> to_text(rec) for the wanted keys, first record wins (every line must still parse)."""
    out: dict[str, dict[str, str]] = {}
    for n, line in iter_lines(path):
        rec = parse(path, n, line)
        require_keys(path, n, rec, {key: str})
        if rec[key] in wanted and rec[key] not in out:
            out[rec[key]] = to_text(path, n, rec)
    return out


def read_meta(path: Path, wanted: set[str]) -> dict[str, dict[str, str]]:
    """asin -> text columns for the wanted asins."""
    return read_wanted(path, wanted, "asin", parse_literal, meta_text)


def locate(path: Path, name: str | None) -> tuple[Path, str]:
    """The reviews file (given, or the one in the directory matching `name`) and its category X."""
    if path.is_file():
        m = REVIEWS_RE.match(path.name)
        if m is None:
            raise DataFormatError(path, None, "a file named reviews_X_5.json[.gz]")
        return path, m["x"]
    found = {m["x"]: p for p in sorted(path.glob("reviews_*")) if (m := REVIEWS_RE.match(p.name))}
    if name is not None:
        found = {x: p for x, p in found.items() if x.lower() == name.lower()} or found
    if len(found) != 1:
        raise DataFormatError(path, None, "exactly one reviews_X_5.json[.gz] (or name= one X)", ", ".join(found))
    (x, p), = found.items()
    return p, x


def find_meta(reviews: Path, x: str) -> Path:
    """meta_X.json.gz (or .json) beside the reviews file, or an error saying where we looked."""
    for p in (reviews.parent / f"meta_{x}.json.gz", reviews.parent / f"meta_{x}.json"):
        if p.is_file():
            return p
    raise DataFormatError(reviews.parent / f"meta_{x}.json.gz", None, message=(
        f"no such file (nor meta_{x}.json) beside {reviews.name}; the item text comes from it"))


def read_amazon_raw(path: Path, name: str | None = None) -> InteractionData:
    """Raw Amazon 2014 reviews + metadata -> InteractionData with the paper's ids."""
    reviews, x = locate(Path(path), name)
    meta_path = find_meta(reviews, x)  # before the (long) read of the reviews
    inter, item_keys = build_ids(read_rows(reviews, parse_review), reviews)
    items = items_frame(item_keys, read_meta(meta_path, set(item_keys.tolist())), "asin", TEXT_COLUMNS)
    check_item_text(items, meta_path)
    return InteractionData(name or x, DOMAINS.get(x) or guess_domain(x, name), inter, items, str(reviews))
