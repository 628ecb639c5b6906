"""The one in-memory dataset every stage starts from: interactions plus item text.

Ids are int64, dense, starting at 1 (0 is the padding id).  `interactions` holds one row per
interaction with columns (user, item, order); `order` is the chronological rank within the user.
`items` holds one row per item id 1..n_items: column `item` plus text attribute columns (at
least one of title, brand, categories, description; others such as price, sales_rank as present).
Every function here allocates in proportion to the number of ids present, never to an id's value.
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from sracl_ray.data.errors import DataFormatError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InteractionData:
    name: str
    domain: str
    interactions: pd.DataFrame  # user, item, order (int64)
    items: pd.DataFrame  # item (int64) + text columns
    source: str = ""  # the file the interactions came from (for messages)

    @property
    def n_users(self) -> int:
        return int(self.interactions["user"].max())

    @property
    def n_items(self) -> int:
        return int(self.items["item"].max()) if len(self.items) else int(self.interactions["item"].max())

    @cached_property
    def sequences(self) -> list[np.ndarray]:
        """sequences[u] = user u's items in chronological order; sequences[0] is empty."""
        df = self.interactions.sort_values(["user", "order"], kind="stable")
        users = df["user"].to_numpy()
        items = df["item"].to_numpy(dtype=np.int64)
        bounds = np.searchsorted(users, np.arange(1, self.n_users + 2))
        return [np.zeros(0, np.int64)] + [items[bounds[u - 1]:bounds[u]] for u in range(1, self.n_users + 1)]

    @cached_property
    def fingerprint(self) -> str:
        """sha256 over ids and item text: changes whenever the data changes."""
        h = hashlib.sha256()
        df = self.interactions.sort_values(["user", "order"], kind="stable")
        h.update(df[["user", "item"]].to_numpy(dtype=np.int64).tobytes())
        h.update(pd.util.hash_pandas_object(self.items, index=False).to_numpy().tobytes())
        return h.hexdigest()[:16]


def from_sequences(name: str, domain: str, seqs: list[list[int]] | list[np.ndarray],
                   items: pd.DataFrame | None = None) -> InteractionData:
    """Build an InteractionData from per-user item lists (user ids = position + 1)."""
    rows = [(u + 1, int(i), t) for u, s in enumerate(seqs) for t, i in enumerate(s)]
    inter = pd.DataFrame(rows, columns=["user", "item", "order"]).astype("int64")
    if items is None:
        n = int(inter["item"].max())
        items = pd.DataFrame({"item": np.arange(1, n + 1, dtype=np.int64),
                              "title": [f"item {i}" for i in range(1, n + 1)]})
    return InteractionData(name, domain, inter, items)


TEXT_COLUMNS = ("title", "brand", "categories")  # what the interim artifact embeds
# Any one of these makes an item file usable (the semantic stage has text to work with).
ITEM_TEXT_COLUMNS = ("title", "brand", "categories", "description")
DOMAINS = ("beauty", "sports", "office", "yelp", "movies")
GENERIC = "generic"  # no known domain: prompts use domain-neutral wording


def guess_domain(*names: str | None) -> str:
    """The first known domain mentioned by one of the names, else "generic" (never a default domain)."""
    for name in names:
        low = (name or "").lower()
        if "ml-" in low or "movie" in low:
            return "movies"
        found = next((d for d in DOMAINS if d in low), None)
        if found:
            return found
    return GENERIC


def require_text_column(columns, path: Path) -> None:
    """An item file must have at least one text column (the semantic stage embeds item text)."""
    if not any(c in columns for c in ITEM_TEXT_COLUMNS):
        cols = ", ".join(c for c in columns if c not in ("item", "token"))
        raise DataFormatError(path, 1, f"a text column ({', '.join(ITEM_TEXT_COLUMNS)})", cols or "no columns")


def check_item_text(items: pd.DataFrame, path: Path) -> None:
    """Error when no item has any text; a warning counting the items without title, brand or categories."""
    require_text_column(items.columns, path)
    if len(textless_items(items, ITEM_TEXT_COLUMNS)) == len(items):
        cols = ", ".join(ITEM_TEXT_COLUMNS)
        raise DataFormatError(path, None, message=f"none of the {len(items)} items has any text ({cols} all empty); "
                                                  f"another dataset's file?")
    empty = textless_items(items)
    if len(empty):
        shown = ", ".join(map(str, empty[:5])) + (", ..." if len(empty) > 5 else "")
        log.warning("%s: %d of %d items have no text (title, brand and categories empty; ids %s)",
                    path, len(empty), len(items), shown)


def textless_items(items: pd.DataFrame, columns=TEXT_COLUMNS) -> np.ndarray:
    """Sorted int64 ids of the items whose text columns are all empty or whitespace (absent = empty)."""
    has_text = np.zeros(len(items), dtype=bool)
    for col in (c for c in columns if c in items.columns):
        values = items[col]
        has_text |= (values.notna() & values.astype(str).str.strip().ne("")).to_numpy()
    return np.sort(items["item"].to_numpy(dtype=np.int64)[~has_text])


def dense_ids(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(ids renumbered 1..n in the order of their values, the n distinct values in that order)."""
    values, inverse = np.unique(np.asarray(ids, dtype=np.int64), return_inverse=True)
    return inverse.reshape(-1).astype(np.int64) + 1, values


def remap_by_first_appearance(inter: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Sort by (user key, time) and assign dense ids in order of first appearance.

    `inter` has columns user, item, time (any sortable keys).  Returns the remapped frame with
    (user, item, order) plus the original user and item keys in id order (index 0 = id 1).
    """
    df = inter.sort_values(["user", "time"], kind="stable").reset_index(drop=True)
    first_u = pd.unique(df["user"])
    u_map = {k: i + 1 for i, k in enumerate(first_u)}
    first_i = pd.unique(df["item"])
    i_map = {k: i + 1 for i, k in enumerate(first_i)}
    out = pd.DataFrame({"user": df["user"].map(u_map).astype("int64"),
                        "item": df["item"].map(i_map).astype("int64")})
    out["order"] = out.groupby("user").cumcount().astype("int64")
    return out, np.asarray(first_u), np.asarray(first_i)


def k_core(inter: pd.DataFrame, k: int = 5) -> pd.DataFrame:
    """Repeat the k-core filter on users and items until stable."""
    df = inter
    while True:
        u = df["user"].map(df["user"].value_counts())
        i = df["item"].map(df["item"].value_counts())
        keep = (u >= k) & (i >= k)
        if keep.all():
            return df
        df = df[keep]


def slice_users(data: InteractionData, max_users: int | None) -> InteractionData:
    """Keep the first `max_users` users; item ids are re-densified by first appearance."""
    if max_users is None or max_users >= data.n_users:
        return data
    inter = data.interactions[data.interactions["user"] <= max_users]
    inter = inter.sort_values(["user", "order"], kind="stable")
    old_items = pd.unique(inter["item"])
    mapping = pd.Series(np.arange(1, len(old_items) + 1, dtype=np.int64), index=old_items)
    inter = inter.assign(item=inter["item"].map(mapping).astype("int64")).reset_index(drop=True)
    items = data.items.set_index("item").loc[old_items].reset_index(drop=True)
    items.insert(0, "item", np.arange(1, len(old_items) + 1, dtype=np.int64))
    return InteractionData(f"{data.name}[:{max_users}u]", data.domain, inter, items, data.source)


def drop_short_users(data: InteractionData, min_len: int = 3) -> InteractionData:
    """Leave-one-out needs >= 3 interactions; drop shorter users (logged) and re-densify ids."""
    counts = data.interactions.groupby("user").size()
    short = counts[counts < min_len]
    if short.empty:
        return data
    log.warning("%s: dropping %d users with < %d interactions", data.name, len(short), min_len)
    inter = data.interactions[~data.interactions["user"].isin(short.index)]
    users = pd.unique(inter.sort_values(["user", "order"])["user"])
    umap = pd.Series(np.arange(1, len(users) + 1, dtype=np.int64), index=users)
    inter = inter.assign(user=inter["user"].map(umap).astype("int64")).reset_index(drop=True)
    return InteractionData(data.name, data.domain, inter, data.items, data.source)
