"""`data fetch` against hostile servers and options: the overall deadline, the size cap, numeric options."""
from __future__ import annotations

import time

import pytest

from sracl_ray.data import download, fetch
from tests.data.fetch_mirror import Trickle, leftovers, make_env, one_line_error


@pytest.fixture
def env(tmp_path, monkeypatch):
    e = make_env(tmp_path, monkeypatch)
    yield e
    e.mirror.close()


@pytest.mark.parametrize("option, value, expected", [
    ("--timeout", "-1", "must be > 0"), ("--timeout", "0", "must be > 0"), ("--timeout", "nan", "finite"),
    ("--timeout", "inf", "finite"), ("--timeout", "1e9", "<= 604800"), ("--deadline", "0", "must be > 0"),
    ("--deadline", "nan", "finite"), ("--max-size", "0", "between 1 byte"), ("--max-size", "-5", "a size such as"),
    ("--max-size", "lots", "a size such as"), ("--max-size", "3P", "a size such as"),
])
def test_numeric_options_are_checked_before_anything_happens(env, capsys, option, value, expected):
    with pytest.raises(SystemExit) as exc:
        env.run(option, value)
    assert exc.value.code == 2
    err = one_line_error(capsys)
    assert option in err and expected in err, err
    assert env.mirror.requests == [] and not env.cache.exists() and not env.to.exists()


def test_byte_sizes_read_like_du():
    assert [fetch.byte_size(t) for t in ("123", "16k", "500M", "2G", "1.5GiB", "1 kB")] == \
           [123, 16 << 10, 500 << 20, 2 << 30, 3 << 29, 1024]


@pytest.mark.parametrize("where", ["headers", "body"])
def test_a_trickling_server_is_stopped_by_the_deadline(env, capsys, where):
    """One byte every 50 ms never trips the 60 s per-read timeout; the deadline ends the download."""
    server = Trickle(where)
    try:
        start = time.monotonic()
        assert env.run("--base-url", server.url, "--deadline", "1", base=False) == 2
        elapsed = time.monotonic() - start
    finally:
        server.close()
    err = one_line_error(capsys)
    assert "not finished within its deadline of 1 s" in err and "--deadline" in err and server.url in err
    assert elapsed < 5, elapsed
    assert not env.to.exists() and (not env.cache.exists() or leftovers(env.cache) == [])


def test_the_automatic_deadline_grows_with_the_size():
    assert download.auto_deadline(0) == download.DEADLINE_BASE_S
    assert download.auto_deadline(320 << 20) == download.DEADLINE_BASE_S + 10240  # 320 MiB at 32 KiB/s


@pytest.mark.parametrize("length", ["content_length", "no_length"])
def test_an_unpinned_download_over_the_size_cap_is_refused(env, capsys, length):
    path = env.mirror.serve(env.spec.meta.url, bytes(64 << 10))  # 64 KiB of zeros (the issue: 300 MB)
    if length == "no_length":
        env.mirror.no_length.add(path)  # the cap must hold while streaming, too
    assert env.run("--max-size", "16k") == 2
    err = one_line_error(capsys)
    expected = "Content-Length 65536 bytes is more than --max-size" if length == "content_length" else \
        "more than --max-size (16.0 KiB) received"
    assert expected in err and path in err and download.NOT_KEPT in err, err
    assert not (env.cache / "meta_Beauty.json.gz").exists() and leftovers(env.cache) == [] and not env.to.exists()


def test_a_pinned_download_larger_than_its_pin_is_cut_off(env, capsys):
    path = env.mirror.serve(env.spec.interactions.url, b"1 1\n" * 10_000)  # 40 kB for a 100-byte pin
    env.mirror.no_length.add(path)
    assert env.run() == 2
    err = one_line_error(capsys)
    assert "more than its pinned size" in err and path in err
    assert not (env.cache / "Beauty.txt").exists() and leftovers(env.cache) == []


def test_limits_that_fit_let_the_download_through(env):
    assert env.run("--max-size", "1M", "--deadline", "30", "--timeout", "5") == 0
    assert sorted(p.name for p in env.to.iterdir()) == ["Beauty.txt", "PROVENANCE.json", "items.tsv"]
