"""`sracl-ray data fetch NAME --to DIR`: download one of the paper's datasets, write it in the paper format.

    sracl-ray data fetch beauty --to ~/sracl-data/beauty   # -> Beauty.txt, items.tsv, PROVENANCE.json

Interactions are the SRA-CL release's file as-is (GitHub ziqiangcui/SRA-CL at a pinned commit; size
and sha256 checked).  The release has no item text, so items.tsv is rebuilt from the raw Amazon 2014
dumps (McAuley et al., served by SNAP) with the raw reader (raw_amazon.py), which numbers
`reviews_X_5` the way the release did.  Those ids are checked against the release file before
items.tsv is written, so a title can never land on another item's id.  Yelp: the release has the
interactions only, and the Yelp Open Dataset (business text) is not downloadable without accepting
Yelp's terms; fetch writes Yelp.txt and says so (use data.format=yelp_raw on the official dump).

Downloads go to a cache (`--cache`, default ~/.cache/sracl-ray/downloads/NAME) through a temp file
renamed into place only when complete and checked (Content-Length, the pinned size and sha256 when
known, gzip integrity), so a failure or Ctrl-C leaves no partial file; a file already there is not
downloaded again.  `--base-url URL` (or SRACL_DATA_BASE_URL) fetches every file from a mirror laid
out as URL/HOST/PATH (what `wget -x` writes).  Only http(s) URLs are fetched, redirects included.
"""
from __future__ import annotations

import argparse
import csv
import gzip
import hashlib
import http.client
import json
import logging
import os
import zlib
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from urllib.error import HTTPError, URLError
from urllib.parse import urlsplit
from urllib.request import HTTPRedirectHandler, Request, build_opener

from sracl_ray.errors import UserError
from sracl_ray.manifest import atomic_write, atomic_write_text, code_version

log = logging.getLogger(__name__)

ENV_BASE_URL = "SRACL_DATA_BASE_URL"
RELEASE_COMMIT = "301353d9f72e1ec232e64af28a68ac289d86daae"  # ziqiangcui/SRA-CL, 2025-10-15
RELEASE = f"https://raw.githubusercontent.com/ziqiangcui/SRA-CL/{RELEASE_COMMIT}/data"
SNAP = "https://snap.stanford.edu/data/amazon/productGraph/categoryFiles"  # the URL the release's notebooks use
CHUNK = 1 << 20
LARGE = 1 << 20  # a progress bar for downloads bigger than this (or of unknown size)
TIMEOUT_S = 60.0  # per connect / per read: a stalled server fails instead of hanging
PROVENANCE = "PROVENANCE.json"


@dataclass(frozen=True)
class Source:
    url: str
    size: int | None = None  # pinned when known; then a download of another size or digest is refused
    sha256: str | None = None

    @property
    def file(self) -> str:
        return self.url.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class DatasetSpec:
    interactions: Source  # the release's `user item` file, written to DIR as-is
    reviews: Source | None = None  # raw Amazon 2014 5-core reviews: rebuild the release's ids ...
    meta: Source | None = None  # ... and join this metadata to them -> items.tsv
    note: str = ""  # what fetch cannot provide


def amazon(release_path: str, size: int, sha256: str, x: str) -> DatasetSpec:
    """An Amazon 2014 category: release interactions plus SNAP's reviews_X_5 + meta_X for item text."""
    return DatasetSpec(Source(f"{RELEASE}/{release_path}", size, sha256),
                       Source(f"{SNAP}/reviews_{x}_5.json.gz"), Source(f"{SNAP}/meta_{x}.json.gz"))


# Sizes and digests of the release files were read from the repository at RELEASE_COMMIT.
# SNAP publishes none: those files are checked by Content-Length and gzip integrity, and the
# rebuilt ids must equal the release's.
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


# ---------------------------------------------------------------- URLs


def check_url(url: str, what: str = "") -> str:
    """The URL itself when it is http(s) with a host; otherwise a UserError naming it."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        where = f"{what}: " if what else ""
        raise UserError(f"{where}{url}: only http(s) URLs are fetched (got scheme {parts.scheme or 'none'!r})")
    return url


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


class HttpOnlyRedirects(HTTPRedirectHandler):
    """urllib follows redirects to ftp: too; refuse anything but http(s)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        check_url(newurl, f"redirect from {req.full_url}")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


# ---------------------------------------------------------------- downloads


def file_digest(path: Path) -> tuple[int, str]:
    """(size, sha256 hex) of a file."""
    with open(path, "rb") as f:
        return path.stat().st_size, hashlib.file_digest(f, "sha256").hexdigest()


def check_gzip(path: Path, url: str) -> None:
    """Refuse a .gz download that does not decompress to its end (a truncated stream)."""
    try:
        with gzip.open(path, "rb") as f:
            while f.read(CHUNK):
                pass
    except (OSError, EOFError, zlib.error) as e:
        raise UserError(f"download refused: {url}: not a complete gzip file ({e})") from e


def stream(url: str, out: Path, timeout: float) -> None:
    """GET url into out, with a byte progress bar; any failure is one UserError naming the URL."""
    from tqdm import tqdm

    opener = build_opener(HttpOnlyRedirects)
    got, total = 0, None
    try:
        with opener.open(Request(url, headers={"User-Agent": "sracl-ray"}), timeout=timeout) as resp, \
                open(out, "wb") as f:
            length = resp.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=url.rsplit("/", 1)[-1],
                      disable=total is not None and total < LARGE, leave=False) as bar:
                while chunk := resp.read(CHUNK):
                    f.write(chunk)
                    got += len(chunk)
                    bar.update(len(chunk))
    except HTTPError as e:
        raise UserError(f"download failed: {url}: HTTP {e.code} {e.reason}") from e
    except (URLError, http.client.HTTPException, OSError) as e:
        if isinstance(e, OSError) and e.filename:  # the local file, not the network
            raise
        reason = str(getattr(e, "reason", None) or e) or type(e).__name__
        raise UserError(f"download failed: {url}: {reason} (after {got} bytes; timeout {timeout:g} s)") from e
    if total is not None and got != total:
        raise UserError(f"download refused: {url}: truncated, {got} of {total} bytes (Content-Length)")


def remove_stale(dest: Path) -> None:
    """Delete the temp files of dest that a killed run left (Ctrl-C and errors clean up themselves)."""
    for stale in dest.parent.glob(f".{dest.name}.*.tmp*"):  # atomic_write's names
        stale.unlink(missing_ok=True)


def download(src: Source, dest: Path, base: str | None, timeout: float = TIMEOUT_S) -> tuple[int, str]:
    """dest holding src (skipped when already there and matching); returns its (size, sha256)."""
    if dest.is_file():
        size, sha = file_digest(dest)
        if src.size in (None, size) and src.sha256 in (None, sha):
            log.info("%s: already downloaded", dest)
            return size, sha
        log.warning("%s: size or sha256 differs from %s's; downloading it again", dest, src.url)
    remove_stale(dest)
    url = check_url(resolve(src.url, base))
    digest: list[tuple[int, str]] = []

    def fetch_checked(tmp: Path) -> None:
        stream(url, tmp, timeout)
        size, sha = file_digest(tmp)
        if src.size is not None and size != src.size:
            raise UserError(f"download refused: {url}: {size} bytes, expected {src.size}")
        if src.sha256 is not None and sha != src.sha256:
            raise UserError(f"download refused: {url}: sha256 {sha}, expected {src.sha256}")
        if dest.suffix == ".gz":
            check_gzip(tmp, url)
        digest.append((size, sha))

    log.info("downloading %s", url)
    atomic_write(dest, fetch_checked)  # the temp file is removed on any error, Ctrl-C included
    return digest[0]


# ---------------------------------------------------------------- preparing DIR


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
        raise UserError(f"{reviews}: its rebuilt ids differ from {release_txt.name} ({len(b)} vs {len(a)} "
                        f"interactions, first difference at row {k + 1}); items.tsv not written "
                        f"(another version of the dump?)")
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


def check_dir_free(to: Path, txt: str) -> None:
    """The paper format reads the one NAME.txt of a directory: refuse a DIR holding another dataset's."""
    other = sorted(p.name for p in to.glob("*.txt") if p.name != txt and not p.name.startswith("."))
    if other:
        raise UserError(f"--to {to}: already holds {', '.join(other)} (another dataset?); "
                        f"give each dataset its own directory")


def fetch_dataset(name: str, to: Path, base: str | None = None, cache: Path | None = None,
                  timeout: float = TIMEOUT_S) -> dict:
    """Download dataset `name` and write it into `to` in the paper format; returns its provenance."""
    if name not in DATASETS:
        raise UserError(f"unknown dataset {name!r}; fetchable: {', '.join(DATASETS)}")
    spec, to = DATASETS[name], Path(to).expanduser()
    base = base_url(base)
    check_dir_free(to, spec.interactions.file)
    cache = Path(cache).expanduser() if cache else default_cache() / name
    cache.mkdir(parents=True, exist_ok=True)
    files, records = {}, []
    for src in (spec.interactions, spec.reviews, spec.meta):
        if src is not None:
            files[src] = cache / src.file
            records.append(source_record(src, *download(src, files[src], base, timeout), base))
    if up_to_date(to, records):
        log.info("%s: up to date (%s matches)", to, PROVENANCE)
        return json.loads((to / PROVENANCE).read_text())
    to.mkdir(parents=True, exist_ok=True)
    txt = to / spec.interactions.file
    for path in (txt, to / "items.tsv", to / PROVENANCE):
        remove_stale(path)
    atomic_write(txt, lambda tmp: tmp.write_bytes(files[spec.interactions].read_bytes()))
    outputs = [txt]
    if spec.reviews is not None:
        write_items_tsv(files[spec.reviews], txt, to / "items.tsv")
        outputs.append(to / "items.tsv")
    prov = {"dataset": name, "fetched_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "code_version": code_version(), "sources": records,
            "outputs": {p.name: dict(zip(("size", "sha256"), file_digest(p))) for p in outputs},
            "note": spec.note or None}
    atomic_write_text(to / PROVENANCE, json.dumps(prov, indent=2) + "\n")  # last: a killed run leaves none
    return prov


def default_cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "sracl-ray" / "downloads"


# ---------------------------------------------------------------- CLI


def register(subparsers) -> None:
    group = subparsers.add_parser("data", help="get the paper's datasets").add_subparsers(dest="data_command",
                                                                                          required=True)
    p = group.add_parser("fetch", help="download a dataset of the paper and write it in the paper format",
                         description="Downloads the SRA-CL release's interactions and, for the Amazon "
                                     "datasets, the raw Amazon 2014 dumps that items.tsv is built from; "
                                     "writes NAME.txt, items.tsv and PROVENANCE.json into --to. Downloads "
                                     "already in the cache are not fetched again.")
    p.add_argument("name", choices=list(DATASETS), help="dataset")
    p.add_argument("--to", required=True, metavar="DIR",
                   help="output directory (NAME.txt, items.tsv, PROVENANCE.json)")
    p.add_argument("--base-url", metavar="URL", help=f"fetch from a mirror laid out as URL/HOST/PATH "
                                                     f"(default: ${ENV_BASE_URL}, else the original hosts)")
    p.add_argument("--cache", metavar="DIR", help="where downloads are kept "
                                                  "(default: ~/.cache/sracl-ray/downloads/NAME)")
    p.add_argument("--timeout", type=float, default=TIMEOUT_S, metavar="S",
                   help="seconds without data before a download fails")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    prov = fetch_dataset(args.name, Path(args.to), args.base_url, args.cache, args.timeout)
    print(f"{args.to}: {', '.join(prov['outputs'])} ({PROVENANCE} lists sources and sha256)")
    if prov.get("note"):
        print(f"note: {args.name}: {prov['note']}")
    return 0
