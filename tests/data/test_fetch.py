"""`sracl-ray data fetch` against a loopback HTTP mirror of tiny fixture files (nothing real is downloaded)."""
from __future__ import annotations

import dataclasses
import gzip
import hashlib
import http.server
import json
import threading
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from sracl_ray.cli import main
from sracl_ray.config import DataConfig
from sracl_ray.data import fetch
from sracl_ray.data.readers import load_dataset

# Five users each review all five items (so the 5-core keeps everything).  Users sort U1..U5 and
# U1's order fixes the item ids by first appearance: A=1 ... E=5.
SEQS = {"U1": "ABCDE", "U2": "EDCBA", "U3": "CAEBD", "U4": "BDAEC", "U5": "DCEAB"}
IDS = {a: i for i, a in enumerate("ABCDE", 1)}
TITLES = {"A": "Argan Oil", "B": "Bath\tSalts", "C": "Curl &amp; Shine", "D": "Day Cream", "E": "Eyeliner"}


def fixture_files() -> dict[str, bytes]:
    """file name -> bytes: the release's Beauty.txt and the raw reviews_Beauty_5 + meta_Beauty dumps."""
    reviews = [(u, a, 1000 * k + 10 * t) for k, (u, seq) in enumerate(SEQS.items()) for t, a in enumerate(seq)]
    reviews.reverse()  # file order is not time order
    release = "".join(f"{u} {IDS[a]}\n" for u, seq in enumerate(SEQS.values(), 1) for a in seq)
    meta = [{"asin": a, "title": t, "brand": "Acme", "categories": [["Beauty", "Skin"]], "salesRank": {"Beauty": 7}}
            for a, t in TITLES.items()] + [{"asin": "Z", "title": "never reviewed"}]
    return {"Beauty.txt": release.encode(),
            "reviews_Beauty_5.json.gz": gzip.compress("".join(
                repr({"reviewerID": u, "asin": a, "unixReviewTime": t, "overall": 5.0}) + "\n"
                for u, a, t in reviews).encode()),
            "meta_Beauty.json.gz": gzip.compress("".join(repr(m) + "\n" for m in meta).encode())}


def mirror_path(url: str) -> str:
    """Where a mirror laid out as HOST/PATH keeps url (what `wget -x` writes)."""
    parts = urlsplit(url)
    return parts.netloc + parts.path


class Mirror:
    """http.server on 127.0.0.1:0 serving root; records request paths; can truncate or redirect a path."""

    def __init__(self, root: Path):
        self.requests: list[str] = []
        self.truncate: set[str] = set()  # paths answered with a Content-Length 100 bytes too long
        self.redirect: dict[str, str] = {}  # path -> Location of a 302
        mirror = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *a, **kw):
                super().__init__(*a, directory=str(root), **kw)

            def do_GET(self):
                mirror.requests.append(self.path)
                if self.path in mirror.redirect:
                    self.send_response(302)
                    self.send_header("Location", mirror.redirect[self.path])
                    self.end_headers()
                elif self.path in mirror.truncate:
                    body = (root / self.path.lstrip("/")).read_bytes()
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body) + 100))
                    self.end_headers()
                    self.wfile.write(body)
                else:
                    super().do_GET()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def env(tmp_path, monkeypatch):
    """(mirror, spec, cache, to): the fixture files served at their real URLs' paths; beauty pinned to them."""
    files = fixture_files()
    real = fetch.DATASETS["beauty"]
    release = files["Beauty.txt"]
    spec = dataclasses.replace(real, interactions=dataclasses.replace(
        real.interactions, size=len(release), sha256=hashlib.sha256(release).hexdigest()))
    monkeypatch.setitem(fetch.DATASETS, "beauty", spec)
    monkeypatch.delenv(fetch.ENV_BASE_URL, raising=False)
    root = tmp_path / "mirror"
    for src in (spec.interactions, spec.reviews, spec.meta):
        dest = root / mirror_path(src.url)
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(files[src.file])
    mirror = Mirror(root)
    yield mirror, spec, tmp_path / "cache", tmp_path / "out"
    mirror.close()


def run(mirror: Mirror, cache: Path, to: Path, *extra: str) -> int:
    return main(["data", "fetch", "beauty", "--to", str(to), "--cache", str(cache), *extra])


def leftovers(*dirs: Path) -> list[str]:
    """Every file under dirs whose name marks a temp/partial file."""
    return [p.name for d in dirs if d.exists() for p in d.rglob("*") if p.name.startswith(".")]


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("sracl-ray: error: ") and "\n" not in err, err
    return err


def test_fetch_writes_a_loadable_paper_dir_and_a_rerun_downloads_nothing(env, monkeypatch, capsys):
    mirror, spec, cache, to = env
    monkeypatch.setenv(fetch.ENV_BASE_URL, mirror.url)  # the first run reads the mirror from the env var
    for stale in (cache / ".meta_Beauty.json.gz.x1.tmp.json.gz", to / ".Beauty.txt.x2.tmp.txt"):
        stale.parent.mkdir(parents=True, exist_ok=True)
        stale.write_bytes(b"left by a killed run")
    assert run(mirror, cache, to) == 0
    assert sorted(p.name for p in to.iterdir()) == ["Beauty.txt", "PROVENANCE.json", "items.tsv"]
    assert (to / "Beauty.txt").read_bytes() == fixture_files()["Beauty.txt"]
    data = load_dataset(DataConfig(path=str(to), format="paper"))
    assert [s.tolist() for s in data.sequences[1:]] == [[IDS[a] for a in seq] for seq in SEQS.values()]
    assert data.items["asin"].tolist() == list("ABCDE")
    assert data.items["title"].tolist() == [TITLES[a] for a in "ABCDE"]  # a tab inside a title survives
    assert data.domain == "beauty" and data.items["sales_rank"].tolist() == ["7"] * 5
    prov = json.loads((to / "PROVENANCE.json").read_text())
    assert [s["url"] for s in prov["sources"]] == [spec.interactions.url, spec.reviews.url, spec.meta.url]
    assert all(s["url"].startswith("https://") and s["mirror"].startswith(mirror.url) for s in prov["sources"])
    for s in prov["sources"]:
        assert hashlib.sha256((cache / s["url"].rsplit("/", 1)[-1]).read_bytes()).hexdigest() == s["sha256"]
    assert prov["fetched_at"] and set(prov["outputs"]) == {"Beauty.txt", "items.tsv"}
    assert len(mirror.requests) == 3

    before = (to / "PROVENANCE.json").read_text()
    monkeypatch.delenv(fetch.ENV_BASE_URL)
    assert run(mirror, cache, to, "--base-url", mirror.url + "/") == 0
    assert len(mirror.requests) == 3  # every file already there and matching: nothing downloaded
    assert (to / "PROVENANCE.json").read_text() == before
    assert leftovers(cache, to) == []


def test_a_404_is_one_line_naming_the_url_and_leaves_no_file(env, capsys):
    mirror, spec, cache, to = env
    missing = f"{mirror.url}/{mirror_path(spec.meta.url)}"
    (cache.parent / "mirror" / mirror_path(spec.meta.url)).unlink()
    assert run(mirror, cache, to, "--base-url", mirror.url) == 2
    err = one_line_error(capsys)
    assert missing in err and "HTTP 404" in err
    assert not (cache / "meta_Beauty.json.gz").exists() and not to.exists()
    assert leftovers(cache) == []


@pytest.mark.parametrize("pin, expected", [("size", "bytes, expected 999"), ("sha256", "sha256")])
def test_a_checksum_mismatch_is_refused(env, monkeypatch, capsys, pin, expected):
    mirror, spec, cache, to = env
    wrong = {"size": 999} if pin == "size" else {"sha256": "0" * 64}
    monkeypatch.setitem(fetch.DATASETS, "beauty", dataclasses.replace(
        spec, interactions=dataclasses.replace(spec.interactions, **wrong)))
    assert run(mirror, cache, to, "--base-url", mirror.url) == 2
    err = one_line_error(capsys)
    assert "download refused" in err and expected in err and mirror_path(spec.interactions.url) in err
    assert not (cache / "Beauty.txt").exists() and not to.exists() and leftovers(cache) == []


def test_the_real_pins_refuse_a_mirror_serving_other_bytes(env, monkeypatch, capsys):
    mirror, spec, cache, to = env
    monkeypatch.undo()  # the registry's own size/sha256 of the release file
    assert run(mirror, cache, to, "--base-url", mirror.url) == 2
    assert f"expected {fetch.DATASETS['beauty'].interactions.size}" in one_line_error(capsys)
    assert not (cache / "Beauty.txt").exists()


@pytest.mark.parametrize("how", ["short_body", "broken_gzip"])
def test_a_truncated_download_is_refused(env, capsys, how):
    mirror, spec, cache, to = env
    path = "/" + mirror_path(spec.meta.url)
    if how == "short_body":
        mirror.truncate.add(path)  # the server promises 100 bytes more than it sends
    else:
        served = cache.parent / "mirror" / path.lstrip("/")
        served.write_bytes(served.read_bytes()[:-30])  # a complete HTTP response of a cut-off gzip file
    assert run(mirror, cache, to, "--base-url", mirror.url) == 2
    err = one_line_error(capsys)
    assert ("truncated" if how == "short_body" else "not a complete gzip file") in err and path in err
    assert not (cache / "meta_Beauty.json.gz").exists() and not to.exists() and leftovers(cache) == []


def test_non_http_urls_are_refused(env, monkeypatch, capsys):
    mirror, spec, cache, to = env
    assert run(mirror, cache, to, "--base-url", "file:///etc") == 2
    assert "--base-url: file:///etc: only http(s) URLs" in one_line_error(capsys)
    monkeypatch.setenv(fetch.ENV_BASE_URL, "ftp://127.0.0.1/pub")
    assert run(mirror, cache, to) == 2
    assert f"{fetch.ENV_BASE_URL}: ftp://127.0.0.1/pub: only http(s)" in one_line_error(capsys)
    monkeypatch.delenv(fetch.ENV_BASE_URL)
    path = "/" + mirror_path(spec.interactions.url)
    mirror.redirect[path] = "ftp://127.0.0.1/Beauty.txt"  # a redirect may not leave http(s) either
    assert run(mirror, cache, to, "--base-url", mirror.url) == 2
    assert "redirect from" in (err := one_line_error(capsys)) and "ftp://127.0.0.1/Beauty.txt" in err
    assert not cache.exists() or not any(cache.iterdir())


def test_ctrl_c_mid_download_leaves_no_partial_file(env, monkeypatch):
    mirror, spec, cache, to = env

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(fetch, "check_gzip", interrupted)  # Ctrl-C after the bytes arrived, before the rename
    with pytest.raises(KeyboardInterrupt):
        fetch.fetch_dataset("beauty", to, mirror.url, cache)
    assert sorted(p.name for p in cache.iterdir()) == ["Beauty.txt"] and not to.exists()


def test_ids_that_differ_from_the_release_write_no_items(env, monkeypatch, capsys):
    mirror, spec, cache, to = env
    lines = fixture_files()["Beauty.txt"].decode().splitlines(keepends=True)
    other = "".join([lines[1], lines[0], *lines[2:]]).encode()  # user 1's first two items swapped
    (cache.parent / "mirror" / mirror_path(spec.interactions.url)).write_bytes(other)
    monkeypatch.setitem(fetch.DATASETS, "beauty", dataclasses.replace(spec, interactions=dataclasses.replace(
        spec.interactions, size=len(other), sha256=hashlib.sha256(other).hexdigest())))
    assert run(mirror, cache, to, "--base-url", mirror.url) == 2
    assert "rebuilt ids differ from Beauty.txt" in one_line_error(capsys)
    assert not (to / "items.tsv").exists() and not (to / "PROVENANCE.json").exists()


def test_a_dir_holding_another_dataset_is_refused(env, capsys):
    mirror, spec, cache, to = env
    to.mkdir()
    (to / "Office.txt").write_text("1 1\n")
    assert run(mirror, cache, to, "--base-url", mirror.url) == 2
    assert "already holds Office.txt" in one_line_error(capsys) and mirror.requests == []
