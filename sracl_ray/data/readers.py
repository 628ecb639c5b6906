"""Readers for the on-disk dataset formats, all returning an InteractionData.

- "paper":   `NAME.txt` with `user item` lines (chronological within a user) plus an `items.tsv`
             (or `.tsv.gz`) with an `item_id` column and text columns (title, brand, categories, ...).
- "recbole": RecBole atomic files `NAME.inter` + `NAME.item` with typed headers.
- "amazon_raw", "yelp_raw": see raw_amazon.py / raw_yelp.py.

What a reader accepts, and why:
- A malformed line raises DataFormatError naming the file, the line number and what was expected;
  a byte that is not UTF-8 too (plain or gzipped files).  Only ASCII digits are ids ('²' and '٣'
  pass str.isdigit but are not numbers anyone wrote on purpose), at most 18 of them (int64).
- Every format needs its item file (items.tsv, NAME.item, meta_X.json, business.json) with at least
  one text column: the semantic stage has nothing to embed otherwise.  Items without any text
  (title, brand and categories all empty) are counted in a warning; `textless_items` lists them
  so the semantic stage can keep them out of neighbour pools.
- Paper ids.  The SRA-CL release numbers users and items 1..n without gaps, and a semantic
  artifact built on the release is keyed by those ids, so gap-free ids are kept exactly.  items.tsv
  defines the item id space: its ids must be unique, must cover every item of the interactions
  and must not exceed the largest item id there (ids beyond it mean another dataset's items file).
  When ids have gaps they are renumbered 1..n in the order of their values (users: an info line;
  items: a warning, the file's id kept in an `item_id` column), so memory follows the number of
  ids present and never an id's value (an id of 10^11 among 5 items allocates 5 rows, not 10^11).
- RecBole and raw dumps carry tokens, not ids: they are always numbered by first appearance
  after a (user, time) sort.  A `.inter` without a timestamp column is read in file order, with a
  warning that says so.
- After slicing (data.max_users) and dropping users with fewer than 3 interactions, no users left
  is an error: leave-one-out needs 3 per user.
- Name and domain: `data.name` when given, else the data's own name (the file stem; the packaged
  sample is "beauty_sample"); `data.domain` when given, else the domain the file's name mentions,
  else "generic" (domain-neutral prompts) -- never a domain the data did not name.
"""
from __future__ import annotations

import csv
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from sracl_ray.config import DataConfig
from sracl_ray.data.dataset import (DOMAINS, GENERIC, InteractionData, check_item_text,
                                    dense_ids, drop_short_users, guess_domain, remap_by_first_appearance,
                                    require_text_column, slice_users)
from sracl_ray.data.errors import DataFormatError
from sracl_ray.data.textfile import decoded_lines, is_id
from sracl_ray.storage import local_data

log = logging.getLogger(__name__)

PACKAGE_DATA = Path(__file__).resolve().parent.parent / "package_data"
SAMPLE_DIR = PACKAGE_DATA / "beauty_sample"
SAMPLE_NAME = "beauty_sample"
TITLE_ALIASES = ("movie_title", "business_name", "name")  # RecBole .item spellings of the title
MIN_LEN = 3  # leave-one-out: at least one training item, the validation and the test item


def only_file(path: Path, suffix: str, what: str) -> Path:
    """`path` itself, or the one file with this suffix in the directory `path`."""
    if path.is_file():
        return path
    found = sorted(p for p in path.glob(f"*{suffix}") if p.is_file())
    if len(found) != 1:
        got = ", ".join(p.name for p in found) if found else "none"
        raise DataFormatError(path, None, f"exactly one {what} (or data.path naming the file)", got)
    return found[0]


# ---------------------------------------------------------------- paper format


def read_user_item_txt(path: Path) -> pd.DataFrame:
    """`user item` per line -> frame (user, item, order, line) with ids as in the file."""
    users, items, lines = [], [], []
    for n, line in enumerate(decoded_lines(path), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2 or not (is_id(parts[0]) and is_id(parts[1])):
            raise DataFormatError(path, n, "two positive integer ids 'user item' (ASCII digits)", line.strip()[:80])
        u, i = int(parts[0]), int(parts[1])
        if u < 1 or i < 1:
            raise DataFormatError(path, n, "ids >= 1 (0 is reserved for padding)", line.strip()[:80])
        users.append(u)
        items.append(i)
        lines.append(n)
    if not users:
        raise DataFormatError(path, None, "at least one 'user item' line")
    df = pd.DataFrame({"user": np.asarray(users, np.int64), "item": np.asarray(items, np.int64),
                       "line": np.asarray(lines, np.int64)})
    df.insert(2, "order", df.groupby("user").cumcount().astype("int64"))
    return df


def read_items_tsv(path: Path) -> tuple[pd.DataFrame, np.ndarray]:
    """items.tsv (CSV quoting: titles may hold tabs or newlines) -> (frame `item` + text, line of each row)."""
    reader = csv.reader(decoded_lines(path), delimiter="\t")
    header = next(reader, None)
    if not header or "item_id" not in header or len(set(header)) != len(header):
        raise DataFormatError(path, 1, "a header row of distinct column names with an 'item_id' column",
                              "\t".join(header or [])[:80])
    col = header.index("item_id")
    rows, lines, first = [], [], {}
    for row in reader:
        n = reader.line_num
        if not row:
            continue
        if len(row) != len(header):
            raise DataFormatError(path, n, f"{len(header)} tab-separated fields", "\t".join(row)[:80])
        key = row[col].strip()
        if not is_id(key) or int(key) < 1:
            raise DataFormatError(path, n, "an item_id of ASCII digits >= 1", row[col][:80])
        if int(key) in first:
            raise DataFormatError(path, n, message=f"duplicate item_id {int(key)} (first on line {first[int(key)]})")
        first[int(key)] = n
        rows.append(row)
        lines.append(n)
    if not rows:
        raise DataFormatError(path, None, "at least one item row after the header")
    df = pd.DataFrame(rows, columns=header).rename(columns={"item_id": "item"})
    df["item"] = df["item"].str.strip().astype("int64")
    return df, np.asarray(lines, np.int64)


def renumber_users(inter: pd.DataFrame, path: Path) -> pd.DataFrame:
    """Users 1..n in id order when their ids have gaps (one info line), else unchanged."""
    n_distinct = inter["user"].nunique()
    if int(inter["user"].max()) == n_distinct:
        return inter
    dense, values = dense_ids(inter["user"].to_numpy())
    moved = int((values != np.arange(1, len(values) + 1)).sum())
    log.info("%s: user ids have gaps (%d users, largest id %d); renumbered %d of them to 1..%d in id order",
             path, n_distinct, int(values[-1]), moved, n_distinct)
    return inter.assign(user=dense)


def attach_items(inter: pd.DataFrame, txt: Path, items: pd.DataFrame, lines: np.ndarray,
                 items_path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Check items.tsv against the interactions; renumber item ids densely when they have gaps."""
    largest = int(inter["item"].max())
    beyond = (items["item"] > largest).to_numpy()
    if beyond.any():
        k = int(beyond.argmax())
        raise DataFormatError(items_path, int(lines[k]), message=(
            f"item_id {int(items['item'].iloc[k])} is beyond the largest item id {largest} of {txt.name} "
            f"(another dataset's items file?)"))
    missing = ~inter["item"].isin(items["item"]).to_numpy()
    if missing.any():
        k = int(missing.argmax())
        raise DataFormatError(txt, int(inter["line"].iloc[k]), message=(
            f"item {int(inter['item'].iloc[k])} has no row in {items_path.name} ({len(items)} items; "
            f"another dataset's items file?)"))
    items = items.sort_values("item", kind="stable").reset_index(drop=True)
    if len(items) != largest:  # ids unique and <= largest: a gap somewhere
        ids = items["item"].to_numpy()
        log.warning("%s: item ids have gaps (%d items, largest id %d); renumbered 1..%d in id order "
                    "(the file's ids are kept in column item_id)", items_path, len(items), largest, len(items))
        inter = inter.assign(item=np.searchsorted(ids, inter["item"].to_numpy()).astype(np.int64) + 1)
        items = items.assign(item=np.arange(1, len(items) + 1, dtype=np.int64))
        items.insert(1, "item_id", ids.astype(str))
    return inter, items


def find_items_tsv(txt: Path) -> Path:
    """items.tsv or items.tsv.gz beside the interactions file, or an error saying where we looked."""
    for p in (txt.parent / "items.tsv", txt.parent / "items.tsv.gz"):
        if p.is_file():
            return p
    raise DataFormatError(txt.parent / "items.tsv", None, message=(
        f"no such file (nor items.tsv.gz) beside {txt.name}; the paper format needs one "
        f"(tab-separated, columns item_id, title, ...)"))


def read_paper(path: Path, name: str | None = None) -> InteractionData:
    """Directory (or .txt file) in the SRA-CL release format, with items.tsv beside it."""
    txt = only_file(Path(path), ".txt", "NAME.txt file of 'user item' lines")
    inter = renumber_users(read_user_item_txt(txt), txt)
    items_path = find_items_tsv(txt)
    items, lines = read_items_tsv(items_path)
    require_text_column(items.columns, items_path)
    inter, items = attach_items(inter, txt, items, lines, items_path)
    check_item_text(items, items_path)
    inter = inter.drop(columns="line")
    return InteractionData(name or txt.stem, guess_domain(txt.stem, name), inter, items, str(txt))


# ---------------------------------------------------------------- RecBole atomic files


def _recbole_frame(path: Path) -> tuple[pd.DataFrame, np.ndarray]:
    """An atomic file -> (frame of str columns named without their types, line of each row)."""
    lines = decoded_lines(path)
    header = next(lines, "").rstrip("\r\n").split("\t")
    cols = []
    for h in header:
        if ":" not in h:
            raise DataFormatError(path, 1, "typed header fields like 'user_id:token'", h)
        cols.append(h.split(":", 1)[0])
    rows, numbers = [], []
    for n, line in enumerate(lines, 2):
        line = line.rstrip("\r\n")
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != len(cols):
            raise DataFormatError(path, n, f"{len(cols)} tab-separated fields ({', '.join(cols)})", line[:80])
        rows.append(parts)
        numbers.append(n)
    return pd.DataFrame(rows, columns=cols, dtype=object), np.asarray(numbers, np.int64)


def recbole_time(raw: pd.DataFrame, lines: np.ndarray, path: Path) -> pd.Series:
    """The timestamp column as numbers (finite, ASCII), or the file order with a warning."""
    if "timestamp" not in raw.columns:
        log.warning("%s: no 'timestamp' column; the file order is used as time (oldest first)", path)
        return pd.Series(np.arange(len(raw), dtype=np.int64))
    text = raw["timestamp"].astype(str).str.strip()
    time = pd.to_numeric(text.where(text.map(str.isascii), "x"), errors="coerce")
    bad = ~np.isfinite(time.to_numpy(dtype=np.float64))
    if bad.any():
        k = int(bad.argmax())
        raise DataFormatError(path, int(lines[k]), "a finite numeric timestamp", str(raw["timestamp"].iloc[k])[:80])
    return time


def recbole_users(raw: pd.DataFrame, path: Path) -> pd.Series:
    """User keys: numbers when every token is ASCII digits (so they sort as numbers), else tokens."""
    user = raw["user_id"]
    if user.map(is_id).all():
        user = user.astype("int64")
        n = user.nunique()
        if user.max() != n or user.min() != 1:
            log.info("%s: user ids are not 1..%d; renumbered to 1..%d in id order", path, n, n)
    else:
        log.info("%s: user tokens mapped to ids 1..%d in token order", path, user.nunique())
    return user


def read_recbole_items(item_path: Path, item_keys: np.ndarray) -> pd.DataFrame:
    """The .item file joined to the interaction ids (tokens of other items ignored; duplicates an error)."""
    meta, lines = _recbole_frame(item_path)
    if "item_id" not in meta.columns:
        raise DataFormatError(item_path, 1, "an 'item_id' column", ", ".join(meta.columns))
    dup = meta["item_id"].duplicated().to_numpy()
    if dup.any():
        k = int(dup.argmax())
        token = meta["item_id"].iloc[k]
        first = int(lines[int((meta["item_id"] == token).to_numpy().argmax())])
        raise DataFormatError(item_path, int(lines[k]), message=f"duplicate item_id {token!r} (first on line {first})")
    meta = meta.rename(columns={"item_id": "token"})
    if "title" not in meta.columns:
        alias = next((a for a in TITLE_ALIASES if a in meta.columns), None)
        meta = meta.rename(columns={alias: "title"}) if alias else meta
    require_text_column(meta.columns, item_path)
    items = pd.DataFrame({"item": np.arange(1, len(item_keys) + 1, dtype=np.int64), "token": item_keys})
    return items.merge(meta, on="token", how="left").fillna("")


def read_recbole(path: Path, name: str | None = None) -> InteractionData:
    """RecBole atomic files: order by timestamp, ids by first appearance after (user, time) sort."""
    inter_path = only_file(Path(path), ".inter", "NAME.inter atomic file")
    raw, lines = _recbole_frame(inter_path)
    for col in ("user_id", "item_id"):
        if col not in raw.columns:
            raise DataFormatError(inter_path, 1, f"a '{col}' column", ", ".join(raw.columns))
    if raw.empty:
        raise DataFormatError(inter_path, None, "at least one interaction line after the header")
    time = recbole_time(raw, lines, inter_path)
    user = recbole_users(raw, inter_path)
    inter, _, item_keys = remap_by_first_appearance(pd.DataFrame({"user": user, "item": raw["item_id"], "time": time}))
    item_path = inter_path.with_suffix(".item")
    if not item_path.is_file():
        raise DataFormatError(item_path, None, message=(
            f"no such file beside {inter_path.name}; RecBole data needs one (item_id plus a text column "
            f"such as title)"))
    items = read_recbole_items(item_path, item_keys.astype(str))
    check_item_text(items, item_path)
    return InteractionData(name or inter_path.stem, guess_domain(inter_path.stem, name), inter, items,
                           str(inter_path))


# ---------------------------------------------------------------- any format


def detect_format(path: Path) -> str:
    path = Path(path)
    names = [p.name for p in path.iterdir()] if path.is_dir() else [path.name]
    if any(n.endswith(".inter") for n in names):
        return "recbole"
    if any(n.endswith(".txt") for n in names):
        return "paper"
    if any(n.startswith("reviews_") for n in names):
        return "amazon_raw"
    if any("review" in n and (n.endswith(".json") or n.endswith(".json.gz")) for n in names):
        return "yelp_raw"
    found = f"{len(names)} files, none of them" if path.is_dir() and names else ("empty" if path.is_dir() else "")
    raise DataFormatError(path, None, "a dataset: *.txt + items.tsv (paper), *.inter (recbole), "
                                      "reviews_*.json.gz (amazon_raw) or review.json (yelp_raw)", found)


def read_any(path: Path, fmt: str = "auto", name: str | None = None) -> InteractionData:
    """Read one dataset directory in the given (or detected) format."""
    fmt = detect_format(path) if fmt == "auto" else fmt
    if fmt == "paper":
        return read_paper(path, name)
    if fmt == "recbole":
        return read_recbole(path, name)
    if fmt == "amazon_raw":
        from sracl_ray.data.raw_amazon import read_amazon_raw
        return read_amazon_raw(Path(path), name)
    if fmt == "yelp_raw":
        from sracl_ray.data.raw_yelp import read_yelp_raw
        return read_yelp_raw(Path(path), name)
    raise DataFormatError(path, None, "format one of auto, paper, recbole, amazon_raw, yelp_raw", fmt)


def check_domain(domain: str) -> None:
    """data.domain must name a known domain (or be "" = from the data)."""
    if domain and domain not in (*DOMAINS, GENERIC):
        from sracl_ray.configtools import ConfigError
        raise ConfigError(f"data.domain: unknown domain {domain!r}; valid: {', '.join((*DOMAINS, GENERIC))} "
                          f"(or '' = from the data's name)")


def dataset_path(cfg: DataConfig) -> Path:
    """Where data.path's files are on this machine: a local path as given, a storage URI's files
    mirrored into the cache, no path at all the packaged sample.  Every stage reads through this."""
    return local_data(cfg.path) if cfg.path else SAMPLE_DIR


def load_dataset(cfg: DataConfig) -> InteractionData:
    """The configured dataset, sliced and cleaned for leave-one-out."""
    check_domain(cfg.domain)
    path = dataset_path(cfg)
    if not path.exists():
        raise DataFormatError(path, None, message="no such file or directory (data.path)")
    if path.is_dir() and not any(path.iterdir()):
        raise DataFormatError(path, None, message="empty directory (data.path); expected a dataset in it")
    data = read_any(path, cfg.format, name=cfg.name or (None if cfg.path else SAMPLE_NAME))
    if cfg.domain:
        data = InteractionData(data.name, cfg.domain, data.interactions, data.items, data.source)
    data = drop_short_users(slice_users(data, cfg.max_users), MIN_LEN)
    if data.interactions.empty:
        among = f" among the first {cfg.max_users} users (data.max_users)" if cfg.max_users else ""
        raise DataFormatError(data.source or path, None, message=(
            f"no user has >= {MIN_LEN} interactions{among} (leave-one-out needs {MIN_LEN})"))
    return data
