"""`sracl-ray data fetch` against a loopback HTTP mirror of tiny fixture files (nothing real is downloaded):
the dataset it writes, its checks, and that DIR and the cache never keep a half or a refused file."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os

import pytest

from sracl_ray.config import DataConfig
from sracl_ray.data import download, fetch
from sracl_ray.data.readers import load_dataset
from tests.data.fetch_mirror import (IDS, SEQS, TITLES, fixture_files, leftovers, make_env, mirror_path,
                                     one_line_error, reviews_gz)


@pytest.fixture
def env(tmp_path, monkeypatch):
    e = make_env(tmp_path, monkeypatch)
    yield e
    e.mirror.close()


def test_fetch_writes_a_loadable_paper_dir_and_a_rerun_downloads_nothing(env, monkeypatch, capsys):
    mirror, spec, cache, to = env.mirror, env.spec, env.cache, env.to
    monkeypatch.setenv(fetch.ENV_BASE_URL, mirror.url)  # the first run reads the mirror from the env var
    for stale in (cache / ".meta_Beauty.json.gz.x1.tmp.json.gz", to / ".Beauty.txt.x2.tmp.txt"):
        stale.parent.mkdir(parents=True, exist_ok=True)
        stale.write_bytes(b"left by a killed run")
    assert env.run(base=False) == 0
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
    assert main_with_base(env, mirror.url + "/") == 0
    assert len(mirror.requests) == 3  # every file already there and matching: nothing downloaded
    assert (to / "PROVENANCE.json").read_text() == before
    assert leftovers(cache, to) == [] and not build_dirs(env)


def main_with_base(env, base: str) -> int:
    from sracl_ray.cli import main

    return main(["data", "fetch", "beauty", "--to", str(env.to), "--cache", str(env.cache), "--base-url", base])


def build_dirs(env) -> list[str]:
    """The hidden build/old directories of a fetch into env.to left beside it."""
    return [p.name for p in env.to.parent.iterdir() if p.name.startswith(f".{env.to.name}.")]


def test_a_404_is_one_line_naming_the_url_and_leaves_no_file(env, capsys):
    missing = f"{env.mirror.url}/{mirror_path(env.spec.meta.url)}"
    (env.mirror.root / mirror_path(env.spec.meta.url)).unlink()
    assert env.run() == 2
    err = one_line_error(capsys)
    assert missing in err and "HTTP 404" in err
    assert not (env.cache / "meta_Beauty.json.gz").exists() and not env.to.exists()
    assert leftovers(env.cache) == [] and not build_dirs(env)


@pytest.mark.parametrize("pin, expected", [("size", "bytes, expected 999"), ("sha256", "sha256")])
def test_a_checksum_mismatch_is_refused_and_nothing_is_cached(env, monkeypatch, capsys, pin, expected):
    wrong = {"size": 999} if pin == "size" else {"sha256": "0" * 64}
    monkeypatch.setitem(fetch.DATASETS, "beauty", dataclasses.replace(
        env.spec, interactions=dataclasses.replace(env.spec.interactions, **wrong)))
    assert env.run() == 2
    err = one_line_error(capsys)
    assert "download refused" in err and expected in err and mirror_path(env.spec.interactions.url) in err
    assert download.NOT_KEPT in err  # the message says what became of the refused file
    assert not (env.cache / "Beauty.txt").exists() and not env.to.exists() and leftovers(env.cache) == []


def test_the_real_pins_refuse_a_mirror_serving_other_bytes(env, monkeypatch, capsys):
    monkeypatch.undo()  # the registry's own size/sha256 of the release file
    assert env.run() == 2
    assert f"expected {fetch.DATASETS['beauty'].interactions.size}" in one_line_error(capsys)
    assert not (env.cache / "Beauty.txt").exists()


def test_a_cached_file_that_fails_its_pin_is_removed_and_fetched_again(env, capsys):
    env.cache.mkdir()
    (env.cache / "Beauty.txt").write_bytes(b"1 1\n1 2\n1 3\n")  # a forged or damaged earlier download
    assert env.run() == 0
    assert (env.cache / "Beauty.txt").read_bytes() == fixture_files()["Beauty.txt"]
    assert "/" + mirror_path(env.spec.interactions.url) in env.mirror.requests


@pytest.mark.parametrize("how", ["short_body", "broken_gzip"])
def test_a_truncated_download_is_refused(env, capsys, how):
    path = "/" + mirror_path(env.spec.meta.url)
    if how == "short_body":
        env.mirror.truncate.add(path)  # the server promises 100 bytes more than it sends
    else:
        served = env.mirror.root / path.lstrip("/")
        served.write_bytes(served.read_bytes()[:-30])  # a complete HTTP response of a cut-off gzip file
    assert env.run() == 2
    err = one_line_error(capsys)
    assert ("truncated" if how == "short_body" else "not a complete gzip file") in err and path in err
    assert not (env.cache / "meta_Beauty.json.gz").exists() and not env.to.exists() and leftovers(env.cache) == []


def test_non_http_urls_are_refused(env, monkeypatch, capsys):
    assert env.run("--base-url", "file:///etc", base=False) == 2
    assert "--base-url: file:///etc: only http(s) URLs" in one_line_error(capsys)
    monkeypatch.setenv(fetch.ENV_BASE_URL, "ftp://127.0.0.1/pub")
    assert env.run(base=False) == 2
    assert f"{fetch.ENV_BASE_URL}: ftp://127.0.0.1/pub: only http(s)" in one_line_error(capsys)
    monkeypatch.delenv(fetch.ENV_BASE_URL)
    path = "/" + mirror_path(env.spec.interactions.url)
    env.mirror.redirect[path] = "ftp://127.0.0.1/Beauty.txt"  # a redirect may not leave http(s) either
    assert env.run() == 2
    assert "redirect from" in (err := one_line_error(capsys)) and "ftp://127.0.0.1/Beauty.txt" in err
    assert not env.cache.exists() or not any(env.cache.iterdir())


def test_ctrl_c_mid_download_leaves_no_partial_file(env, monkeypatch):
    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(download, "check_gzip", interrupted)  # Ctrl-C after the bytes arrived, before the rename
    with pytest.raises(KeyboardInterrupt):
        fetch.fetch_dataset("beauty", env.to, env.mirror.url, env.cache)
    assert sorted(p.name for p in env.cache.iterdir()) == ["Beauty.txt"] and not env.to.exists()


def test_a_forged_dump_is_removed_from_the_cache_and_leaves_no_half_dataset(env, capsys):
    """The issue's case: reviews whose rebuilt ids differ from the release's.  Before: DIR kept Beauty.txt
    alone and the forged file stayed cached, reused by every rerun."""
    forged = {**SEQS, "U1": "BACDE"}  # user 1's first two items swapped: ids A and B trade places
    path = env.mirror.serve(env.spec.reviews.url, reviews_gz(forged))
    assert env.run() == 2
    err = one_line_error(capsys)
    cached = env.cache / "reviews_Beauty_5.json.gz"
    assert "rebuilt ids differ from Beauty.txt" in err and f"removed {cached} from the download cache" in err
    assert not env.to.exists() and not build_dirs(env)  # nothing of the dataset appeared in --to
    assert not cached.exists() and sorted(p.name for p in env.cache.iterdir()) == ["Beauty.txt", "meta_Beauty.json.gz"]

    env.mirror.serve(env.spec.reviews.url, fixture_files()["reviews_Beauty_5.json.gz"])  # the mirror is fixed
    assert env.run() == 0
    assert env.mirror.requests.count(path) == 2  # downloaded again, not reused
    assert sorted(p.name for p in env.to.iterdir()) == ["Beauty.txt", "PROVENANCE.json", "items.tsv"]


def test_a_crash_while_building_leaves_the_earlier_dataset_whole(env, monkeypatch, capsys):
    assert env.run() == 0
    before = {p.name: p.read_bytes() for p in env.to.iterdir()}
    (env.to / "items.tsv").write_text("item_id\ttitle\n")  # damaged: the dataset is no longer up to date
    before["items.tsv"] = b"item_id\ttitle\n"

    def crash(*args):
        raise KeyboardInterrupt  # killed after Beauty.txt was written into the build directory

    real = fetch.write_items_tsv
    monkeypatch.setattr(fetch, "write_items_tsv", crash)
    with pytest.raises(KeyboardInterrupt):
        fetch.fetch_dataset("beauty", env.to, env.mirror.url, env.cache)
    assert {p.name: p.read_bytes() for p in env.to.iterdir()} == before and not build_dirs(env)
    monkeypatch.setattr(fetch, "write_items_tsv", real)
    assert env.run() == 0  # a rerun rebuilds it whole
    assert (env.to / "items.tsv").read_text().count("\n") == 6 and not build_dirs(env)


def test_a_build_dir_left_by_a_killed_run_is_removed(env):
    stale = env.to.parent / f".{env.to.name}{fetch.BUILD_TAG}999999999-abc.tmp"  # no such pid
    stale.mkdir()
    (stale / "Beauty.txt").write_text("1 1\n")
    assert env.run() == 0 and not stale.exists()


@pytest.mark.parametrize("mask", [0o022, 0o077])
def test_the_dataset_follows_the_umask(env, mask):
    old = os.umask(mask)
    try:
        assert env.run() == 0
    finally:
        os.umask(old)
    assert env.to.stat().st_mode & 0o777 == 0o777 & ~mask
    assert {p.name: p.stat().st_mode & 0o777 for p in env.to.iterdir()} == dict.fromkeys(
        ["Beauty.txt", "PROVENANCE.json", "items.tsv"], 0o666 & ~mask)
    assert {p.stat().st_mode & 0o777 for p in env.cache.iterdir()} == {0o666 & ~mask}


def test_a_dir_holding_another_dataset_is_refused(env, capsys):
    env.to.mkdir()
    (env.to / "Office.txt").write_text("1 1\n")
    assert env.run() == 2
    assert "already holds Office.txt" in one_line_error(capsys) and env.mirror.requests == []


@pytest.mark.parametrize("kind", ["file", "foreign_files", "parent_is_file"])
def test_a_to_that_cannot_hold_the_dataset_is_refused_before_any_download(env, capsys, kind):
    if kind == "file":
        env.to.write_text("x")
        expected = "exists and is not a directory"
    elif kind == "foreign_files":
        env.to.mkdir()
        (env.to / "notes.md").write_text("mine")
        expected = "holds files data fetch did not write (notes.md)"
    else:
        (env.to.parent / "afile").write_text("x")
        env.to = env.to.parent / "afile" / "beauty"
        expected = "is not a directory"
    assert env.run() == 2
    err = one_line_error(capsys)
    assert expected in err and str(env.to) in err
    assert env.mirror.requests == [] and not env.cache.exists()
