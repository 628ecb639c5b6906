"""Typed configs: typos rejected with the nearest name, impossible values named, precedence."""
import time

import pytest

from sracl_ray.config import SEED_MAX, ConfigError, inert_note, inert_settings, load
from sracl_ray.configtools import load_yaml, yaml_key_lines


def test_defaults_match_the_paper():
    cfg = load()
    assert (cfg.cl.alpha, cfg.cl.beta, cfg.cl.k, cfg.cl.temperature, cfg.cl.substitute_prob) == (0.1, 0.1, 10, 1.0, 0.2)
    assert (cfg.model.hidden, cfg.model.layers, cfg.model.heads, cfg.model.dropout) == (64, 2, 2, 0.5)
    assert (cfg.train.batch_size, cfg.train.lr, cfg.train.patience, cfg.data.max_len) == (256, 1e-3, 10, 20)
    assert cfg.eval.mask_history is False


def test_yaml_typo_names_file_line_and_suggestion(tmp_path):
    f = tmp_path / "exp.yaml"
    f.write_text("cl:\n  alpha: 0.2\ntrain:\n  epochs: 3\n  lerning_rate: 0.1\n")
    with pytest.raises(ConfigError, match=r"exp.yaml, line 5: .*unknown key 'lerning_rate'"):
        load(f)
    f.write_text("modle:\n  hidden: 32\n")
    with pytest.raises(ConfigError, match="did you mean 'model'"):
        load(f)


@pytest.mark.parametrize("override, key", [("cl.alpha=-0.1", "cl.alpha"), ("cl.beta=-1", "cl.beta"),
                                           ("cl.k=0", "cl.k"), ("cl.variant=half", "cl.variant"),
                                           ("model.backbone=bert", "model.backbone"),
                                           ("train.metric=test/hr@10", "train.metric"),
                                           ("train.epochs=two", "train.epochs")])
def test_impossible_values_name_the_key(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load(None, [override])


def test_precedence_yaml_then_set_then_sample(tmp_path):
    f = tmp_path / "e.yaml"
    f.write_text("cl:\n  alpha: 0.2\n  beta: 0.3\n")
    cfg = load(f, ["cl.beta=0.4"], {"cl.beta": 0.5, "train.seed": 7})
    assert (cfg.cl.alpha, cfg.cl.beta, cfg.train.seed) == (0.2, 0.5, 7)


def test_invalid_yaml_names_line(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("cl:\n  alpha: [0.1\n")
    with pytest.raises(ConfigError, match="bad.yaml, line"):
        load(f)


def test_pipeline_sections_share_the_file_and_are_still_validated(tmp_path):
    f = tmp_path / "exp.yaml"
    f.write_text("data:\n  max_users: 50\nsummary:\n  backend: raw\n")
    assert load(f).data.max_users == 50  # training ignores the semantic pipeline's sections
    f.write_text("data:\n  max_users: 50\nsummary:\n  backend: raw\n  modle: x\n")
    with pytest.raises(ConfigError, match=r"exp.yaml, line 5: summary: unknown key 'modle'; did you mean 'model'"):
        load(f)


# ---------------------------------------------------------------- hostile YAML (issue 15)


@pytest.mark.parametrize("text, line, first, key", [
    ("train:\n  epochs: 3\ndata:\n  max_users: 5\ntrain:\n  lr: 0.1\n", 5, 1, "train"),  # a second block
    ("train:\n  epochs: 3\n  lr: 0.1\n  epochs: 4\n", 4, 2, "epochs"),  # nested
    ("name: t\nsearch:\n  mode: grid\n  grid: {cl.alpha: [0.1]}\n  grid: {cl.beta: [0.2]}\n", 5, 4, "grid"),
    ("cl: {alpha: 0.1, alpha: 0.2}\n", 1, 1, "alpha"),  # flow style
])
def test_duplicate_keys_at_any_level_name_both_lines(tmp_path, text, line, first, key):
    f = tmp_path / "c.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_yaml(f)
    assert str(e.value) == f"{f}, line {line}: duplicate key '{key}' (first at line {first})"


def test_an_experiment_with_two_grids_is_refused_by_the_sweep_loader(tmp_path):
    from sracl_ray.sweeps.experiment import load_experiment

    f = tmp_path / "exp.yaml"
    f.write_text("name: t\nsearch:\n  mode: grid\n  grid: {cl.alpha: [0.1]}\n  grid: {cl.beta: [0.2]}\n")
    with pytest.raises(ConfigError, match=r"exp\.yaml, line 5: duplicate key 'grid' \(first at line 4\)"):
        load_experiment(f)


def test_a_merge_key_may_still_be_overridden(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("train:\n  <<: {epochs: 2, lr: 0.5}\n  epochs: 3\n")
    assert load(f).train.epochs == 3 and load(f).train.lr == 0.5


BOMB = "a: [x, x]\n" + "".join(f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}]\n" for p, c in zip("abcdefgh", "bcdefghi"))


@pytest.mark.parametrize("text, line", [
    ("a0: &a0 [lol]\n" + BOMB.replace("a: [x, x]\n", "a: &a [x, x]\n") + "data:\n  name: *i\n", 1),
    ("train:\n  epochs: 3\ndata:\n  name: &n beauty\nother: *n\n", 4),
    ("data:\n  name: *nowhere\n", 2),
])
def test_yaml_anchors_and_aliases_are_refused_with_the_line(tmp_path, text, line):
    """The issue's bomb grew data.name to 4.5 GB in 98 s; now the first anchor is an error, at once."""
    f = tmp_path / "c.yaml"
    f.write_text(text)
    start = time.monotonic()
    with pytest.raises(ConfigError) as e:
        load(f)
    assert str(e.value).startswith(f"{f}, line {line}: YAML anchors and aliases") and "refused" in str(e.value)
    assert time.monotonic() - start < 1
    assert yaml_key_lines(f) == {}  # the line finder uses the same loader: no expansion there either


@pytest.mark.parametrize("value", ["&x [*x]", "*x", "&a [1, 2]"])
def test_set_values_with_aliases_are_refused(value):
    with pytest.raises(ConfigError, match=r"--set 'data\.name=.*': YAML anchors and aliases"):
        load(None, [f"data.name={value}"])


def test_an_unparsable_set_value_is_a_config_error():
    with pytest.raises(ConfigError, match=r"--set 'data\.name=\[': not a valid YAML value"):
        load(None, ["data.name=["])


def test_deep_nesting_is_refused_not_a_recursion_error(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("train:\n  lr: " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(ConfigError, match=r"line 2: nested more than 64 levels"):
        load(f)


def test_every_yaml_reader_goes_through_the_config_loader():
    """No module reads a user's YAML with PyYAML's own loaders (duplicate keys, aliases unchecked)."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    calls = re.compile(r"yaml\.(safe_load|load|full_load|unsafe_load|compose|load_all|safe_load_all)\(")
    offenders = [f"{p.relative_to(root)}:{n}" for d in ("sracl_ray", "analysis") for p in (root / d).rglob("*.py")
                 for n, ln in enumerate(p.read_text().splitlines(), 1)
                 if calls.search(ln) and "Loader=ConfigLoader" not in ln]
    assert offenders == []


# ---------------------------------------------------------------- seeds and 64-bit integers


@pytest.mark.parametrize("seed, why", [("99999999999999999999", "out of range"), ("-1", "out of range"),
                                       (str(1 << 63), "out of range")])
def test_out_of_range_seeds_name_the_key(seed, why):
    with pytest.raises(ConfigError, match=r"train\.seed: .*" + why):
        load(None, [f"train.seed={seed}"])


def test_the_largest_seed_accepted_works_with_numpy_and_torch():
    import numpy as np
    import torch

    seed = load(None, [f"train.seed={SEED_MAX}"]).train.seed
    assert seed == (1 << 63) - 1
    np.random.default_rng(seed)
    torch.manual_seed(seed)
    torch.Generator().manual_seed(seed)
    assert load(None, ["train.seed=0"]).train.seed == 0


def test_integers_beyond_64_bits_are_refused_for_every_int_key():
    with pytest.raises(ConfigError, match=r"cl\.k: .*out of range \(a 64-bit integer"):
        load(None, [f"cl.k={1 << 64}"])


# ---------------------------------------------------------------- switches that do nothing


@pytest.mark.parametrize("sets, expected", [
    (["cl.variant=no_cl", "semantic.exclude_same_user=true"], ["semantic.exclude_same_user=true"]),
    (["cl.variant=no_cl", "semantic.normalize=true", "cl.alpha=0.3", "cl.k=5", "cl.cs_form=paper"],
     ["cl.alpha=0.3", "cl.cs_form=paper", "semantic.normalize=true", "cl.k=5"]),
    (["cl.variant=no_cs", "semantic.exclude_same_user=true", "cl.k=5"], ["semantic.exclude_same_user=true"]),
    (["cl.variant=no_is", "cl.substitute_prob=0.5", "semantic.exclude_same_user=true"], ["cl.substitute_prob=0.5"]),
    (["cl.variant=unlearnable", "semantic.normalize=true", "cl.attn_dropout=0.1", "cl.temperature=0.5"],
     ["semantic.normalize=true", "cl.attn_dropout=0.1"]),
    (["cl.alpha=0", "cl.cs_anchor=shared"], ["cl.cs_anchor=shared"]),  # full with L_CS weighted 0
    (["cl.variant=no_cl"], []),  # defaults are never reported
    (["cl.variant=full", "semantic.exclude_same_user=true", "semantic.normalize=true", "cl.k=5"], []),
])
def test_settings_that_do_nothing_for_the_variant_are_noted(sets, expected):
    cfg = load(None, sets)
    assert inert_settings(cfg) == expected
    note = inert_note(cfg)
    assert (note is None) == (not expected)
    if expected:
        assert "\n" not in note and all(s in note for s in expected) and f"cl.variant={cfg.cl.variant}" in note


def test_the_inert_note_says_which_losses_train():
    note = inert_note(load(None, ["cl.variant=no_cl", "semantic.exclude_same_user=true"]))
    assert note == ("cl.variant=no_cl (alpha=0, beta=0) trains with neither L_CS nor L_IS: "
                    "semantic.exclude_same_user=true has no effect")


@pytest.mark.parametrize("sets, bad", [
    (["model.backbone=gru4rec", "model.heads=4"], "model.heads"),
    (["model.backbone=gru4rec", "model.layers=3"], "model.layers"),
    (["model.backbone=gru4rec", "model.ff=128"], "model.ff"),
    (["model.backbone=gru4rec", "model.ln_eps=1e-6"], "model.ln_eps"),
    (["model.backbone=gru4rec", "model.attn_dropout=0.2"], "model.attn_dropout"),
    (["model.backbone=sasrec", "model.duorec_lambda=0.3"], "model.duorec_lambda"),
])
def test_model_settings_the_backbone_does_not_read_are_errors(sets, bad):
    from sracl_ray.config import load

    with pytest.raises(ConfigError, match=rf"{bad}: model.backbone=\w+ does not use it"):
        load(None, sets)


def test_each_backbone_accepts_the_settings_it_reads():
    from sracl_ray.config import BACKBONE_SETTINGS, BACKBONES, load

    assert set(BACKBONE_SETTINGS) == set(BACKBONES)
    load(None, ["model.backbone=gru4rec", "model.hidden=32", "model.dropout=0.2"])
    load(None, ["model.backbone=duorec", "model.duorec_tau=0.5", "model.heads=4"])
