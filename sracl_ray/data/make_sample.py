"""Rebuild the packaged Beauty sample from the full Beauty files.

    python -m sracl_ray.data.make_sample --src ../shared/data/beauty --users 1000
Keeps the first N users of Beauty.txt, re-numbers items 1..n by first appearance and writes
Beauty.txt + items.tsv.gz (same columns as the source items.tsv) into the package.
"""
from __future__ import annotations

import argparse
import csv
import gzip
from pathlib import Path

from sracl_ray.data.readers import SAMPLE_DIR, read_user_item_txt


def make_sample(src: Path, users: int, out: Path = SAMPLE_DIR) -> None:
    """Write the first `users` users of src/Beauty.txt and their items' rows to out."""
    inter = read_user_item_txt(src / "Beauty.txt")
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
    args = ap.parse_args()
    make_sample(args.src, args.users, args.out)


if __name__ == "__main__":
    main()
