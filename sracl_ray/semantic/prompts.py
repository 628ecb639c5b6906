"""LLM prompts for user units and items (paper Sec. 4.2.1, 4.3.1, Fig. 3), as pure functions.

Everything here is built from TRAINING data only (`Split.train_seqs` and the item table): a user
unit's prompt lists the titles of the unit's own history (a training prefix or a user's training
sequence), and an item's prompt quotes training sequences that end with the item.  Validation and
test targets therefore never reach a prompt.

A prompt record is a plain dict: kind ("unit" | "item"), id (unit index | item id), system, prompt
(the user message) and raw (the attribute/title text itself, what the `raw` backend embeds).
"""
from __future__ import annotations

import html
from dataclasses import dataclass

import numpy as np
import pandas as pd

from sracl_ray.data.split import Split
from sracl_ray.errors import UserError
from sracl_ray.semantic.settings import PromptConfig
from sracl_ray.semantic.units import unit_histories


@dataclass(frozen=True)
class Domain:
    noun: str  # what the items are, plural
    past: str  # what users did with them: "purchased"
    present: str  # "buy"
    attributes_only: bool = False  # Yelp: item prompts carry attributes only (paper)
    expert: str = ""  # "You are an expert in ..."; "" = the noun


DOMAINS: dict[str, Domain] = {
    "beauty": Domain("beauty products", "purchased", "buy"),
    "sports": Domain("sports and outdoors products", "purchased", "buy"),
    "office": Domain("office products", "purchased", "buy"),
    "yelp": Domain("local businesses", "visited", "visit", attributes_only=True),
    "movies": Domain("movies", "watched", "watch"),
}
# Data whose name names none of the domains above (data.domain "" or "generic"): neutral wording,
# never another dataset's domain.
GENERIC = "generic"
NEUTRAL = Domain("items", "interacted with", "choose", expert="recommendation and user preferences")

# Known item columns in prompt order, with their labels; other text columns follow, title-cased.
LABELS = {"title": "Title", "brand": "Brand", "categories": "Categories", "sales_rank": "Sales rank",
          "price": "Price", "description": "Description"}
HIDDEN = {"item", "asin", "token", "business_id", "item_id", "sales_type"}


def domain_of(name: str) -> Domain:
    """The Domain for a name ("" or "generic": the neutral one), or an error listing the valid ones."""
    if name in ("", GENERIC):
        return NEUTRAL
    if name not in DOMAINS:
        raise UserError(f"data.domain: unknown domain {name!r}; valid: {', '.join([*DOMAINS, GENERIC])}")
    return DOMAINS[name]


def expert_in(domain: Domain) -> str:
    return domain.expert or domain.noun


def clean(value: object) -> str:
    """Cell -> text: HTML entities decoded, whitespace collapsed, NaN/None -> ''."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    return " ".join(html.unescape(str(value)).split())


def short(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 3].rstrip() + "..."


def format_categories(text: str) -> str:
    """"'Beauty', 'Hair Care'" -> "Beauty, Hair Care" (other formats unchanged)."""
    if text.startswith("'") and text.endswith("'"):
        return ", ".join(p.strip().strip("'") for p in text.split("', '"))
    return text


def format_value(col: str, value: str, row: dict) -> str:
    if col == "categories":
        return format_categories(value)
    if col == "sales_rank":
        rank = value[:-2] if value.endswith(".0") else value
        where = clean(row.get("sales_type", ""))
        return f"{rank} in {where}" if where else rank
    if col == "price":
        return value if value.startswith("$") else f"${value}"
    return value


def item_attributes(row: dict, cfg: PromptConfig = PromptConfig()) -> str:
    """One 'Label: value' line per non-empty attribute of an item row."""
    cols = [c for c in LABELS if c in row] + sorted(c for c in row if c not in LABELS and c not in HIDDEN)
    lines = []
    for col in cols:
        value = clean(row[col])
        if not value:
            continue
        if col == "description":
            value = short(value, cfg.desc_chars)
        label = LABELS.get(col, col.replace("_", " ").replace(".", " ").capitalize())
        lines.append(f"{label}: {format_value(col, value, row)}")
    return "\n".join(lines)


def item_titles(items: pd.DataFrame) -> np.ndarray:
    """[n_items + 1] cleaned titles indexed by item id ('' at 0; 'item N' when a title is empty)."""
    df = items.sort_values("item")
    titles = np.empty(int(df["item"].max()) + 1 if len(df) else 1, dtype=object)
    titles[:] = ""
    col = df["title"] if "title" in df.columns else pd.Series([""] * len(df))
    for i, t in zip(df["item"].to_numpy(), col.to_numpy()):
        titles[i] = clean(t) or f"item {i}"
    return titles


# ---------------------------------------------------------------- user units


def user_system_prompt(domain: Domain) -> str:
    return (f"You are an expert in {expert_in(domain)}. Given the {domain.noun} a user has {domain.past}, "
            f"oldest first, summarise this user's specific preferences in at most 100 words. "
            f"Reply with the summary only.")


def user_prompt(titles: list[str], domain: Domain, cfg: PromptConfig = PromptConfig()) -> str:
    """The user message: the unit's item titles in chronological order, one per line."""
    lines = [f"{n}. {short(t, cfg.title_chars)}" for n, t in enumerate(titles, 1)]
    return f"The user has {domain.past} these {domain.noun}, oldest first:\n" + "\n".join(lines)


def unit_records(split: Split, units: pd.DataFrame, titles: np.ndarray, domain: Domain,
                 cfg: PromptConfig = PromptConfig()) -> list[dict]:
    """One prompt per unit, in unit order (a user's nested prefixes are adjacent)."""
    system = user_system_prompt(domain)
    hists = unit_histories(split, units)  # [U, L] the same items as the unit key
    out = []
    for unit, hist in zip(units["unit"].to_numpy(), hists):
        names = [titles[i] for i in hist if i != 0]
        out.append({"kind": "unit", "id": int(unit), "system": system,
                    "prompt": user_prompt(names, domain, cfg),
                    "raw": "; ".join(short(t, cfg.title_chars) for t in names)})
    return out


# ---------------------------------------------------------------- items


def item_sequences(split: Split, n: int, max_items: int) -> dict[int, list[np.ndarray]]:
    """item -> up to n training sequences of <= max_items items that end with the item.

    Only `split.train_seqs` is read.  Candidates are, per user, the first occurrence of the item
    at position >= 1 (a one-item sequence says nothing); n of them are picked evenly spread over
    the candidates ordered by user id, so the choice is deterministic and not biased to low ids.
    """
    found: dict[int, list[tuple[int, int]]] = {}
    for u in range(1, len(split.train_seqs)):
        seq = split.train_seqs[u]
        seen: set[int] = set()
        for t in range(1, len(seq)):
            item = int(seq[t])
            if item not in seen:
                seen.add(item)
                found.setdefault(item, []).append((u, t))
    out = {}
    for item, occ in found.items():
        picks = occ if len(occ) <= n else [occ[j] for j in np.linspace(0, len(occ) - 1, n).round().astype(int)]
        out[item] = [split.train_seqs[u][max(0, t + 1 - max_items): t + 1] for u, t in picks]
    return out


def item_system_prompt(domain: Domain) -> str:
    if domain.attributes_only:
        return (f"You are an expert in {expert_in(domain)}. Given one of them by its attributes, write a brief "
                f"description of it and of the kind of users who {domain.present} it, in at most 100 words. "
                f"Reply with the description only.")
    return (f"You are an expert in {expert_in(domain)}. Given an item's attributes and some sequences of "
            f"{domain.noun} that users {domain.past} up to and including this item, write a brief "
            f"description of the item and of the kind of users who {domain.present} it, in at most "
            f"100 words. Reply with the description only.")


def item_prompt(attributes: str, sequences: list[list[str]], domain: Domain,
                cfg: PromptConfig = PromptConfig()) -> str:
    """The user message: attributes, then (not for Yelp) training sequences ending with the item."""
    text = "Item attributes:\n" + (attributes or "(none)")
    if domain.attributes_only or not sequences:
        return text
    lines = [f"{n}. " + " -> ".join(short(t, cfg.title_chars) for t in seq) for n, seq in enumerate(sequences, 1)]
    return (text + f"\n\nSequences of users who {domain.past} this item (oldest first; each ends with "
            f"this item):\n" + "\n".join(lines))


def item_records(split: Split, items: pd.DataFrame, titles: np.ndarray, domain: Domain,
                 cfg: PromptConfig = PromptConfig()) -> list[dict]:
    """One prompt per item id 1..n_items."""
    seqs = {} if domain.attributes_only else item_sequences(split, cfg.n_item_seqs, cfg.max_seq_items)
    system = item_system_prompt(domain)
    by_id = {int(r["item"]): r for r in items.to_dict("records")}
    out = []
    for item in range(1, split.n_items + 1):
        attrs = item_attributes(by_id.get(item, {"title": titles[item]}), cfg)
        names = [[titles[i] for i in s] for s in seqs.get(item, [])]
        out.append({"kind": "item", "id": item, "system": system,
                    "prompt": item_prompt(attrs, names, domain, cfg), "raw": attrs or titles[item]})
    return out


def build_records(split: Split, items: pd.DataFrame, units: pd.DataFrame, domain_name: str,
                  cfg: PromptConfig = PromptConfig()) -> pd.DataFrame:
    """Every prompt of a dataset: units first (in unit order), then items (in id order)."""
    domain = domain_of(domain_name)
    titles = item_titles(items)
    rows = unit_records(split, units, titles, domain, cfg) + item_records(split, items, titles, domain, cfg)
    return pd.DataFrame(rows, columns=["kind", "id", "system", "prompt", "raw"])
