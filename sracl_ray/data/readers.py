"""Readers for the on-disk dataset formats, all returning an InteractionData.

- "paper":   `NAME.txt` with `user item` lines (chronological within a user, the SRA-CL release's
             ids kept as they are) plus an `items.tsv` (or `.tsv.gz`) with an `item_id` column.
- "recbole": RecBole atomic files `NAME.inter` + `NAME.item` with typed headers.
- "amazon_raw", "yelp_raw": see raw_amazon.py / raw_yelp.py.
A malformed line raises DataFormatError naming the file, the line number and what was expected.
"""
from __future__ import annotations

import csv
import gzip
import io
from pathlib import Path

import numpy as np
import pandas as pd

from sracl_ray.config import DataConfig
from sracl_ray.data.dataset import InteractionData, drop_short_users, remap_by_first_appearance, slice_users
from sracl_ray.data.errors import DataFormatError

PACKAGE_DATA = Path(__file__).resolve().parent.parent / "package_data"
SAMPLE_DIR = PACKAGE_DATA / "beauty_sample"
DOMAINS = ("beauty", "sports", "office", "yelp", "movies")


def _open_text(path: Path) -> io.TextIOBase:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def guess_domain(name: str) -> str:
    low = name.lower()
    if "ml-" in low or "movie" in low:
        return "movies"
    return next((d for d in DOMAINS if d in low), "beauty")


def read_user_item_txt(path: Path) -> pd.DataFrame:
    """`user item` per line -> frame (user, item, order) with ids as in the file."""
    users, items = [], []
    with _open_text(path) as f:
        for n, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 2 or not (parts[0].isdigit() and parts[1].isdigit()):
                raise DataFormatError(path, n, "two positive integer ids 'user item'", line.strip()[:80])
            u, i = int(parts[0]), int(parts[1])
            if u < 1 or i < 1:
                raise DataFormatError(path, n, "ids >= 1 (0 is reserved for padding)", line.strip()[:80])
            users.append(u)
            items.append(i)
    if not users:
        raise DataFormatError(path, None, "at least one 'user item' line")
    df = pd.DataFrame({"user": np.asarray(users, np.int64), "item": np.asarray(items, np.int64)})
    df["order"] = df.groupby("user").cumcount().astype("int64")
    return df


def read_items_tsv(path: Path, n_items: int) -> pd.DataFrame:
    """items.tsv with an item_id column (CSV quoting: titles may hold tabs or newlines)."""
    with _open_text(path) as f:
        reader = csv.reader(f, delimiter="\t")
        header = next(reader, None)
        if not header or "item_id" not in header:
            raise DataFormatError(path, 1, "a header row with an 'item_id' column", "\t".join(header or []))
        rows = []
        for row in reader:
            if len(row) != len(header):
                raise DataFormatError(path, reader.line_num, f"{len(header)} tab-separated fields", "\t".join(row)[:80])
            if not row[header.index("item_id")].isdigit():
                raise DataFormatError(path, reader.line_num, "an integer item_id", row[header.index("item_id")])
            rows.append(row)
    df = pd.DataFrame(rows, columns=header).rename(columns={"item_id": "item"})
    df["item"] = df["item"].astype("int64")
    full = pd.DataFrame({"item": np.arange(1, n_items + 1, dtype=np.int64)})
    return full.merge(df, on="item", how="left").fillna("")


def read_paper(path: Path, name: str | None = None) -> InteractionData:
    """Directory (or .txt file) in the SRA-CL release format, with items.tsv beside it."""
    path = Path(path)
    txt = path if path.is_file() else next(iter(sorted(path.glob("*.txt"))), None)
    if txt is None:
        raise DataFormatError(path, None, "a NAME.txt file of 'user item' lines")
    inter = read_user_item_txt(txt)
    n_items = int(inter["item"].max())
    items_path = next((p for p in (txt.parent / "items.tsv", txt.parent / "items.tsv.gz") if p.exists()), None)
    if items_path is None:
        items = pd.DataFrame({"item": np.arange(1, n_items + 1, dtype=np.int64), "title": ""})
    else:
        items = read_items_tsv(items_path, n_items)
    name = name or txt.stem
    return InteractionData(name, guess_domain(name), inter, items)


def _recbole_frame(path: Path) -> pd.DataFrame:
    with _open_text(path) as f:
        header = f.readline().rstrip("\r\n").split("\t")
        cols = []
        for h in header:
            if ":" not in h:
                raise DataFormatError(path, 1, "typed header fields like 'user_id:token'", h)
            cols.append(h.split(":", 1)[0])
        rows = []
        for n, line in enumerate(f, 2):
            line = line.rstrip("\r\n")
            if not line:
                continue
            parts = line.split("\t")
            if len(parts) != len(cols):
                raise DataFormatError(path, n, f"{len(cols)} tab-separated fields ({', '.join(cols)})", line[:80])
            rows.append(parts)
    return pd.DataFrame(rows, columns=cols)


def read_recbole(path: Path, name: str | None = None) -> InteractionData:
    """RecBole atomic files: order by timestamp, ids by first appearance after (user, time) sort."""
    path = Path(path)
    inter_path = path if path.is_file() else next(iter(sorted(path.glob("*.inter"))), None)
    if inter_path is None:
        raise DataFormatError(path, None, "a NAME.inter atomic file")
    raw = _recbole_frame(inter_path)
    for col in ("user_id", "item_id"):
        if col not in raw.columns:
            raise DataFormatError(inter_path, 1, f"a '{col}' column")
    time = raw["timestamp"] if "timestamp" in raw.columns else pd.Series(np.arange(len(raw)))
    try:
        time = pd.to_numeric(time)
    except ValueError as e:
        bad = pd.to_numeric(time, errors="coerce").isna().to_numpy().nonzero()[0][0]
        raise DataFormatError(inter_path, int(bad) + 2, "a numeric timestamp", str(time.iloc[bad])) from e
    user = raw["user_id"]
    user = pd.to_numeric(user) if user.str.isdigit().all() else user
    inter, _, item_keys = remap_by_first_appearance(pd.DataFrame({"user": user, "item": raw["item_id"], "time": time}))
    items = pd.DataFrame({"item": np.arange(1, len(item_keys) + 1, dtype=np.int64), "token": item_keys})
    item_path = inter_path.with_suffix(".item")
    if item_path.exists():
        meta = _recbole_frame(item_path).rename(columns={"item_id": "token"})
        meta = meta.rename(columns={"movie_title": "title"}) if "title" not in meta.columns else meta
        items = items.merge(meta.drop_duplicates("token"), on="token", how="left").fillna("")
    if "title" not in items.columns:
        items["title"] = ""
    name = name or inter_path.stem
    return InteractionData(name, guess_domain(name), inter, items)


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
    raise DataFormatError(path, None, "a dataset: *.txt (paper), *.inter (recbole), reviews_*.json.gz or review.json")


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


def load_dataset(cfg: DataConfig) -> InteractionData:
    """The configured dataset, sliced and cleaned for leave-one-out."""
    path = Path(cfg.path) if cfg.path else SAMPLE_DIR
    if not path.exists():
        raise FileNotFoundError(f"data.path: {path} does not exist")
    data = read_any(path, cfg.format, name=cfg.name if cfg.path else "beauty_sample")
    if cfg.domain:
        data = InteractionData(data.name, cfg.domain, data.interactions, data.items)
    return drop_short_users(slice_users(data, cfg.max_users))
