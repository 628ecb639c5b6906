"""Experiment files are validated completely before any trial starts."""
from __future__ import annotations

from pathlib import Path

import pytest

from sracl_ray.config import ConfigError
from sracl_ray.sweeps import experiment as E

REPO = Path(__file__).resolve().parents[2]
GOOD = """\
name: t
base:
  data: {max_users: 30}
  train: {epochs: 2}
search:
  mode: grid
  grid:
    cl.variant: [full, no_cl]
    train.seed: [1, 2, 3]
metric: valid/ndcg@20
resources: {cpus: 1, gpus: 0.25}
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "exp.yaml"
    p.write_text(text)
    return p


def test_good_file_and_grid(tmp_path):
    exp = E.load_experiment(write(tmp_path, GOOD))
    points = E.grid_points(exp.search)
    assert len(points) == 6 and points[0] == {"cl.variant": "full", "train.seed": 1}
    assert exp.resources.gpus == 0.25
    cfg = E.trial_config(E.C.to_dict(exp.base_config()), points[-1])
    assert (cfg.cl.variant, cfg.train.seed, cfg.data.max_users, cfg.train.epochs) == ("no_cl", 3, 30, 2)


@pytest.mark.parametrize("old,new,expect", [
    ("train: {epochs: 2}", "train: {epochs: 2, sead: 1}", r"line 4: .*base\.train: unknown key 'sead'; did you mean 'seed'"),
    ("train: {epochs: 2}", "train: {epochs: 0}", r"base\.train\.epochs: must be >= 1"),
    ("search:", "serach:", r"line 5: unknown key 'serach'; did you mean 'search'"),
    ("cl.variant: [full, no_cl]", "cl.varaint: [full, no_cl]", r"line 8: search\.grid\.cl\.varaint: .*did you mean 'cl\.variant'"),
    ("cl.variant: [full, no_cl]", "cl.variant: [full, no_ci]", r"search\.grid point .*no_ci.*cl\.variant: must be one of"),
    ("cl.variant: [full, no_cl]", "cl.alpha: [0.1, -0.5]", r"cl\.alpha: must be >= 0"),
    ("cl.variant: [full, no_cl]", "cl.variant: []", r"search\.grid\.cl\.variant: expected a non-empty list"),
    ("metric: valid/ndcg@20", "metric: test/ndcg@20", r"line 10: metric: must be a validation metric .*never tune or select on test"),
    ("resources: {cpus: 1, gpus: 0.25}", "resources: {cpus: 0, gpus: 0.25}", r"resources\.cpus: must be > 0"),
    ("resources: {cpus: 1, gpus: 0.25}", "resources: {cpus: 1, gpus: 1.5}", r"resources\.gpus: must be a fraction"),
    ("resources: {cpus: 1, gpus: 0.25}", "resources: {cpu: 1}", r"resources: unknown key 'cpu'; did you mean 'cpus'"),
    ("mode: grid", "mode: random", r"search\.mode: must be grid or optuna"),
    ("name: t", "name: a b", r"name: needs a name"),
])
def test_rejects_before_any_trial(tmp_path, old, new, expect):
    assert old in GOOD
    path = write(tmp_path, GOOD.replace(old, new))
    with pytest.raises(ConfigError, match=expect) as e:
        E.load_experiment(path)
    assert str(path) in str(e.value)  # the message names the file


def test_optuna_space_checks(tmp_path):
    base = GOOD.split("search:")[0]
    ok = base + ("search:\n  mode: optuna\n  num_samples: 4\n  space:\n"
                 "    cl.alpha: {type: loguniform, low: 0.01, high: 1.0}\n    cl.k: {type: choice, values: [5, 10]}\n")
    exp = E.load_experiment(write(tmp_path, ok))
    assert exp.search.mode == "optuna" and exp.search.num_samples == 4
    for bad, expect in [("low: 0.01, high: 1.0", "low: 1.0, high: 0.5"), ("type: loguniform", "type: lognormal")]:
        with pytest.raises(ConfigError):
            E.load_experiment(write(tmp_path, ok.replace(bad, expect)))
    with pytest.raises(ConfigError, match="low > 0"):
        E.load_experiment(write(tmp_path, ok.replace("low: 0.01", "low: 0")))
    with pytest.raises(ConfigError, match="only be searched with type choice"):
        E.load_experiment(write(tmp_path, ok.replace("cl.alpha:", "data.max_users:").replace(
            "loguniform, low: 0.01, high: 1.0", "randint, low: 10, high: 50")))
    with pytest.raises(ConfigError, match=r"cl\.k: .*value 0: .*cl\.k: must be >= 1"):
        E.load_experiment(write(tmp_path, ok.replace("values: [5, 10]", "values: [0, 10]")))


def test_set_overrides_apply_to_base(tmp_path):
    exp = E.load_experiment(write(tmp_path, GOOD), ["train.epochs=7"])
    assert exp.base_config().train.epochs == 7
    with pytest.raises(ConfigError, match="epoch"):
        E.load_experiment(write(tmp_path, GOOD), ["train.epoch=7"])


def test_prepare_groups_one_per_data_section(tmp_path):
    exp = E.load_experiment(write(tmp_path, GOOD.replace("train.seed: [1, 2, 3]", "data.max_users: [20, 30]")))
    groups = E.prepare_groups(exp)
    assert sorted(c.data.max_users for c in groups.values()) == [20, 30]
    assert all(c.cl.variant == "full" for c in groups.values())  # the representative needs the artifact


def test_every_experiment_file_is_valid_and_shrinks():
    from sracl_ray.sweeps.reproduce import experiment_files

    files = experiment_files(REPO / "experiments")  # plain config files (sracl-ray train --config) are skipped
    names = {f.stem for f in files}
    assert {"main", "ablation", "attribution", "model_agnostic", "alpha_grid", "beta_grid", "k_grid", "smoke"} <= names
    for f in files:
        text = f.read_text()
        assert text.startswith("#") and "Run:" in text, f"{f.name}: header must say how to run it"
        exp = E.load_experiment(f)
        assert exp.metric.startswith("valid/")
        small = E.shrink_for_smoke(exp)
        n = len(E.grid_points(small.search)) if small.search.mode == "grid" else small.search.num_samples
        assert n == 2, f.name
        cfg = small.base_config()
        assert cfg.data.path is None and cfg.data.max_users == 60 and cfg.train.epochs == 2
    ablation = E.load_experiment(REPO / "experiments" / "ablation.yaml")
    assert set(ablation.search.grid["cl.variant"]) == {"full", "no_cl", "no_cs", "no_is", "unlearnable"}
    assert len(ablation.search.grid["train.seed"]) == 5
