"""Reader for the Yelp Open Dataset (`review.json` + `business.json`), rebuilding the paper's ids.

Reviews are JSON lines with user_id, business_id and date ("YYYY-MM-DD HH:MM:SS"); only those
dated in 2019 are kept, as in the SRA-CL release (generate_datasets&prompts/Yelp.ipynb), then
5-core until stable, exact (user, item, time) duplicates dropped, a stable sort by (user_id,
date) and ids by first appearance.  Items are businesses: name (as `title`), categories, city,
state, stars and attributes flattened to "key: value; ...".  The `yelp_academic_dataset_*.json`
names of the official download and gzipped files are accepted too.
"""
from __future__ import annotations

import json
import logging
import re
from pathlib import Path

from sracl_ray.data.dataset import InteractionData, check_item_text
from sracl_ray.data.errors import DataFormatError
from sracl_ray.data.raw_amazon import build_ids, items_frame, read_rows, read_wanted, require_keys, text

log = logging.getLogger(__name__)

YEAR = "2019"
DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$", re.ASCII)  # '٢' is a \d otherwise
REVIEW_KEYS = {"user_id": str, "business_id": str, "date": str}
TEXT_COLUMNS = ["title", "categories", "city", "state", "stars", "attributes"]
PREFIXES = ("", "yelp_academic_dataset_")


def parse_json(path: Path, n: int, line: str) -> dict:
    """One line as a JSON object, or DataFormatError."""
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as e:
        raise DataFormatError(path, n, "a JSON object", line[:80]) from e
    if not isinstance(obj, dict):
        raise DataFormatError(path, n, "a JSON object", line[:80])
    return obj


def parse_review(path: Path, n: int, line: str) -> tuple[str, str, str] | None:
    """One review line -> (user_id, business_id, date), or None when not dated in 2019."""
    rec = parse_json(path, n, line)
    require_keys(path, n, rec, REVIEW_KEYS)
    if not DATE_RE.match(rec["date"]):
        raise DataFormatError(path, n, "'date' as 'YYYY-MM-DD HH:MM:SS'", rec["date"][:80])
    if not rec["date"].startswith(YEAR + "-"):
        return None
    return rec["user_id"], rec["business_id"], rec["date"]


def flatten_attributes(attrs: dict, prefix: str = "") -> list[str]:
    """{'WiFi': "u'free'", 'Parking': {'lot': True}} -> ["WiFi: u'free'", 'Parking.lot: True']."""
    out = []
    for key, val in attrs.items():
        if isinstance(val, dict):
            out += flatten_attributes(val, f"{prefix}{key}.")
        else:
            out.append(f"{prefix}{key}: {val}")
    return out


def business_text(path: Path, n: int, rec: dict) -> dict[str, str]:
    """The text columns of one business record."""
    attrs = rec.get("attributes") or {}
    if not isinstance(attrs, dict):
        raise DataFormatError(path, n, "'attributes' as an object or null", repr(attrs)[:80])
    return {"title": text(rec.get("name")), "categories": text(rec.get("categories")),
            "city": text(rec.get("city")), "state": text(rec.get("state")), "stars": text(rec.get("stars")),
            "attributes": "; ".join(flatten_attributes(attrs))}


def read_business(path: Path, wanted: set[str]) -> dict[str, dict[str, str]]:
    """business_id -> text columns for the wanted businesses."""
    return read_wanted(path, wanted, "business_id", parse_json, business_text)


def find_file(folder: Path, kind: str) -> Path | None:
    """review.json / business.json (or yelp_academic_dataset_*.json, optionally .gz) in folder."""
    names = [f"{p}{kind}.json{gz}" for p in PREFIXES for gz in ("", ".gz")]
    return next((folder / nm for nm in names if (folder / nm).exists()), None)


def locate(path: Path) -> tuple[Path, Path]:
    """The review file (given, or found in the directory) and the business file beside it."""
    review = path if path.is_file() else find_file(path, "review")
    if review is None:
        raise DataFormatError(path, None, "a review.json[.gz] (or yelp_academic_dataset_review.json)")
    business = find_file(review.parent, "business")
    if business is None:
        raise DataFormatError(review.parent / "business.json", None, message=(
            f"no such file (nor business.json.gz, yelp_academic_dataset_business.json[.gz]) beside "
            f"{review.name}; the item text comes from it"))
    return review, business


def read_yelp_raw(path: Path, name: str | None = None) -> InteractionData:
    """Yelp Open Dataset reviews (2019 only) + businesses -> InteractionData with the paper's ids."""
    review, business = locate(Path(path))
    inter, item_keys = build_ids(read_rows(review, parse_review, f"at least one review dated {YEAR}"), review)
    items = items_frame(item_keys, read_business(business, set(item_keys.tolist())), "business_id", TEXT_COLUMNS)
    check_item_text(items, business)
    return InteractionData(name or "Yelp", "yelp", inter, items, str(review))
