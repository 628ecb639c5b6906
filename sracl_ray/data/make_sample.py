"""Rebuild the packaged Beauty sample from the full Beauty files.

    python -m sracl_ray.data.make_sample --src ../shared/data/beauty --users 1000
    python -m sracl_ray.data.make_sample --src ../shared/data/beauty --top-items 1000 --min-len 5 \
        --users 1500 --out sracl_ray/package_data/beauty_dense
Keeps the first N users of Beauty.txt, re-numbers items 1..n by first appearance and writes
Beauty.txt + items.tsv.gz (same columns as the source items.tsv) into the package.  With
--top-items it first keeps only the most frequent items (ties: lower id) and then only users with
at least --min-len of those, re-numbered 1..N in order, so the slice is dense enough to learn on.
"""
from __future__ import annotations

import argparse
import csv
import gzip
from pathlib import Path

from sracl_ray.data.readers import SAMPLE_DIR, read_user_item_txt


def make_sample(src: Path, users: int, out: Path = SAMPLE_DIR, top_items: int = 0, min_len: int = 5) -> None:
    """Write the first `users` users of src/Beauty.txt (after the --top-items filter) and their items' rows to out."""
    inter = read_user_item_txt(src / "Beauty.txt")
    if top_items:
        counts = inter["item"].value_counts()
        counts = counts.sort_index(kind="stable").sort_values(ascending=False, kind="stable")
        inter = inter[inter["item"].isin(set(counts.index[:top_items]))]
        lengths = inter.groupby("user", sort=True).size()
        keep = lengths[lengths >= min_len].index[:users]
        renumber = {int(u): n + 1 for n, u in enumerate(keep)}
        inter = inter[inter["user"].isin(renumber)].assign(user=lambda d: d["user"].map(renumber))
    else:
        inter = inter[inter["user"] <= users]
    new_id: dict[int, int] = {}
    for item in inter["item"]:
        new_id.setdefault(int(item), len(new_id) + 1)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "Beauty.txt", "w") as f:
        f.writelines(f"{u} {new_id[int(i)]}\n" for u, i in zip(inter["user"], inter["item"]))
    with open(src / "items.tsv", newline="", encoding="utf-8") as f:
        reader = csv.reader(f, delimiter="\t")
        header = next(reader)
        rows = {int(r[0]): r for r in reader}
    with gzip.open(out / "items.tsv.gz", "wt", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, delimiter="\t")
        writer.writerow(header)
        for old, new in new_id.items():
            writer.writerow([str(new)] + rows[old][1:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--src", type=Path, required=True)
    ap.add_argument("--users", type=int, default=1000)
    ap.add_argument("--out", type=Path, default=SAMPLE_DIR)
    ap.add_argument("--top-items", type=int, default=0, help="keep only the N most frequent items first")
    ap.add_argument("--min-len", type=int, default=5, help="with --top-items: users with at least this many")
    args = ap.parse_args()
    make_sample(args.src, args.users, args.out, args.top_items, args.min_len)


if __name__ == "__main__":
    main()
