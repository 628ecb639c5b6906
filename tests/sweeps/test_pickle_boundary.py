"""The pickle boundary: `sweep resume` refuses Tune state that someone else could have written.

Ray Tune unpickles tune/tuner.pkl, searcher-state-*.pkl and the cloudpickled parts of
experiment_state-*.json on restore.  A planted pickle here would run code as whoever resumes, so
resume checks owner and mode of every file and dir there first (as ssh does for a key).
"""
from __future__ import annotations

import os
import pickle
import re
from pathlib import Path

import pytest

from sracl_ray import cli
from sracl_ray.config import ConfigError
from sracl_ray.sweeps import experiment as E
from sracl_ray.sweeps import runner
from sracl_ray.sweeps.state_guard import check_private, check_private_file


class Planted:
    """Unpickling this writes a marker file: stands in for an attacker's payload."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "pwned"))


def make_sweep(tmp_path: Path) -> tuple[Path, Path]:
    """A private storage dir with a spec and Tune state files; returns (storage, marker path)."""
    storage = tmp_path / "sweep"
    tune = storage / runner.TUNE_DIRNAME
    (tune / "trial_0").mkdir(parents=True)
    runner.write_spec(storage, E.from_dict({"name": "pk", "search": {"mode": "grid",
                                                                      "grid": {"train.seed": [1]}}}), False)
    marker = tmp_path / "marker"
    (tune / "tuner.pkl").write_bytes(pickle.dumps(Planted(marker)))
    (tune / "searcher-state-2026.pkl").write_bytes(pickle.dumps({"x": 1}))
    (tune / "experiment_state-2026.json").write_text("{}")
    (tune / "trial_0" / "params.pkl").write_bytes(pickle.dumps({}))
    for p in [storage, *storage.rglob("*")]:
        os.chmod(p, 0o755 if p.is_dir() else 0o644)
    return storage, marker


def test_a_private_sweep_dir_passes(tmp_path):
    storage, _ = make_sweep(tmp_path)
    check_private(storage / "tune")
    check_private_file(storage / "tune" / "tuner.pkl")
    # a sticky, group-writable dir (like /tmp) cannot have others' files swapped in: allowed
    os.chmod(storage / "tune" / "trial_0", 0o1777)
    check_private(storage / "tune")
    check_private(storage / "no-tune-yet")  # nothing to unpickle: the caller reports it


@pytest.mark.parametrize("rel, mode, why", [
    ("tune/tuner.pkl", 0o664, "writable by group or others (mode 0664)"),
    ("tune/searcher-state-2026.pkl", 0o646, "writable by group or others (mode 0646)"),
    ("tune/experiment_state-2026.json", 0o666, "mode 0666"),  # holds cloudpickled objects too
    ("tune/trial_0/params.pkl", 0o620, "mode 0620"),
    ("tune", 0o775, "a dir writable by group or others (mode 0775)"),
    ("tune/trial_0", 0o757, "a dir writable by group or others (mode 0757)"),
    (".", 0o777, "a dir writable by group or others (mode 0777)"),  # the storage dir: tune/ can be swapped
])
def test_group_or_other_writable_state_is_refused(tmp_path, rel, mode, why):
    storage, _ = make_sweep(tmp_path)
    target = (storage / rel).resolve()
    os.chmod(target, mode)
    with pytest.raises(ConfigError) as e:
        check_private(storage / "tune")
    msg = str(e.value)
    assert str(target) in msg and why in msg and "\n" not in msg
    assert "unpickles" in msg and "chmod -R go-w" in msg


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
@pytest.mark.parametrize("rel", ["tune/tuner.pkl", "tune/trial_0/params.pkl", "tune"])
def test_state_owned_by_someone_else_is_refused(tmp_path, rel):
    storage, _ = make_sweep(tmp_path)
    os.chown(storage / rel, 4242, 4242)
    with pytest.raises(ConfigError, match=rf"{re.escape(str(storage / rel))} is (a dir )?owned by uid 4242.*not you"):
        check_private(storage / "tune")


def test_resume_refuses_a_planted_pickle_before_unpickling_it(tmp_path, capsys):
    storage, marker = make_sweep(tmp_path)
    os.chmod(storage / "tune" / "tuner.pkl", 0o666)
    rc = cli.main(["sweep", "resume", str(storage)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("sracl-ray: error: refusing to resume")
    assert str(storage / "tune" / "tuner.pkl") in err[0] and "mode 0666" in err[0]
    assert not marker.exists()  # the payload never ran


def test_resume_calls_the_guard_before_tune_reads_anything(tmp_path, monkeypatch):
    storage, marker = make_sweep(tmp_path)
    os.chmod(storage / "tune", 0o777)
    from ray import tune

    def boom(*a, **k):  # pragma: no cover - must not be reached
        raise AssertionError("Tune touched the state before the guard")

    monkeypatch.setattr(tune.Tuner, "can_restore", boom)
    monkeypatch.setattr(tune.Tuner, "restore", boom)
    with pytest.raises(ConfigError, match="mode 0777"):
        runner.resume_sweep(storage)
    assert not marker.exists()
