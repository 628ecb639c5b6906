"""Losses against naive loop implementations on tiny tensors."""
import math

import pytest
import torch
import torch.nn.functional as F

from sracl_ray.models.duorec import DuoRec
from sracl_ray.models.losses import info_nce, nt_xent
from sracl_ray.models.sracl import SemanticSynthesis, cs_loss, substitute

torch.manual_seed(0)


def naive_info_nce(a, p, tau):
    total = 0.0
    for i in range(len(a)):
        num = math.exp(float(a[i] @ p[i]) / tau)
        den = sum(math.exp(float(a[i] @ p[j]) / tau) for j in range(len(a)))
        total += -math.log(num / den)
    return total / len(a)


def naive_nt_xent(z1, z2, tau):
    z = torch.cat([z1, z2])
    n, total = len(z1), 0.0
    for i in range(2 * n):
        pos = (i + n) % (2 * n)
        den = sum(math.exp(float(z[i] @ z[j]) / tau) for j in range(2 * n) if j != i)
        total += -(float(z[i] @ z[pos]) / tau - math.log(den))
    return total / (2 * n)


@pytest.mark.parametrize("tau", [1.0, 0.5])
def test_info_nce_and_nt_xent_match_loops(tau):
    a, b = torch.randn(5, 4), torch.randn(5, 4)
    assert float(info_nce(a, b, tau)) == pytest.approx(naive_info_nce(a, b, tau), rel=1e-5)
    assert float(nt_xent(a, b, tau)) == pytest.approx(naive_nt_xent(a, b, tau), rel=1e-5)


def test_cs_loss_and_synthesis_weights_match_loops():
    syn = SemanticSynthesis(sem_dim=6, hidden=4, p_dropout=0.5).eval()
    sem_u, sem_nb = torch.randn(3, 6), torch.randn(3, 2, 6)
    p = syn.weights(sem_u, sem_nb)
    W, a = syn.W.weight, syn.a.squeeze(1)
    for i in range(3):
        w = [F.leaky_relu(a @ torch.cat([W @ sem_u[i], W @ sem_nb[i, j]]), 0.2) for j in range(2)]
        ref = torch.softmax(torch.stack(w), 0)
        assert torch.allclose(p[i], ref, atol=1e-6)
    h, h_nb = torch.randn(3, 4), torch.randn(3, 2, 4)
    pos = torch.stack([sum(p[i, j] * h_nb[i, j] for j in range(2)) for i in range(3)])
    # cl.cs_form=paper (Eq. 10); the release form is tested in tests/core/test_fidelity.py
    assert float(cs_loss(h, h_nb, p, 1.0, "paper").detach()) == pytest.approx(naive_info_nce(h, pos.detach(), 1.0),
                                                                     rel=1e-5)


def test_synthesis_adapter_sized_from_data():
    assert SemanticSynthesis(sem_dim=1024, hidden=64).W.weight.shape == (64, 1024)
    assert SemanticSynthesis(sem_dim=384, hidden=64).W.weight.shape == (64, 384)


def test_duorec_aux_loss_is_weighted_nt_xent():
    m = DuoRec(n_items=10, max_len=5, hidden=4, layers=1, heads=1, ff=8, duorec_lambda=0.3, duorec_tau=1.0)
    a, b = torch.randn(4, 4), torch.randn(4, 4)
    assert float(m.aux_loss(a, b)) == pytest.approx(0.3 * naive_nt_xent(a, b, 1.0), rel=1e-5)


def test_substitute_replaces_only_real_items_with_their_neighbours():
    nbrs = torch.tensor([[0, 0], [11, 12], [21, 22], [31, 32]])
    seq = torch.tensor([[0, 0, 1, 2, 3]] * 2000)
    gen = torch.Generator().manual_seed(1)
    out = substitute(seq, nbrs, 0.2, gen)
    assert (out[:, :2] == 0).all()
    changed = out != seq
    for col, item in ((2, 1), (3, 2), (4, 3)):
        vals = set(out[changed[:, col], col].tolist())
        assert vals <= {item * 10 + 1, item * 10 + 2} and len(vals) == 2
    rate = changed[:, 2:].float().mean().item()
    assert 0.17 < rate < 0.23
