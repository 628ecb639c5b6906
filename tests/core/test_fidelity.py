"""Release-fidelity switches (docs/FIDELITY.md), each against a naive per-sample loop.

cl.cs_form (release: 2N NT-Xent | paper: Eq. 10), cl.cs_anchor (reencode | shared),
semantic.normalize (raw encoder outputs | unit vectors into the synthesis head),
train.ce_padding (exclude | include column 0), DuoRec's same-target partner (never itself when
another exists) and semantic.exclude_same_user (L_CS pools without the user's own units).
"""
import logging
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sracl_ray import config as C
from sracl_ray.config import ConfigError, load
from sracl_ray.semantic.artifact import ArtifactError
from sracl_ray.models.sracl import cs_loss
from sracl_ray.semantic.artifact import SemanticArtifact, load_artifact, save_artifact
from sracl_ray.semantic.units import build_units, unit_histories
from sracl_ray.training.fit import build_modules
from sracl_ray.training.inputs import DeviceData, prepare_inputs
from sracl_ray.training.step import same_target_partner, step_losses

CPU = torch.device("cpu")
REPO = Path(__file__).resolve().parents[2]


def naive_info_nce(a, p, tau=1.0):
    """Eq. 10: row i against p_i, the other rows' p_j its negatives."""
    a, p, total = a.detach(), p.detach(), 0.0
    for i in range(len(a)):
        logits = [float(a[i] @ p[j]) / tau for j in range(len(a))]
        total += -logits[i] + math.log(sum(math.exp(x) for x in logits))
    return total / len(a)


def naive_nt_xent(z1, z2, tau=1.0):
    """The release's `utils.info_nce` + CE: 2N rows, partner positive, the other 2N-2 negatives."""
    z = torch.cat([z1, z2]).detach().double()
    n, total = len(z1), 0.0
    for i in range(2 * n):
        partner = (i + n) % (2 * n)
        pos = float(z[i] @ z[partner]) / tau
        negs = [float(z[i] @ z[j]) / tau for j in range(2 * n) if j not in (i, partner)]
        total += -pos + math.log(math.exp(pos) + sum(math.exp(x) for x in negs))
    return total / (2 * n)


def naive_ce(h, emb, target, exclude_padding):
    """Mean over rows of -s_t + log sum exp(s) over items 1..n (exclude) or 0..n (include)."""
    total = 0.0
    for i in range(len(h)):
        s = [float(h[i] @ emb[j]) for j in range(len(emb))]
        cols = s[1:] if exclude_padding else s
        m = max(cols)
        total += -s[int(target[i])] + m + math.log(sum(math.exp(x - m) for x in cols))
    return total / len(h)


def naive_weights(synth, sem_u, sem_nb):
    """p_uj = softmax_j LeakyReLU(a^T [W x_u || W x_j]) (Eqs. 7-8), one sample and neighbour at a time."""
    W, a = synth.W.weight.double(), synth.a.squeeze(1).double()
    out = []
    for u, nbs in zip(sem_u, sem_nb):
        w = [F.leaky_relu(a @ torch.cat([W @ u, W @ v]), 0.2) for v in nbs]
        out.append(torch.softmax(torch.stack(w), 0))
    return torch.stack(out)


@pytest.fixture(scope="module")
def normed(small_sample, tmp_path_factory):
    """(config overrides, Prepared, raw norms) for the small sample's artifact plus a unit_norm.npy."""
    src = next(s.split("=", 1)[1] for s in small_sample if s.startswith("semantic.artifact="))
    art = load_artifact(src)
    norm = np.random.default_rng(5).uniform(3.0, 30.0, len(art.unit_emb)).astype(np.float32)
    out = tmp_path_factory.mktemp("normed")
    save_artifact(out, SemanticArtifact(**{**art.__dict__, "unit_norm": norm}))
    sets = [s for s in small_sample if not s.startswith("semantic.artifact=")] + [f"semantic.artifact={out}"]
    return sets, prepare_inputs(load(None, sets)), norm


def test_defaults_are_the_release_and_bad_values_name_the_key():
    cfg = load(None, [])
    assert (cfg.cl.cs_form, cfg.cl.cs_anchor, cfg.semantic.normalize, cfg.train.ce_padding,
            cfg.semantic.exclude_same_user) == ("release", "reencode", False, "exclude", False)
    for key, bad in (("cl.cs_form", "eq10"), ("cl.cs_anchor", "same"), ("train.ce_padding", "drop")):
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            load(None, [f"{key}={bad}"])


@pytest.mark.parametrize("form,naive", [("release", naive_nt_xent), ("paper", naive_info_nce)])
def test_cs_forms_match_loops(form, naive):
    torch.manual_seed(1)
    h, h_nb, p = torch.randn(5, 4), torch.randn(5, 3, 4), torch.softmax(torch.randn(5, 3), 1)
    pos = torch.stack([sum(p[i, j] * h_nb[i, j] for j in range(3)) for i in range(5)])
    for tau in (1.0, 0.5):
        assert float(cs_loss(h, h_nb, p, tau, form)) == pytest.approx(naive(h, pos, tau), rel=1e-5)
    with pytest.raises(ValueError, match="cs_form"):
        cs_loss(h, h_nb, p, 1.0, "other")


@pytest.mark.parametrize("padding", ["exclude", "include"])
def test_rec_loss_padding_column(padding):
    from sracl_ray.models.sasrec import SASRec

    m = SASRec(9, 5, hidden=4, layers=1, heads=1, ff=8)
    h, target = torch.randn(6, 4), torch.randint(1, 10, (6,))
    got = float(m.rec_loss(h, target, exclude_padding=padding == "exclude").detach())
    assert got == pytest.approx(naive_ce(h, m.item_emb.weight.detach(), target, padding == "exclude"), rel=1e-5)


@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("padding", ["exclude", "include"])
@pytest.mark.parametrize("anchor", ["reencode", "shared"])
@pytest.mark.parametrize("form", ["release", "paper"])
def test_step_losses_match_naive_loops(normed, form, anchor, padding, normalize):
    """Every switch at once: what step_losses encodes (checked row by row) and the losses it forms
    from those encodings (recomputed with per-sample loops)."""
    sets, prep, norm = normed
    cfg = load(None, sets + [f"cl.cs_form={form}", f"cl.cs_anchor={anchor}", f"train.ce_padding={padding}",
                             f"semantic.normalize={str(normalize).lower()}", "cl.attn_dropout=0",
                             "train.length_buckets=1"])
    dd = DeviceData(prep, cfg, CPU)
    torch.manual_seed(0)
    modules = build_modules(cfg, prep, dd, CPU)
    model, synth = modules["model"].train(), modules["synth"].train()  # dropout on: two passes differ
    seen = []
    encode = model.encode
    model.encode = lambda x: seen.append((x, encode(x))) or seen[-1][1]
    b, k = 12, cfg.cl.k
    idx = torch.arange(20, 20 + b)
    out = step_losses(model, synth, dd, idx, cfg, torch.Generator().manual_seed(3))
    (x, h_all), = seen
    art, sp = prep.semantic, prep.split
    width = x.shape[1]
    unit_hist = unit_histories(sp, build_units(sp, "prefix"))
    hist = sp.sample_hist[idx.numpy()]
    nbrs = art.unit_nbrs[idx.numpy(), :k]  # prefix units: unit i = sample i
    blocks = [hist] + ([hist] if anchor == "reencode" else []) + [unit_hist[nbrs].reshape(b * k, -1)]
    expect = np.concatenate(blocks)[:, -width:]
    assert np.array_equal(x[:len(expect)].numpy(), expect)
    assert len(x) == len(expect) + 2 * b  # + the two L_IS views
    h = h_all[:b].detach().double()
    anchor_h = h_all[b:2 * b].detach().double() if anchor == "reencode" else h
    if anchor == "reencode":
        assert not torch.allclose(anchor_h, h)  # its own dropout mask
    pos = len(blocks[0]) * (2 if anchor == "reencode" else 1)
    h_nb = h_all[pos:pos + b * k].detach().double().view(b, k, -1)
    v1, v2 = h_all[pos + b * k:pos + b * k + b].detach(), h_all[pos + b * k + b:].detach()
    scale = np.ones(len(art.unit_emb), np.float32) if normalize else norm
    sem = torch.as_tensor(art.unit_emb * scale[:, None]).double()
    p = naive_weights(synth, sem[idx], sem[torch.as_tensor(nbrs)])
    pos_h = torch.stack([sum(p[i, j] * h_nb[i, j] for j in range(k)) for i in range(b)])
    rec = naive_ce(h, model.item_emb.weight.detach().double(), sp.sample_target[idx.numpy()], padding == "exclude")
    cs = (naive_nt_xent if form == "release" else naive_info_nce)(anchor_h, pos_h)
    is_ = naive_nt_xent(v1, v2)
    got = {name: float(getattr(out, name).detach()) for name in ("rec", "cs", "is_", "total")}
    assert got["rec"] == pytest.approx(rec, rel=1e-4)
    assert got["cs"] == pytest.approx(cs, rel=1e-4)
    assert got["is_"] == pytest.approx(is_, rel=1e-4)
    assert got["total"] == pytest.approx(rec + cfg.cl.alpha * cs + cfg.cl.beta * is_, rel=1e-4)


def test_reencode_equals_shared_without_dropout(normed):
    """With every dropout off the anchor's own pass is the L_Rec pass: the two anchors agree."""
    sets, prep, _ = normed
    got = []
    for anchor in ("reencode", "shared"):
        cfg = load(None, sets + [f"cl.cs_anchor={anchor}", "model.dropout=0", "model.attn_dropout=0",
                                 "cl.attn_dropout=0"])
        dd = DeviceData(prep, cfg, CPU)
        torch.manual_seed(0)
        modules = build_modules(cfg, prep, dd, CPU)
        got.append(float(step_losses(modules["model"], modules["synth"], dd, torch.arange(32), cfg,
                                     torch.Generator().manual_seed(3)).cs.detach()))
    assert got[0] == pytest.approx(got[1], rel=1e-5)


NO_DROPOUT = ["model.dropout=0", "model.attn_dropout=0", "cl.attn_dropout=0"]


def test_self_view_contrasts_the_anchor_with_its_own_second_view(normed):
    """cl.variant=self_view (issue 18's dropout-view control): L_CS's positive is one more encoder pass
    of the sample itself, no neighbour and no synthesis head.  Without dropout the two views are equal,
    so L_CS is the loss of identical pairs; with dropout it differs from it."""
    from sracl_ray.models.sracl import cs_loss

    sets, prep, _ = normed
    idx = torch.arange(32)
    for extra, identical in ((NO_DROPOUT, True), ([], False)):
        cfg = load(None, sets + ["cl.variant=self_view", *extra])
        dd = DeviceData(prep, cfg, CPU)
        torch.manual_seed(0)
        modules = build_modules(cfg, prep, dd, CPU)
        assert "synth" not in modules
        out = step_losses(modules["model"], None, dd, idx, cfg, torch.Generator().manual_seed(3))
        assert out.cs is not None and out.is_ is not None
        h = modules["model"].encode(dd.hist[idx])
        same = cs_loss(h, h[:, None, :], torch.ones(len(idx), 1), cfg.cl.temperature, cfg.cl.cs_form)
        if identical:
            assert float(out.cs.detach()) == pytest.approx(float(same.detach()), rel=1e-4)
        else:
            assert abs(float(out.cs.detach()) - float(same.detach())) > 1e-4


def reference_batch(prep, cfg, idx):
    """The reference trainer's collated batch of samples idx (its per-sample Dataset)."""
    from torch.utils.data import default_collate

    from sracl_ray.training.reference import ReferenceDataset

    ds = ReferenceDataset(prep, cfg.cl.k, cfg.cl.substitute_prob, 0)
    return default_collate([ds[i] for i in idx.tolist()])


@pytest.mark.parametrize("form,anchor,padding,normalize", [("release", "reencode", "exclude", False),
                                                           ("paper", "shared", "include", True)])
def test_reference_loss_equals_step_losses(normed, form, anchor, padding, normalize):
    """The benchmark's reference trainer forms the same loss as step_losses, switch for switch
    (no dropout and no substitution, so both see the same encodings)."""
    from sracl_ray.training.inputs import synthesis_inputs
    from sracl_ray.training.reference import reference_loss

    sets, prep, _ = normed
    cfg = load(None, sets + NO_DROPOUT + [f"cl.cs_form={form}", f"cl.cs_anchor={anchor}",
                                          f"train.ce_padding={padding}", f"semantic.normalize={str(normalize).lower()}",
                                          "cl.substitute_prob=0"])
    dd = DeviceData(prep, cfg, CPU)
    torch.manual_seed(0)
    modules = build_modules(cfg, prep, dd, CPU)
    idx = torch.arange(20, 32)
    want = step_losses(modules["model"], modules["synth"], dd, idx, cfg, torch.Generator().manual_seed(3))
    unit_emb = torch.as_tensor(synthesis_inputs(prep.semantic, normalize))
    got = reference_loss(modules, reference_batch(prep, cfg, idx), unit_emb, cfg)
    assert float(got.detach()) == pytest.approx(float(want.total.detach()), rel=1e-4)


@pytest.mark.parametrize("anchor", ["reencode", "shared"])
def test_reference_anchor_follows_cs_anchor(normed, anchor, monkeypatch):
    """reencode: the reference's L_CS anchor is its own encoder call (own dropout mask); shared: the L_Rec h."""
    from sracl_ray.training import reference

    sets, prep, _ = normed
    cfg = load(None, sets + [f"cl.cs_anchor={anchor}", "cl.cs_form=paper"])
    dd = DeviceData(prep, cfg, CPU)
    torch.manual_seed(0)
    modules = build_modules(cfg, prep, dd, CPU)
    model = modules["model"].train()
    seen, cs_args = [], []
    encode, rec_loss, cs = model.encode, model.rec_loss, reference.cs_loss
    model.encode = lambda x: seen.append(x) or encode(x)
    model.rec_loss = lambda h, *a, **kw: seen.append(("rec", h)) or rec_loss(h, *a, **kw)
    monkeypatch.setattr(reference, "cs_loss", lambda *a: cs_args.append(a) or cs(*a))
    batch = reference_batch(prep, cfg, torch.arange(12))
    reference.reference_loss(modules, batch, dd.unit_emb, cfg)
    (anchor_h, _, _, _, form), = cs_args
    rec_h = next(x[1] for x in seen if isinstance(x, tuple))
    hist_calls = [x for x in seen if x is batch[0]]  # encoder calls on the batch itself
    assert form == "paper"
    if anchor == "reencode":
        assert len(hist_calls) == 2 and anchor_h is not rec_h and not torch.allclose(anchor_h, rec_h)
    else:
        assert len(hist_calls) == 1 and anchor_h is rec_h


def test_reference_steps_feed_the_synthesis_inputs(normed, monkeypatch):
    """reference_steps hands the head what DeviceData does: unit_emb x unit_norm under normalize=false."""
    from sracl_ray.training import reference

    sets, prep, norm = normed
    cfg = load(None, sets + ["semantic.normalize=false", "train.batch_size=16"])
    dd = DeviceData(prep, cfg, CPU)
    modules = build_modules(cfg, prep, dd, CPU)
    got = []
    real = reference.reference_loss
    monkeypatch.setattr(reference, "reference_loss", lambda m, b, u, c: got.append(u) or real(m, b, u, c))
    opt = torch.optim.Adam([p for m in modules.values() for p in m.parameters()], lr=1e-3)
    assert list(reference.reference_steps(modules, prep, cfg, opt, 2)) == [16, 16]
    assert len(got) == 2 and np.allclose(got[0].numpy(), prep.semantic.unit_emb * norm[:, None])


def test_synthesis_inputs_raw_unit_or_fallback(normed, tmp_path, caplog):
    sets, prep, norm = normed
    art = prep.semantic
    raw = DeviceData(prep, load(None, sets + ["semantic.normalize=false"]), CPU).unit_emb.numpy()
    assert np.allclose(raw, art.unit_emb * norm[:, None])
    unit = DeviceData(prep, load(None, sets + ["semantic.normalize=true"]), CPU).unit_emb.numpy()
    assert np.allclose(unit, art.unit_emb) and np.allclose(np.linalg.norm(unit, axis=1), 1, atol=1e-5)
    bare = tmp_path / "bare"  # an artifact without unit_norm.npy (e.g. one converted from elsewhere)
    save_artifact(bare, SemanticArtifact(**{**art.__dict__, "unit_norm": None}))
    cfg = load(None, [s for s in sets if not s.startswith("semantic.artifact=")]
               + [f"semantic.artifact={bare}", "semantic.normalize=false"])
    with caplog.at_level(logging.WARNING):
        fallback = DeviceData(prepare_inputs(cfg), cfg, CPU).unit_emb.numpy()
    assert np.allclose(np.linalg.norm(fallback, axis=1), 1, atol=1e-5)
    assert any("unit_norm.npy" in r.getMessage() and "semantic.normalize=true" in r.getMessage()
               for r in caplog.records)


def test_unit_norm_file_is_checked(normed, tmp_path):
    from sracl_ray.semantic.artifact import ArtifactError

    _, prep, _ = normed
    bad = SemanticArtifact(**{**prep.semantic.__dict__, "unit_norm": np.zeros(len(prep.semantic.unit_emb), np.float32)})
    save_artifact(tmp_path, bad)
    with pytest.raises(ArtifactError, match="unit_norm.npy"):
        load_artifact(tmp_path)


def test_duorec_partner_is_another_sample_with_the_same_target(small_sample):
    cfg = load(None, small_sample + ["model.backbone=duorec"])
    prep = prepare_inputs(cfg)
    dd = DeviceData(prep, cfg, CPU)
    target = dd.target.numpy()
    groups = {t: set(np.flatnonzero(target == t)) for t in np.unique(target)}
    singles = [i for i in range(len(target)) if len(groups[target[i]]) == 1]
    pairs = [i for i in range(len(target)) if 2 <= len(groups[target[i]]) <= 4][:5]
    assert singles and pairs
    for i in singles[:5] + pairs:
        draws = same_target_partner(dd, torch.full((400,), i), torch.Generator().manual_seed(i)).numpy()
        others = groups[target[i]] - {i}
        if not others:
            assert (draws == i).all()  # the only sequence with its target: itself
        else:
            assert set(draws.tolist()) == others  # every other one, never itself
            counts = np.bincount(draws, minlength=len(target))[sorted(others)]
            assert counts.min() > 400 / len(others) * 0.6  # roughly uniform
    part = same_target_partner(dd, torch.arange(dd.n_samples), torch.Generator().manual_seed(0)).numpy()
    assert (target[part] == target).all()


def brute_other_user(emb, user, textless, k):
    """(ids, scores) [U, k] of the exact top-k cosine over other users' units with text."""
    sim = emb.astype(np.float64) @ emb.T.astype(np.float64)
    sim[user[:, None] == user[None, :]] = -np.inf
    sim[:, textless] = -np.inf
    ids = np.argsort(-sim, axis=1, kind="stable")[:, :k]
    return ids, sim


def test_exclude_same_user_pools(normed):
    sets, prep, _ = normed
    art, sp = prep.semantic, prep.split
    users = build_units(sp, "prefix")["user"].to_numpy()
    cfg = load(None, sets + ["semantic.exclude_same_user=true"])
    pools = DeviceData(prep, cfg, CPU).unit_nbrs.numpy()
    textless = np.flatnonzero(art.unit_nbrs[:, 0] == np.arange(len(users)))
    keep = np.setdiff1d(np.arange(len(users)), textless)
    assert pools.shape == (len(users), cfg.cl.k)
    assert (users[pools[keep]] != users[keep, None]).all()
    ids, sim = brute_other_user(art.unit_emb, users, textless, cfg.cl.k)
    got, want = np.take_along_axis(sim, pools, 1)[keep], np.take_along_axis(sim, ids, 1)[keep]
    assert np.allclose(got, want, atol=1e-6)  # the same top-k scores, in order (near-ties may swap ids)
    assert (pools[keep] == ids[keep]).mean() > 0.99
    default = DeviceData(prep, load(None, sets), CPU).unit_nbrs.numpy()
    assert (users[default] == users[:, None]).any()  # the stored pools do hold same-user units


def test_exclude_longer_same_user_drops_only_prefixes_holding_the_target(normed, caplog):
    """semantic.exclude=longer_same_user: no L_CS pool holds a longer prefix of its own user (which
    contains the sample's training target); shorter same-user prefixes may stay; other users' units
    are unchanged where the stored list had enough; exclude=same_user equals the deprecated key."""
    sets, prep, _ = normed
    art, sp = prep.semantic, prep.split
    units = build_units(sp, "prefix")
    users, length = units["user"].to_numpy(), units["length"].to_numpy()
    cfg = load(None, sets + ["semantic.exclude=longer_same_user"])
    pools = DeviceData(prep, cfg, CPU).unit_nbrs.numpy()
    textless = art.unit_nbrs[:, 0] == np.arange(len(users))
    keep = ~textless
    same = users[pools] == users[:, None]
    assert not (same & (length[pools] > length[:, None]))[keep].any()
    # each kept row is the stored list, in order, with exactly the banned columns taken out
    stored = art.unit_nbrs
    banned = (users[stored] == users[:, None]) & (length[stored] > length[:, None])
    full_rows = np.flatnonzero(keep & ((~banned).sum(1) >= cfg.cl.k))
    for i in full_rows[:200]:
        assert pools[i].tolist() == stored[i][~banned[i]][:cfg.cl.k].tolist()
    assert (same & (length[pools] < length[:, None]))[keep].any()  # shorter prefixes are allowed
    with caplog.at_level("WARNING"):
        old = DeviceData(prep, load(None, sets + ["semantic.exclude_same_user=true"]), CPU).unit_nbrs.numpy()
    assert "deprecated" in caplog.text and "semantic.exclude=same_user" in caplog.text
    new = DeviceData(prep, load(None, sets + ["semantic.exclude=same_user"]), CPU).unit_nbrs.numpy()
    assert np.array_equal(old, new)
    with pytest.raises(ConfigError, match="semantic.exclude_same_user"):
        load(None, sets + ["semantic.exclude=longer_same_user", "semantic.exclude_same_user=true"])
    with pytest.raises(ConfigError, match="semantic.exclude"):
        load(None, sets + ["semantic.exclude=target"])


def test_exclude_same_user_trains(small_sample, tmp_path):
    from sracl_ray.training.fit import fit

    cfg = load(None, small_sample + ["semantic.exclude_same_user=true", "train.epochs=1"])
    result = fit(cfg, tmp_path / "run")
    assert result["status"] == "ok" and result["config"]["semantic"]["exclude_same_user"] is True
    cfg = load(None, small_sample + ["semantic.exclude=longer_same_user", "train.epochs=1"])
    result = fit(cfg, tmp_path / "longer")
    assert result["status"] == "ok" and result["config"]["semantic"]["exclude"] == "longer_same_user"


def test_ablation_experiment_runs_exclude_same_user_sharing_one_prepared_input():
    from sracl_ray.sweeps.experiment import grid_points, load_experiment, prepare_groups

    exp = load_experiment(REPO / "experiments" / "ablation.yaml")
    assert exp.search.grid["semantic.exclude_same_user"] == [False, True]
    points = grid_points(exp.search)
    assert {p["cl.variant"] for p in points} == {"full", "no_cl", "no_cs", "no_is", "unlearnable"}
    # exclude_same_user only shapes the device tensors (training/inputs.py): both values share one
    # prepared input, so the sweep prepares the data and the artifact once
    groups = prepare_groups(exp)
    assert len(groups) == 1
    assert all(g.cl.variant != "no_cl" for g in groups.values())


def test_k_user_and_k_item_set_each_loss_apart_and_k_sets_both(normed):
    """cl.k is the shortcut; cl.k_user sizes L_CS's neighbour mix, cl.k_item L_IS's substitute pool."""
    sets, prep, _ = normed
    widths = {}
    for extra in ([], ["cl.k=5"], ["cl.k_user=3"], ["cl.k_item=7", "cl.k=4"]):
        cfg = load(None, sets + extra)
        dd = DeviceData(prep, cfg, CPU)
        widths[tuple(extra)] = (dd.unit_nbrs.shape[1], dd.item_nbrs.shape[1])
    assert widths == {(): (10, 10), ("cl.k=5",): (5, 5), ("cl.k_user=3",): (3, 10), ("cl.k_item=7", "cl.k=4"): (4, 7)}
    with pytest.raises(ConfigError, match="cl.k_item"):
        load(None, sets + ["cl.k_item=0"])
    with pytest.raises(ArtifactError, match="larger than the 20 neighbours"):
        prepare_inputs(load(None, sets + ["cl.k_user=25"]))  # the artifact must hold the larger of the two
    inert = C.inert_settings(load(None, sets + ["cl.variant=no_is", "cl.k_item=3"]))
    assert "cl.k_item=3" in inert  # no L_IS: its pool size does nothing


def test_attribution_experiment_crosses_the_exclusions_on_one_prepared_input():
    """experiments/attribution.yaml: every semantic.exclude value per variant and seed, all sharing one
    prepared input (the exclusion only shapes the device tensors), each point a valid config."""
    from sracl_ray.sweeps.experiment import grid_points, load_experiment, prepare_groups, trial_config

    exp = load_experiment(REPO / "experiments" / "attribution.yaml")
    assert exp.search.grid["semantic.exclude"] == list(C.EXCLUSIONS)
    points = grid_points(exp.search)
    assert len(points) == 3 * 3 * 5
    base = C.to_dict(exp.base_config())
    assert {C.exclusion(trial_config(base, p).semantic) for p in points} == set(C.EXCLUSIONS)
    assert len(prepare_groups(exp)) == 1
