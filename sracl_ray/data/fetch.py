"""`sracl-ray data fetch NAME --to DIR`: download one of the paper's datasets, write it in the paper format.

    sracl-ray data fetch beauty --to ~/sracl-data/beauty   # -> Beauty.txt, items.tsv, PROVENANCE.json

Interactions are the SRA-CL release's file as-is (GitHub ziqiangcui/SRA-CL at a pinned commit; size
and sha256 checked).  The release has no item text, so items.tsv is rebuilt from the raw Amazon 2014
dumps (McAuley et al., served by SNAP) with the raw reader (raw_amazon.py), which numbers
`reviews_X_5` the way the release did.  Those ids are checked against the release file before
items.tsv is written, so a title can never land on another item's id.  Yelp: the release has the
interactions only, and the Yelp Open Dataset (business text) is not downloadable without accepting
Yelp's terms; fetch writes Yelp.txt and says so (use data.format=yelp_raw on the official dump).

Downloads go to a cache (`--cache`, default ~/.cache/sracl-ray/downloads/NAME), each checked and
bounded in time and size (data/download.py; `--timeout`, `--deadline`, `--max-size`); a file already
there is not downloaded again.  A cached file that fails a check (a pin, or the rebuilt ids) is
removed from the cache, and the error says so.  The dataset is atomic: it is built in a hidden
directory beside DIR and renamed onto DIR only when every file is written, so DIR never holds half a
dataset.  `--base-url URL` (or SRACL_DATA_BASE_URL) fetches every file from a mirror laid out as
URL/HOST/PATH (what `wget -x` writes).
"""
from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import re
import shutil
import stat
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit

from sracl_ray.argtypes import number
from sracl_ray.data.download import (MAX_SIZE, TIMEOUT_S, Limits, Source, check_url, download, file_digest,
                                     format_bytes)
from sracl_ray.data.errors import DataFormatError
from sracl_ray.errors import UserError
from sracl_ray.manifest import atomic_write, code_version, current_umask

log = logging.getLogger(__name__)

ENV_BASE_URL = "SRACL_DATA_BASE_URL"
RELEASE_COMMIT = "301353d9f72e1ec232e64af28a68ac289d86daae"  # ziqiangcui/SRA-CL, 2025-10-15
RELEASE = f"https://raw.githubusercontent.com/ziqiangcui/SRA-CL/{RELEASE_COMMIT}/data"
SNAP = "https://snap.stanford.edu/data/amazon/productGraph/categoryFiles"  # the URL the release's notebooks use
PROVENANCE, ITEMS = "PROVENANCE.json", "items.tsv"
BUILD_TAG = ".fetch-"  # hidden build directories beside DIR: .DIRNAME.fetch-PID-XXXX.tmp
MAX_WAIT_S = 7 * 86400.0  # the largest --timeout / --deadline accepted


@dataclass(frozen=True)
class DatasetSpec:
    interactions: Source  # the release's `user item` file, written to DIR as-is
    reviews: Source | None = None  # raw Amazon 2014 5-core reviews: rebuild the release's ids ...
    meta: Source | None = None  # ... and join this metadata to them -> items.tsv
    note: str = ""  # what fetch cannot provide

    @property
    def outputs(self) -> tuple[str, ...]:
        """The files fetch writes into DIR."""
        return (self.interactions.file, *((ITEMS,) if self.reviews is not None else ()), PROVENANCE)


def amazon(release_path: str, size: int, sha256: str, x: str) -> DatasetSpec:
    """An Amazon 2014 category: release interactions plus SNAP's reviews_X_5 + meta_X for item text."""
    return DatasetSpec(Source(f"{RELEASE}/{release_path}", size, sha256),
                       Source(f"{SNAP}/reviews_{x}_5.json.gz"), Source(f"{SNAP}/meta_{x}.json.gz"))


# Sizes and digests of the release files were read from the repository at RELEASE_COMMIT.
# SNAP publishes none: those files are checked by Content-Length, gzip integrity and --max-size,
# and the rebuilt ids must equal the release's.
DATASETS: dict[str, DatasetSpec] = {
    "beauty": amazon("Beauty/Beauty.txt", 2054475,
                     "c9435d9ff1503ea0981a863ea814330e0c525d767a2ceacbb2a40f19599fde04", "Beauty"),
    "sports": amazon("Sports/Sports_and_Outdoors.txt", 3183740,
                     "2d6f1fc61e57ae9474a057ba72ec916c7e643c1476723dc0f57fc78d1f615834", "Sports_and_Outdoors"),
    "office": amazon("Office/Office.txt", 478916,
                     "c15c26df37acf33142dc2182f7b90ce07be1f807ed784eb3e77f84acdfb473a5", "Office_Products"),
    "yelp": DatasetSpec(Source(f"{RELEASE}/Yelp/Yelp.txt", 2173559,
                               "d83b52cf313e5b5d7fef4d5dd28dcb0cc1df9743993f2c962c0f1dd1ca445118"),
                        note="interactions only: the release has no item text and the Yelp Open Dataset "
                             "needs Yelp's terms accepted; download it from https://business.yelp.com/data/"
                             "resources/open-dataset/ and read it with data.format=yelp_raw"),
}


# ---------------------------------------------------------------- mirrors


def base_url(given: str | None) -> str | None:
    """--base-url, else $SRACL_DATA_BASE_URL, else None (the original hosts); checked."""
    base = given or os.environ.get(ENV_BASE_URL) or None
    what = "--base-url" if given else ENV_BASE_URL
    return check_url(base, what).rstrip("/") if base else None


def resolve(url: str, base: str | None) -> str:
    """The URL to fetch: the original, or BASE/HOST/PATH on a mirror."""
    if base is None:
        return url
    parts = urlsplit(url)
    return f"{base}/{parts.netloc}{parts.path}"


# ---------------------------------------------------------------- DIR, checked before any download


def target_dir(to: str | Path) -> Path:
    """--to as an absolute path (a symlink: the directory it points to)."""
    path = Path(os.path.abspath(Path(to).expanduser()))
    return path.resolve() if path.is_symlink() else path


def is_ours(name: str, outputs: tuple[str, ...]) -> bool:
    """A file fetch writes into DIR, or a temp file an older, killed version of it left there."""
    return name in outputs or any(name.startswith(f".{out}.") and ".tmp" in name for out in outputs)


def check_dir_free(to: Path, txt: str) -> None:
    """The paper format reads the one NAME.txt of a directory: refuse a DIR holding another dataset's."""
    other = sorted(p.name for p in to.glob("*.txt") if p.name != txt and not p.name.startswith("."))
    if other:
        raise UserError(f"--to {to}: already holds {', '.join(other)} (another dataset?); "
                        f"give each dataset its own directory")


def check_target(to: Path, spec: DatasetSpec) -> None:
    """--to must be (or become) a directory that fetch may replace as a whole: checked before any download."""
    if to.parent == to:
        raise UserError(f"--to {to}: give the dataset a directory of its own (it is built beside it)")
    if to.exists() and not to.is_dir():
        raise UserError(f"--to {to}: exists and is not a directory")
    if to.is_dir():
        check_dir_free(to, spec.interactions.file)
        foreign = sorted(p.name for p in to.iterdir() if not is_ours(p.name, spec.outputs))
        if foreign:
            shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
            raise UserError(f"--to {to}: holds files data fetch did not write ({shown}); the dataset replaces "
                            f"the whole directory, so give it a new or empty one")
    parent = next(p for p in (to.parent, *to.parent.parents) if p.exists() or p == p.parent)
    if not parent.is_dir():
        raise UserError(f"--to {to}: {parent} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"--to {to}: cannot write in {parent} (the dataset is built beside --to, then renamed "
                        f"into place)")


# ---------------------------------------------------------------- building DIR


def write_items_tsv(reviews: Path, release_txt: Path, out: Path) -> int:
    """items.tsv from the raw dump, after checking its rebuilt ids equal the release's; returns #items."""
    from sracl_ray.data.raw_amazon import TEXT_COLUMNS, read_amazon_raw
    from sracl_ray.data.readers import read_user_item_txt

    log.info("rebuilding the release's ids from %s and joining the item metadata (minutes for a full dump)",
             reviews.name)
    data = read_amazon_raw(reviews)
    release = read_user_item_txt(release_txt).sort_values(["user", "order"], kind="stable")
    ours = data.interactions.sort_values(["user", "order"], kind="stable")
    a, b = release[["user", "item"]].to_numpy(), ours[["user", "item"]].to_numpy()
    if a.shape != b.shape or (a != b).any():
        k = int((a != b).any(axis=1).argmax()) if a.shape == b.shape else min(len(a), len(b))
        raise DataFormatError(reviews, None, message=(
            f"its rebuilt ids differ from {release_txt.name} ({len(b)} vs {len(a)} interactions, first "
            f"difference at row {k + 1}); items.tsv not written (another version of the dump?)"))
    items = data.items.rename(columns={"item": "item_id"})[["item_id", "asin", *TEXT_COLUMNS]]

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f, delimiter="\t", lineterminator="\n")  # CSV quoting: titles may hold tabs
            writer.writerow(items.columns)
            writer.writerows(items.itertuples(index=False))

    atomic_write(out, write)
    return len(items)


def source_record(src: Source, size: int, sha: str, base: str | None) -> dict:
    return {"url": src.url, "mirror": resolve(src.url, base) if base else None, "size": size, "sha256": sha}


def up_to_date(to: Path, sources: list[dict]) -> bool:
    """DIR already holds what these sources make (its PROVENANCE.json names them; outputs unchanged)."""
    try:
        prov = json.loads((to / PROVENANCE).read_text())
        same = [{k: s[k] for k in ("url", "size", "sha256")} for s in prov["sources"]] == \
               [{k: s[k] for k in ("url", "size", "sha256")} for s in sources]
        return same and all(file_digest(to / name) == (o["size"], o["sha256"]) for name, o in prov["outputs"].items())
    except (OSError, ValueError, KeyError, TypeError):
        return False


def write_dataset(out: Path, name: str, spec: DatasetSpec, files: dict[Source, Path], records: list[dict]) -> dict:
    """NAME.txt, items.tsv (Amazon) and PROVENANCE.json into the (empty) build directory out."""
    txt = out / spec.interactions.file
    shutil.copyfile(files[spec.interactions], txt)
    outputs = [txt]
    if spec.reviews is not None:
        write_items_tsv(files[spec.reviews], txt, out / ITEMS)
        outputs.append(out / ITEMS)
    prov = {"dataset": name, "fetched_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "code_version": code_version(), "sources": records,
            "outputs": {p.name: dict(zip(("size", "sha256"), file_digest(p))) for p in outputs},
            "note": spec.note or None}
    (out / PROVENANCE).write_text(json.dumps(prov, indent=2) + "\n")
    return prov


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # another user's process
    return True


def remove_stale_builds(to: Path) -> None:
    """Delete the build directories a killed fetch into `to` left (this host's live fetches' are kept)."""
    for stale in to.parent.glob(f".{to.name}{BUILD_TAG}*.tmp"):
        pid = stale.name[len(f".{to.name}{BUILD_TAG}"):].split("-", 1)[0]
        if stale.is_dir() and not stale.is_symlink() and not (pid.isdigit() and pid_alive(int(pid))):
            shutil.rmtree(stale, ignore_errors=True)


def install(build: Path, to: Path) -> None:
    """Rename the finished build directory onto `to` (an older copy of the dataset there is replaced)."""
    if not to.exists():
        os.rename(build, to)  # atomic: `to` is absent, then complete
        return
    os.chmod(build, stat.S_IMODE(to.stat().st_mode))  # keep the mode the user gave the directory
    old = to.parent / f".{to.name}{BUILD_TAG}{os.getpid()}-old.tmp"
    os.rename(to, old)  # a crash right here leaves `to` absent and both copies hidden: never half of one
    try:
        os.rename(build, to)
    except BaseException:
        os.rename(old, to)
        raise
    shutil.rmtree(old, ignore_errors=True)


def build_dataset(to: Path, name: str, spec: DatasetSpec, files: dict[Source, Path], records: list[dict]) -> dict:
    """Write the dataset into a hidden directory beside `to`, then rename it onto `to`; returns its provenance."""
    remove_stale_builds(to)
    build = Path(tempfile.mkdtemp(dir=to.parent, prefix=f".{to.name}{BUILD_TAG}{os.getpid()}-", suffix=".tmp"))
    try:
        os.chmod(build, 0o777 & ~current_umask())  # mkdtemp makes it 0700; the dataset follows the umask
        prov = write_dataset(build, name, spec, files, records)
        install(build, to)
    finally:
        shutil.rmtree(build, ignore_errors=True)  # absent after a successful rename
    return prov


def culprit_in_cache(error: UserError, cached: list[Path]) -> Path | None:
    """The cached download an error is about (a reader's DataFormatError names its file), if any."""
    path = getattr(error, "path", None)
    if not path:
        return None
    path = Path(path).resolve()
    return next((p for p in cached if p.resolve() == path), None)


def fetch_dataset(name: str, to: str | Path, base: str | None = None, cache: str | Path | None = None,
                  limits: Limits = Limits()) -> dict:
    """Download dataset `name` and write it into `to` in the paper format; returns its provenance."""
    if name not in DATASETS:
        raise UserError(f"unknown dataset {name!r}; fetchable: {', '.join(DATASETS)}")
    spec, to = DATASETS[name], target_dir(to)
    base = base_url(base)
    check_target(to, spec)
    cache = Path(cache).expanduser() if cache else default_cache() / name
    cache.mkdir(parents=True, exist_ok=True)
    files, records = {}, []
    for src in (spec.interactions, spec.reviews, spec.meta):
        if src is not None:
            files[src] = cache / src.file
            records.append(source_record(src, *download(src, files[src], resolve(src.url, base), limits), base))
    if up_to_date(to, records):
        log.info("%s: up to date (%s matches)", to, PROVENANCE)
        return json.loads((to / PROVENANCE).read_text())
    to.parent.mkdir(parents=True, exist_ok=True)
    try:
        return build_dataset(to, name, spec, files, records)
    except UserError as e:
        bad = culprit_in_cache(e, list(files.values()))
        if bad is None:
            raise
        bad.unlink(missing_ok=True)  # else every rerun would build from it again
        raise UserError(f"{e}; removed {bad} from the download cache (a rerun downloads it again)") from e


def default_cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "sracl-ray" / "downloads"


# ---------------------------------------------------------------- CLI

SIZE_RE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?", re.IGNORECASE)
MAX_SIZE_LIMIT = 1 << 50  # 1 PiB: the largest --max-size accepted


def byte_size(text: str) -> int:
    """argparse type: a byte count such as 123, 500M, 2G or 1.5GiB (powers of 1024)."""
    m = SIZE_RE.fullmatch(text.strip())
    if not m:
        raise argparse.ArgumentTypeError(f"expected a size such as 500M or 2G, got {text!r}")
    power = "kmgt".index(m[2].lower()) + 1 if m[2] else 0
    value = int(float(m[1]) * 1024 ** power)
    if not 1 <= value <= MAX_SIZE_LIMIT:
        raise argparse.ArgumentTypeError(f"must be between 1 byte and {format_bytes(MAX_SIZE_LIMIT)}, got {text}")
    return value


def register(subparsers) -> None:
    group = subparsers.add_parser("data", help="get the paper's datasets").add_subparsers(dest="data_command",
                                                                                          required=True)
    p = group.add_parser("fetch", help="download a dataset of the paper and write it in the paper format",
                         description="Downloads the SRA-CL release's interactions and, for the Amazon "
                                     "datasets, the raw Amazon 2014 dumps that items.tsv is built from; "
                                     "writes NAME.txt, items.tsv and PROVENANCE.json into --to, all at once "
                                     "when every file is checked. Downloads already in the cache are not "
                                     "fetched again.")
    p.add_argument("name", choices=list(DATASETS), help="dataset")
    p.add_argument("--to", required=True, metavar="DIR",
                   help="output directory, new or empty or an earlier fetch of this dataset "
                        "(NAME.txt, items.tsv, PROVENANCE.json)")
    p.add_argument("--base-url", metavar="URL", help=f"fetch from a mirror laid out as URL/HOST/PATH "
                                                     f"(default: ${ENV_BASE_URL}, else the original hosts)")
    p.add_argument("--cache", metavar="DIR", help="where downloads are kept "
                                                  "(default: ~/.cache/sracl-ray/downloads/NAME)")
    wait = number(float, 0, MAX_WAIT_S, low_open=True)
    p.add_argument("--timeout", type=wait, default=TIMEOUT_S, metavar="S",
                   help=f"seconds a connect or a single read may wait (default {TIMEOUT_S:g})")
    p.add_argument("--deadline", type=wait, default=None, metavar="S",
                   help="seconds one download may take in all (default: 300 plus 1 per 32 KiB of its size)")
    p.add_argument("--max-size", type=byte_size, default=MAX_SIZE, metavar="BYTES",
                   help=f"largest download without a pinned size, e.g. 500M or 4G (default "
                        f"{format_bytes(MAX_SIZE)}); a pinned file must have exactly its pinned size")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    limits = Limits(timeout=args.timeout, deadline=args.deadline, max_size=args.max_size)
    prov = fetch_dataset(args.name, Path(args.to), args.base_url, args.cache, limits)
    print(f"{args.to}: {', '.join(prov['outputs'])} ({PROVENANCE} lists sources and sha256)")
    if prov.get("note"):
        print(f"note: {args.name}: {prov['note']}")
    return 0
