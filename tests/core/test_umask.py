"""Output files follow the user's umask (issue 15): atomic_write's mkstemp would make every file 0600."""
from __future__ import annotations

import os

import pytest

from sracl_ray.manifest import atomic_write, atomic_write_text, current_umask, write_manifest


@pytest.fixture
def umask():
    """Set the process umask for one test, restored after (os.umask is process-wide)."""
    old = os.umask(0o022)
    yield lambda mask: os.umask(mask)
    os.umask(old)


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002])
def test_atomic_write_gives_what_open_would(tmp_path, umask, mask):
    umask(mask)
    assert current_umask() == mask  # read without changing it
    assert current_umask() == mask
    atomic_write_text(tmp_path / "a.txt", "x")
    atomic_write(tmp_path / "b.npy", lambda p: p.write_bytes(b"y"))
    write_manifest(tmp_path / "stage", {"settings": {}})
    with open(tmp_path / "plain.txt", "w") as f:  # what a plain open() makes under this umask
        f.write("z")
    want = 0o666 & ~mask
    assert (tmp_path / "plain.txt").stat().st_mode & 0o777 == want
    for name in ("a.txt", "b.npy", "stage/manifest.json"):
        assert (tmp_path / name).stat().st_mode & 0o777 == want, name


def test_current_umask_falls_back_to_os_umask(tmp_path, umask, monkeypatch):
    import builtins

    umask(0o027)
    real_open = builtins.open

    def no_proc(path, *args, **kwargs):
        if str(path) == "/proc/self/status":
            raise OSError("no /proc here")
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", no_proc)
    assert current_umask() == 0o027
    monkeypatch.undo()
    assert os.umask(0o027) == 0o027  # the fallback restored it


def test_a_failed_write_still_leaves_no_temp_file(tmp_path):
    def fail(p):
        p.write_text("half")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        atomic_write(tmp_path / "c.txt", fail)
    assert list(tmp_path.iterdir()) == []
