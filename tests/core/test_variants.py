"""sracl_ray/variants.py is the one place of a variant: config, training and analysis read it."""
import pytest

from sracl_ray import config as C, variants as V


def test_variant_table_matches_the_paper():
    assert V.TABLE_ORDER == ("no_cl", "no_cs", "no_is", "unlearnable", "self_view", "full")
    assert C.VARIANTS == V.NAMES and V.NAMES[0] == V.METHOD == "full" and V.BASELINE == "no_cl"
    assert V.ABLATIONS == ("no_cs", "no_is", "unlearnable", "self_view")
    trains = {n: (v.cs, v.is_) for n, v in V.VARIANTS.items()}
    assert trains == {"no_cl": (False, False), "no_cs": (False, True), "no_is": (True, False),
                      "unlearnable": (True, True), "self_view": (True, True), "full": (True, True)}
    assert [n for n, v in V.VARIANTS.items() if v.learned_mix] == ["no_is", "full"]
    assert [n for n, v in V.VARIANTS.items() if v.reads_unit_neighbours] == ["no_is", "unlearnable", "full"]
    with pytest.raises(ValueError, match="unknown variant 'nope'"):
        V.get("nope")


@pytest.mark.parametrize("name", V.NAMES)
def test_every_reader_follows_the_variant(name):
    """Loss weights, the inert-settings note, the synthesis head and the analysis hyperparameters all
    follow the variant's flags, so a new variant needs only its line in variants.py."""
    import torch

    from analysis.methods import NEIGHBOUR_VARIANTS, VARIANT_HPARAMS, VARIANT_LABELS
    from sracl_ray.training.fit import build_modules

    v = V.get(name)
    cfg = C.from_dict({"cl": {"variant": name, "alpha": 0.3, "beta": 0.4, "k": 7},
                       "semantic": {"exclude_same_user": True}})
    assert C.loss_weights(cfg.cl) == ((0.3 if v.cs else 0.0), (0.4 if v.is_ else 0.0))
    inert = {s.split("=")[0] for s in C.inert_settings(cfg)}
    assert ("cl.alpha" in inert) == (not v.cs) and ("cl.beta" in inert) == (not v.is_)
    assert ("cl.k" in inert) == (not v.uses_cl)
    assert VARIANT_HPARAMS[name] == v.hparams and VARIANT_LABELS[name] == v.label
    assert (name in NEIGHBOUR_VARIANTS) == v.reads_unit_neighbours
    assert ("semantic.exclude_same_user" in inert) == (not v.reads_unit_neighbours)

    class P:  # what build_modules reads of the prepared inputs
        class split:
            n_items, max_len = 5, 4

    class D:
        sem_dim = 8

    modules = build_modules(cfg, P, D, torch.device("cpu"))
    assert ("synth" in modules) == (v.cs and v.learned_mix)
