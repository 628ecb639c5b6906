"""Prompts: golden files, determinism, and no validation/test item anywhere in them (leakage)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sracl_ray.config import DataConfig
from sracl_ray.data.dataset import InteractionData, from_sequences
from sracl_ray.data.readers import load_dataset
from sracl_ray.data.split import leave_one_out
from sracl_ray.semantic.prompts import (DOMAINS, PromptConfig, build_records, item_attributes, item_sequences)
from sracl_ray.semantic.units import build_units, unit_histories

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"  # UPDATE_GOLDEN=1 pytest ... rewrites the files


@pytest.fixture(scope="module")
def sample():
    data = load_dataset(DataConfig(max_users=60))
    return data, leave_one_out(data, 20)


def render(rec) -> str:
    return f"SYSTEM:\n{rec['system']}\n\nUSER:\n{rec['prompt']}\n\nRAW:\n{rec['raw']}\n"


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / f"{name}.txt"
    if UPDATE:
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"missing golden file {path}; create it with UPDATE_GOLDEN=1"
    assert text == path.read_text(), f"{path} differs (if intended, regenerate with UPDATE_GOLDEN=1)"


def test_golden_prompts(sample):
    data, split = sample
    recs = build_records(split, data.items, build_units(split, "prefix"), "beauty")
    units, items = recs[recs.kind == "unit"], recs[recs.kind == "item"]
    longest = units.loc[units.prompt.str.count("\n").idxmax()]
    busiest = items.loc[items.prompt.str.count(" -> ").idxmax()]
    check_golden("beauty_prefix_unit_0", render(units.iloc[0]))
    check_golden("beauty_prefix_unit_longest", render(longest))
    check_golden("beauty_item_with_sequences", render(busiest))
    user = build_records(split, data.items, build_units(split, "user"), "beauty").iloc[0]
    check_golden("beauty_user_unit_0", render(user))
    yelp = build_records(split, data.items, build_units(split, "user"), "yelp")
    yelp_items = yelp[yelp.kind == "item"]
    check_golden("yelp_item_attributes_only", render(yelp_items.loc[yelp_items.prompt.str.len().idxmax()]))
    movies = build_records(split, data.items, build_units(split, "user"), "movies").iloc[1]
    check_golden("movies_user_unit_1", render(movies))


def test_prompts_deterministic_and_complete(sample):
    data, split = sample
    units = build_units(split, "prefix")
    a = build_records(split, data.items, units, "beauty")
    b = build_records(split, data.items.sample(frac=1, random_state=1), units, "beauty")  # row order of items
    pd.testing.assert_frame_equal(a, b)
    assert (a.kind == "unit").sum() == len(units) and (a.kind == "item").sum() == data.n_items
    assert a[a.kind == "item"].id.tolist() == list(range(1, data.n_items + 1))


def test_item_attributes_and_limits():
    row = {"item": 3, "asin": "B0", "title": "Rose &amp; Oud oil", "brand": "Acme", "categories": "'Beauty', 'Men's Care'",
           "price": "9.5", "sales_type": "Beauty", "sales_rank": "1234.0", "description": "x" * 900, "city": ""}
    text = item_attributes(row, PromptConfig(desc_chars=50))
    assert text.splitlines() == ["Title: Rose & Oud oil", "Brand: Acme", "Categories: Beauty, Men's Care",
                                 "Sales rank: 1234 in Beauty", "Price: $9.5", "Description: " + "x" * 47 + "..."]
    assert "B0" not in text and "City" not in text
    seqs = [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 3], [3, 4], [5, 3, 3], [3]]
    split = leave_one_out(from_sequences("t", "beauty", [s + [90, 91] for s in seqs]), 20)
    got = item_sequences(split, n=2, max_items=10)
    # user 1: first occurrence at position >= 1 (pos 2), user 3: pos 1; user 4's lone item is no sequence
    assert [s.tolist() for s in got[3]] == [[1, 2, 3], [5, 3]]
    assert [len(s) for s in item_sequences(split, 5, 10)[12]] == [10]  # capped at 10 items, ending with it
    assert item_sequences(split, 5, 10)[12][0][-1] == 12


# ---------------------------------------------------------------- leakage


def leaky_dataset(n_users: int = 40, seed: int = 0) -> InteractionData:
    """Shared training items 1..30; each user's validation and test targets are items of their own
    (titles VALID-u / TEST-u) that occur nowhere else, so any leak is visible as text."""
    rng = np.random.default_rng(seed)
    seqs, titles = [], {i: f"Shared item {i}" for i in range(1, 31)}
    nxt = 31
    for u in range(1, n_users + 1):
        train = list(rng.integers(1, 31, rng.integers(2, 14)))
        seqs.append(train + [nxt, nxt + 1])
        titles[nxt], titles[nxt + 1] = f"VALID-{u}", f"TEST-{u}"
        nxt += 2
    items = pd.DataFrame({"item": np.arange(1, nxt, dtype=np.int64), "title": [titles[i] for i in range(1, nxt)],
                          "brand": "Acme", "categories": "'Beauty'"})
    return from_sequences("leaky", "beauty", seqs, items)


@pytest.mark.parametrize("granularity", ["prefix", "user"])
def test_no_validation_or_test_item_in_prompts(granularity):
    data = leaky_dataset()
    split = leave_one_out(data, 20)
    held_out = set(split.valid_target) | set(split.test_target)
    units = build_units(split, granularity)
    recs = build_records(split, data.items, units, "beauty", PromptConfig(n_item_seqs=10))
    unit_text = pd.concat([recs[recs.kind == "unit"].prompt, recs[recs.kind == "unit"].raw])
    assert not unit_text.str.contains("VALID-|TEST-").any()
    items = recs[recs.kind == "item"].set_index("id")
    for item, prompt in items.prompt.items():
        seq_part = prompt.split("\n\nSequences", 1)[1] if "\n\nSequences" in prompt else ""
        assert "VALID-" not in seq_part and "TEST-" not in seq_part
        if item in held_out:  # a held-out item was never seen in training: attributes only
            assert seq_part == ""
        else:  # and a training item's prompt names no held-out item at all
            assert "VALID-" not in prompt and "TEST-" not in prompt
    # unit histories (and so keys and neighbour pools) hold training items only
    hist = unit_histories(split, units)
    assert not np.isin(hist, list(held_out)).any()
    assert not any(int(i) in held_out for k in units.key for i in k.split(":")[1:])


def test_sequences_come_from_training_prefixes_only(sample):
    """Every quoted sequence is a contiguous run of one user's training sequence."""
    data, split = sample
    train = {u: split.train_seqs[u].tolist() for u in range(1, split.n_users + 1)}
    for item, seqs in item_sequences(split, 10, 10).items():
        for s in seqs:
            s = s.tolist()
            assert s[-1] == item and 2 <= len(s) <= 10
            assert any(any(t[i:i + len(s)] == s for i in range(len(t) - len(s) + 1)) for t in train.values())


def test_domains_cover_the_paper():
    assert set(DOMAINS) == {"beauty", "sports", "office", "yelp", "movies"}
    with pytest.raises(ValueError, match="unknown domain 'books'"):
        build_records(*leaky_split(), "books")


def leaky_split():
    data = leaky_dataset(5)
    split = leave_one_out(data, 20)
    return split, data.items, build_units(split, "user")
