"""code_version: git in a checkout, else the build record `sracl-ray version --write` leaves for the
cluster nodes (which get the checkout without .git/ and install it non-editable), else bare."""
from __future__ import annotations

import logging
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import sracl_ray
from sracl_ray import version as V
from sracl_ray.cli import main

REPO = Path(__file__).resolve().parents[2]
BARE = sracl_ray.__version__


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(cwd), *args], check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def checkout(tmp_path) -> Path:
    """A git checkout of a copy of the package (one commit), as a user's clone is."""
    root = tmp_path / "checkout"
    shutil.copytree(REPO / V.PACKAGE, root / V.PACKAGE,
                    ignore=shutil.ignore_patterns("__pycache__", V.RECORD_FILENAME))
    for name in ("pyproject.toml", "README.md", ".gitignore"):
        shutil.copy(REPO / name, root / name)
    shutil.copytree(REPO / "analysis", root / "analysis", ignore=shutil.ignore_patterns("__pycache__"))
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "c1")
    return root


def rsync_copy(checkout: Path, dest: Path) -> Path:
    """What `ray up` puts on a node: the checkout without .git/ (cluster.yaml rsync_exclude)."""
    shutil.copytree(checkout, dest, ignore=shutil.ignore_patterns(".git", "__pycache__"))
    return dest


def test_version_in_a_checkout_is_gits(checkout):
    sha = git(checkout, "rev-parse", "--short", "HEAD")
    assert V.version_of(checkout / V.PACKAGE) == f"{BARE}+{sha}"
    (checkout / V.PACKAGE / "config.py").write_text("# edited\n", encoding="utf-8")
    assert V.version_of(checkout / V.PACKAGE) == f"{BARE}+{sha}.dirty"


def test_written_record_is_what_git_says_and_serves_a_copy_without_git(checkout, tmp_path, monkeypatch, capsys):
    sha = git(checkout, "rev-parse", "--short", "HEAD")
    monkeypatch.chdir(checkout)
    assert main(["version", "--write"]) == 0  # as README runs it: in the checkout, no arguments
    record = checkout / V.PACKAGE / V.RECORD_FILENAME
    assert capsys.readouterr().out.strip() == f"wrote {record}: {BARE}+{sha}"
    import json

    assert json.loads(record.read_text()) == {"commit": sha, "dirty": False,
                                              "sources_sha256": V.sources_hash(checkout / V.PACKAGE)}
    assert git(checkout, "status", "--porcelain") == ""  # gitignored: writing it dirties nothing
    node = rsync_copy(checkout, tmp_path / "node")
    assert not (node / ".git").exists()
    assert V.version_of(node / V.PACKAGE) == f"{BARE}+{sha}"
    (record).unlink()
    assert V.version_of(rsync_copy(checkout, tmp_path / "node2") / V.PACKAGE) == BARE  # no record: bare


def test_record_of_a_dirty_tree_and_code_changed_after_it_read_dirty(checkout, tmp_path, caplog):
    sha = git(checkout, "rev-parse", "--short", "HEAD")
    (checkout / V.PACKAGE / "errors.py").write_text("# edited before --write\n", encoding="utf-8")
    _, written = V.write_record(checkout)
    assert written == f"{BARE}+{sha}.dirty"
    assert V.version_of(rsync_copy(checkout, tmp_path / "a") / V.PACKAGE) == f"{BARE}+{sha}.dirty"

    git(checkout, "checkout", "--", ".")
    V.write_record(checkout)  # clean now; then an edit after --write (a forgotten rerun before ray up)
    node = rsync_copy(checkout, tmp_path / "b")
    (node / V.PACKAGE / "storage.py").write_text("# edited after --write\n", encoding="utf-8")
    caplog.set_level(logging.WARNING, logger="sracl_ray.version")
    assert V.version_of(node / V.PACKAGE) == f"{BARE}+{sha}.dirty"
    assert "differs from it" in caplog.text and "version --write" in caplog.text


def test_git_wins_over_a_stale_record_in_a_checkout(checkout):
    V.write_record(checkout)
    (checkout / V.PACKAGE / "config.py").write_text("# next commit\n", encoding="utf-8")
    git(checkout, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-am", "c2")
    sha2 = git(checkout, "rev-parse", "--short", "HEAD")
    assert V.version_of(checkout / V.PACKAGE) == f"{BARE}+{sha2}"  # the record names c1: ignored


def test_a_package_inside_another_checkout_is_not_that_checkouts_code(checkout, tmp_path):
    """A non-editable install into a venv inside some clone must not report the clone's commit."""
    site = checkout / ".venv" / "site-packages"
    shutil.copytree(checkout / V.PACKAGE, site / V.PACKAGE)
    assert V.version_of(site / V.PACKAGE) == BARE


def test_write_outside_a_checkout_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["version", "--write"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("sracl-ray: error: version --write:") and "not the top of a git checkout" in err
    assert "\n" not in err


def test_code_version_is_looked_up_once_per_process(monkeypatch):
    calls = []
    real = V._git
    monkeypatch.setattr(V, "_git", lambda *a: calls.append(a) or real(*a))
    V.code_version.cache_clear()
    try:
        first = V.code_version()
        n = len(calls)
        assert n >= 1 and first.startswith(BARE)
        assert V.code_version() == first and len(calls) == n  # cached: git not asked again
        from sracl_ray.manifest import code_version as from_manifest

        assert from_manifest is V.code_version  # one implementation, re-exported where stages import it
    finally:
        V.code_version.cache_clear()


def test_installed_non_editable_from_the_copy_reports_the_recorded_commit(checkout, tmp_path):
    """The cluster path end to end: --write, the rsync copy, `pip install DIR` (cluster.yaml
    setup_commands, non-editable: BUILD_VERSION travels as package data), then code_version."""
    sha = git(checkout, "rev-parse", "--short", "HEAD")
    V.write_record(checkout)
    node = rsync_copy(checkout, tmp_path / "home-ray-sracl-ray")
    target = tmp_path / "site"
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                          "--no-cache-dir", "--target", str(target), str(node)], check=False,
                         capture_output=True, text=True, timeout=300)
    assert pip.returncode == 0, pip.stderr[-2000:]
    assert (target / V.PACKAGE / V.RECORD_FILENAME).is_file()
    out = subprocess.run([sys.executable, "-c", "from sracl_ray.version import code_version; print(code_version())"], check=False,
                         capture_output=True, text=True, timeout=60, cwd=tmp_path,
                         env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == f"{BARE}+{sha}"
