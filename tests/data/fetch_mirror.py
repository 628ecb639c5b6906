"""Loopback servers and fixture files for the `data fetch` tests (nothing real is downloaded).

`Mirror` serves tiny fixture files laid out as HOST/PATH (what `wget -x` writes) and can truncate,
redirect or drop the Content-Length of a path; `Trickle` is a raw-socket HTTP server that sends one
byte at a time, into its headers or its body, to test the overall download deadline.
"""
from __future__ import annotations

import dataclasses
import gzip
import hashlib
import http.server
import socket
import threading
from pathlib import Path
from urllib.parse import urlsplit

from sracl_ray.cli import main
from sracl_ray.data import fetch

# Five users each review all five items (so the 5-core keeps everything).  Users sort U1..U5 and
# U1's order fixes the item ids by first appearance: A=1 ... E=5.
SEQS = {"U1": "ABCDE", "U2": "EDCBA", "U3": "CAEBD", "U4": "BDAEC", "U5": "DCEAB"}
IDS = {a: i for i, a in enumerate("ABCDE", 1)}
TITLES = {"A": "Argan Oil", "B": "Bath\tSalts", "C": "Curl &amp; Shine", "D": "Day Cream", "E": "Eyeliner"}


def reviews_gz(seqs: dict[str, str]) -> bytes:
    reviews = [(u, a, 1000 * k + 10 * t) for k, (u, seq) in enumerate(seqs.items()) for t, a in enumerate(seq)]
    reviews.reverse()  # file order is not time order
    return gzip.compress("".join(repr({"reviewerID": u, "asin": a, "unixReviewTime": t, "overall": 5.0}) + "\n"
                                 for u, a, t in reviews).encode())


def fixture_files() -> dict[str, bytes]:
    """file name -> bytes: the release's Beauty.txt and the raw reviews_Beauty_5 + meta_Beauty dumps."""
    release = "".join(f"{u} {IDS[a]}\n" for u, seq in enumerate(SEQS.values(), 1) for a in seq)
    meta = [{"asin": a, "title": t, "brand": "Acme", "categories": [["Beauty", "Skin"]], "salesRank": {"Beauty": 7}}
            for a, t in TITLES.items()] + [{"asin": "Z", "title": "never reviewed"}]
    return {"Beauty.txt": release.encode(), "reviews_Beauty_5.json.gz": reviews_gz(SEQS),
            "meta_Beauty.json.gz": gzip.compress("".join(repr(m) + "\n" for m in meta).encode())}


def mirror_path(url: str) -> str:
    """Where a mirror laid out as HOST/PATH keeps url (what `wget -x` writes)."""
    parts = urlsplit(url)
    return parts.netloc + parts.path


class Mirror:
    """http.server on 127.0.0.1:0 serving root; records request paths; can truncate, redirect, or send a
    path without Content-Length (the body then ends when the connection closes)."""

    def __init__(self, root: Path):
        self.root = root
        self.requests: list[str] = []
        self.truncate: set[str] = set()  # paths answered with a Content-Length 100 bytes too long
        self.redirect: dict[str, str] = {}  # path -> Location of a 302
        self.no_length: set[str] = set()  # paths answered without Content-Length
        mirror = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *a, **kw):
                super().__init__(*a, directory=str(root), **kw)

            def do_GET(self):
                mirror.requests.append(self.path)
                body = lambda: (root / self.path.lstrip("/")).read_bytes()  # noqa: E731
                if self.path in mirror.redirect:
                    self.send_response(302)
                    self.send_header("Location", mirror.redirect[self.path])
                    self.end_headers()
                elif self.path in mirror.truncate | mirror.no_length:
                    data = body()
                    self.send_response(200)
                    if self.path in mirror.truncate:
                        self.send_header("Content-Length", str(len(data) + 100))
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.wfile.write(data)
                    self.close_connection = True
                else:
                    super().do_GET()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def serve(self, url: str, data: bytes) -> str:
        """Serve data at url's mirror path; returns that path (as requested)."""
        dest = self.root / mirror_path(url)
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)
        return "/" + mirror_path(url)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Trickle:
    """A loopback HTTP server that answers every GET with one byte per `every` seconds, forever:
    into its headers (`where="headers"`) or, after complete headers, into its body."""

    def __init__(self, where: str, every: float = 0.05):
        self.where, self.every = where, every
        self.stop = threading.Event()
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            conn.recv(65536)  # the request (one small GET)
            head = b"HTTP/1.1 200 OK\r\n"
            if self.where == "body":
                head += b"Content-Length: 90\r\n\r\n"  # under the pinned size: only the deadline can end it
            try:
                conn.sendall(head + (b"X-Slow: " if self.where == "headers" else b""))
                while not self.stop.wait(self.every):
                    conn.sendall(b"a")
            except OSError:
                pass  # the client gave up

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        self.sock.close()


@dataclasses.dataclass
class Env:
    mirror: Mirror
    spec: fetch.DatasetSpec
    cache: Path
    to: Path

    def run(self, *extra: str, base: bool = True) -> int:
        """`sracl-ray data fetch beauty --to TO --cache CACHE [--base-url MIRROR] EXTRA` in-process."""
        more = ["--base-url", self.mirror.url] if base else []
        return main(["data", "fetch", "beauty", "--to", str(self.to), "--cache", str(self.cache), *more, *extra])


def make_env(tmp_path: Path, monkeypatch) -> Env:
    """The fixture files served at their real URLs' paths; beauty's release file pinned to them."""
    files = fixture_files()
    real = fetch.DATASETS["beauty"]
    release = files["Beauty.txt"]
    spec = dataclasses.replace(real, interactions=dataclasses.replace(
        real.interactions, size=len(release), sha256=hashlib.sha256(release).hexdigest()))
    monkeypatch.setitem(fetch.DATASETS, "beauty", spec)
    monkeypatch.delenv(fetch.ENV_BASE_URL, raising=False)
    mirror = Mirror(tmp_path / "mirror")
    for src in (spec.interactions, spec.reviews, spec.meta):
        mirror.serve(src.url, files[src.file])
    return Env(mirror, spec, tmp_path / "cache", tmp_path / "out")


def leftovers(*dirs: Path) -> list[str]:
    """Every file or directory under dirs whose name marks a temp/partial file."""
    return [p.name for d in dirs if d.exists() for p in d.rglob("*") if p.name.startswith(".")]


def one_line_error(capsys) -> str:
    """The one error line on stderr (a progress bar may precede it: it redraws with carriage returns)."""
    err = capsys.readouterr().err
    lines = [seg.strip() for line in err.split("\n") for seg in line.split("\r") if seg.strip()]
    errors = [ln for ln in lines if ln.startswith("sracl-ray: ")]
    assert len(errors) == 1 and errors[0].startswith("sracl-ray: error: ") and err.rstrip().endswith(errors[0]), err
    assert all(ln.startswith("sracl-ray: ") or "B/s]" in ln for ln in lines), err
    return errors[0]
