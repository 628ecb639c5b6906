"""HTTP(S) downloads for `data fetch`: checked, bounded in time and size, never left half-written.

A download goes to a temp file beside its destination and is renamed into place only when it is
complete and checked (Content-Length, the pinned size and sha256 when known, gzip integrity); any
failure, Ctrl-C included, deletes the temp file.  Three limits keep a hostile or broken server from
holding a run or filling a disk:

- `timeout`: seconds a connect or a single read may wait (a stalled server fails);
- `deadline`: seconds one whole download may take, headers included (a server that sends a byte
  every few seconds defeats the per-read timeout alone).  None = DEADLINE_BASE_S plus one second
  per MIN_RATE bytes of the expected size (the pinned size, else Content-Length, else max_size);
- `max_size`: bytes an unpinned download may have (a pinned file may have its pinned size only).

Only http(s) URLs are fetched, redirects included.
"""
from __future__ import annotations

import gzip
import hashlib
import http.client
import logging
import socket
import threading
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from urllib.error import HTTPError, URLError
from urllib.parse import urlsplit
from urllib.request import HTTPHandler, HTTPRedirectHandler, HTTPSHandler, Request, build_opener

from sracl_ray.errors import UserError
from sracl_ray.manifest import atomic_write

log = logging.getLogger(__name__)

CHUNK = 1 << 20
LARGE = 1 << 20  # a progress bar for downloads bigger than this (or of unknown size)
TIMEOUT_S = 60.0  # per connect / per read
DEADLINE_BASE_S = 300.0  # plus one second per MIN_RATE bytes: the automatic deadline of one download
MIN_RATE = 32 << 10  # bytes/s (256 kbit/s): slower than this on average and the automatic deadline ends it
# The SNAP dumps are not pinned (SNAP publishes no sizes or digests); the largest that `data fetch`
# reads (meta_Sports_and_Outdoors.json.gz) is a few hundred MB, so 2 GiB is a generous cap.
MAX_SIZE = 2 << 30
NOT_KEPT = "the downloaded file was deleted, nothing was cached"


@dataclass(frozen=True)
class Source:
    url: str
    size: int | None = None  # pinned when known; then a download of another size or digest is refused
    sha256: str | None = None

    @property
    def file(self) -> str:
        return self.url.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class Limits:
    timeout: float = TIMEOUT_S  # seconds per connect / read
    deadline: float | None = None  # seconds per download; None = auto_deadline(expected size)
    max_size: int = MAX_SIZE  # bytes per unpinned download


def auto_deadline(expected_bytes: int) -> float:
    """The default deadline of a download of about expected_bytes: generous, but finite."""
    return DEADLINE_BASE_S + expected_bytes / MIN_RATE


def format_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


# ---------------------------------------------------------------- URLs


def check_url(url: str, what: str = "") -> str:
    """The URL itself when it is http(s) with a host; otherwise a UserError naming it."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        where = f"{what}: " if what else ""
        raise UserError(f"{where}{url}: only http(s) URLs are fetched (got scheme {parts.scheme or 'none'!r})")
    return url


class HttpOnlyRedirects(HTTPRedirectHandler):
    """urllib follows redirects to ftp: too; refuse anything but http(s)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        check_url(newurl, f"redirect from {req.full_url}")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


# ---------------------------------------------------------------- the overall deadline


class Watchdog:
    """Shuts the download's sockets at its deadline, so a blocked read returns at once.

    The socket timeout bounds each read, not their sum: a server that trickles a byte per read
    (into the headers or the body) would otherwise hold the download forever."""

    POLL_S = 0.05

    def __init__(self, deadline: float):
        self.deadline, self.expired = deadline, False  # deadline: time.monotonic() value; may move
        self._socks: list[socket.socket] = []
        self._lock, self._done = threading.Lock(), threading.Event()
        self._thread = threading.Thread(target=self._run, name="download-deadline", daemon=True)

    def __enter__(self) -> "Watchdog":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()
        self._thread.join()

    def watch(self, sock: socket.socket) -> socket.socket:
        with self._lock:
            self._socks.append(sock)
            expired = self.expired
        if expired:
            _shut(sock)
        return sock

    def _run(self) -> None:
        while not self._done.wait(min(self.POLL_S, max(0.0, self.deadline - time.monotonic()))):
            if time.monotonic() >= self.deadline:
                with self._lock:
                    self.expired, socks = True, list(self._socks)
                for sock in socks:
                    _shut(sock)
                return

    def handlers(self) -> list[type]:
        """urllib handlers whose connections register their sockets here (redirect hops included)."""
        dog = self

        def watched(conn_cls: type) -> type:
            class Watched(conn_cls):
                def __init__(self, *args, **kwargs):
                    super().__init__(*args, **kwargs)
                    create = self._create_connection  # the TCP socket, before any TLS wraps it
                    self._create_connection = lambda *a, **kw: dog.watch(create(*a, **kw))

                def connect(self):
                    super().connect()
                    dog.watch(self.sock)  # HTTPS: the TLS socket (it took over the TCP one's descriptor)
            return Watched

        class Http(HTTPHandler):
            def do_open(self, http_class, req, **kwargs):
                return super().do_open(watched(http_class), req, **kwargs)

        class Https(HTTPSHandler):
            def do_open(self, http_class, req, **kwargs):
                return super().do_open(watched(http_class), req, **kwargs)

        return [Http, Https]


def _shut(sock: socket.socket) -> None:
    try:
        socket.socket.shutdown(sock, socket.SHUT_RDWR)  # the plain-socket call: also ends a TLS socket's reads
    except OSError:
        pass  # already closed


# ---------------------------------------------------------------- one download


def file_digest(path: Path) -> tuple[int, str]:
    """(size, sha256 hex) of a file."""
    with open(path, "rb") as f:
        return path.stat().st_size, hashlib.file_digest(f, "sha256").hexdigest()


def refused(url: str, why: str) -> UserError:
    return UserError(f"download refused: {url}: {why}; {NOT_KEPT}")


def check_gzip(path: Path, url: str) -> None:
    """Refuse a .gz download that does not decompress to its end (a truncated stream)."""
    try:
        with gzip.open(path, "rb") as f:
            while f.read(CHUNK):
                pass
    except (OSError, EOFError, zlib.error) as e:
        raise refused(url, f"not a complete gzip file ({e})") from e


def stream(url: str, out: Path, limits: Limits, size: int | None = None) -> None:
    """GET url into out, with a byte progress bar; at most `size` bytes when pinned, else limits.max_size;
    any failure is one UserError naming the URL."""
    from tqdm import tqdm

    start, cap = time.monotonic(), size if size is not None else limits.max_size
    budget = limits.deadline if limits.deadline is not None else auto_deadline(cap)
    got, total = 0, None
    what = "its pinned size" if size is not None else "--max-size"
    try:
        with Watchdog(start + budget) as dog, \
                build_opener(HttpOnlyRedirects, *dog.handlers()).open(
                    Request(url, headers={"User-Agent": "sracl-ray"}), timeout=limits.timeout) as resp, \
                open(out, "wb") as f:
            length = resp.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            if total is not None and total > cap:
                raise refused(url, f"Content-Length {total} bytes is more than {what} ({format_bytes(cap)})")
            if limits.deadline is None and size is None and total is not None:
                budget = auto_deadline(total)
                dog.deadline = start + budget
            with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=url.rsplit("/", 1)[-1],
                      disable=total is not None and total < LARGE, leave=False) as bar:
                while chunk := resp.read1(CHUNK):  # read1: returns what arrived, so the loop sees every read
                    got += len(chunk)
                    if got > cap:
                        raise refused(url, f"more than {what} ({format_bytes(cap)}) received")
                    f.write(chunk)
                    bar.update(len(chunk))
        expired = dog.expired
    except HTTPError as e:
        raise UserError(f"download failed: {url}: HTTP {e.code} {e.reason}") from e
    except (URLError, http.client.HTTPException, OSError) as e:
        if isinstance(e, OSError) and e.filename:  # the local file, not the network
            raise
        if dog.expired:
            raise overdue(url, budget, got) from e
        reason = str(getattr(e, "reason", None) or e) or type(e).__name__
        raise UserError(f"download failed: {url}: {reason} (after {got} bytes; timeout {limits.timeout:g} s)") from e
    if expired:  # the shut socket read as a clean end of a body without Content-Length
        raise overdue(url, budget, got)
    if total is not None and got != total:
        raise UserError(f"download refused: {url}: truncated, {got} of {total} bytes (Content-Length); {NOT_KEPT}")


def overdue(url: str, budget: float, got: int) -> UserError:
    return UserError(f"download failed: {url}: not finished within its deadline of {budget:.0f} s "
                     f"({format_bytes(got)} received; --deadline S sets it); {NOT_KEPT}")


def remove_stale(dest: Path) -> None:
    """Delete the temp files of dest that a killed run left (Ctrl-C and errors clean up themselves)."""
    for stale in dest.parent.glob(f".{dest.name}.*.tmp*"):  # atomic_write's names
        if stale.is_file():
            stale.unlink(missing_ok=True)


def download(src: Source, dest: Path, url: str, limits: Limits = Limits()) -> tuple[int, str]:
    """dest holding src fetched from url (skipped when already there and matching); returns its (size, sha256)."""
    if dest.is_file():
        size, sha = file_digest(dest)
        if src.size in (None, size) and src.sha256 in (None, sha):
            log.info("%s: already downloaded", dest)
            return size, sha
        dest.unlink()
        log.warning("%s: size or sha256 differs from %s's pin: removed it from the download cache; "
                    "downloading it again", dest, src.url)
    remove_stale(dest)
    check_url(url)
    digest: list[tuple[int, str]] = []

    def fetch_checked(tmp: Path) -> None:
        stream(url, tmp, limits, src.size)
        size, sha = file_digest(tmp)
        if src.size is not None and size != src.size:
            raise refused(url, f"{size} bytes, expected {src.size}")
        if src.sha256 is not None and sha != src.sha256:
            raise refused(url, f"sha256 {sha}, expected {src.sha256}")
        if dest.suffix == ".gz":
            check_gzip(tmp, url)
        digest.append((size, sha))

    log.info("downloading %s", url)
    atomic_write(dest, fetch_checked)  # the temp file is removed on any error, Ctrl-C included
    return digest[0]
