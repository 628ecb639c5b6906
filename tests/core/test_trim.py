"""Skipping padding is exact: trimmed/bucketed encodes and losses equal the untrimmed computation."""
import numpy as np
import pytest
import torch

from sracl_ray.config import load
from sracl_ray.models import build_model
from sracl_ray.training.fit import build_modules
from sracl_ray.training.inputs import DeviceData, prepare_inputs
from sracl_ray.training.step import encode_trimmed, step_losses


@pytest.mark.parametrize("backbone", ["sasrec", "gru4rec", "duorec"])
def test_encode_trimmed_equals_untrimmed(backbone):
    cfg = load(None, [f"model.backbone={backbone}"]).model
    model = build_model(cfg, n_items=50, max_len=20).eval()
    rng = np.random.default_rng(0)
    seqs = np.zeros((64, 20), dtype=np.int64)
    for r, n in enumerate(rng.integers(1, 21, size=64)):
        seqs[r, 20 - n:] = rng.integers(1, 51, size=n)
    seqs = torch.as_tensor(seqs)
    full = encode_trimmed(model, seqs, 0)
    for buckets in (1, 3, 8):
        assert torch.allclose(encode_trimmed(model, seqs, buckets), full, atol=1e-5)


@pytest.mark.parametrize("variant", ["full", "unlearnable"])
@pytest.mark.parametrize("backbone", ["sasrec", "duorec"])
def test_step_losses_and_grads_equal_untrimmed(small_sample, backbone, variant):
    sets = small_sample + [f"model.backbone={backbone}", f"cl.variant={variant}", "model.dropout=0",
                           "model.attn_dropout=0", "cl.attn_dropout=0"]
    results = []
    for buckets in (0, 1, 4):
        cfg = load(None, sets + [f"train.length_buckets={buckets}"])
        prep = prepare_inputs(cfg)
        torch.manual_seed(0)
        dd = DeviceData(prep, cfg, torch.device("cpu"))
        modules = build_modules(cfg, prep, dd, torch.device("cpu"))
        gen = torch.Generator().manual_seed(3)
        losses = step_losses(modules["model"], modules.get("synth"), dd, torch.arange(64), cfg, gen)
        losses.total.backward()
        grad = modules["model"].item_emb.weight.grad.clone()
        results.append((float(losses.total.detach()), float(losses.cs.detach()), float(losses.is_.detach()), grad))
    for other in results[1:]:
        assert other[:3] == pytest.approx(results[0][:3], rel=1e-5)
        assert torch.allclose(other[3], results[0][3], atol=1e-6)


def test_last_layer_shortcut_equals_full_layer():
    """SASRec runs its last block for the last position only; h_u must not change."""
    from sracl_ray.models.sasrec import SASRec

    torch.manual_seed(0)
    m = SASRec(100, 20).eval()
    x = torch.randint(1, 100, (8, 20))
    x[:4, :12] = 0
    full = m.drop(m.ln(m.item_emb(x) + m.pos_emb(torch.arange(20))))
    causal = torch.ones(20, 20, dtype=torch.bool).tril()
    mask = ((causal & (x > 0)[:, None, :]) | torch.eye(20, dtype=torch.bool))[:, None]
    for block in m.blocks:
        full = block(full, mask)
    assert torch.allclose(m.encode(x), full[:, -1], atol=1e-6)
