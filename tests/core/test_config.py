"""Typed configs: typos rejected with the nearest name, impossible values named, precedence."""
import pytest

from sracl_ray.config import ConfigError, load


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
