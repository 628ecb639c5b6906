"""The real packaged MiniLM on a few texts: shape, norm, similarity order, both poolings, raw outputs
and their norms, Ray path."""
from __future__ import annotations

import numpy as np
import pytest

from sracl_ray.semantic.embeddings import (NORM_FLOOR, Embedder, TextEncoder, embed_texts, embed_texts_with_norms,
                                           unit_rows)
from sracl_ray.semantic.settings import EmbedConfig

TEXTS = ["A moisturising face cream for dry skin.",
         "Hydrating facial moisturiser for very dry skin.",
         "A carbon fibre road bike frame."]


@pytest.fixture(scope="module")
def minilm():
    return TextEncoder("", "mean", "cpu")


def test_minilm_mean(minilm):
    emb = minilm.encode(TEXTS)
    assert emb.shape == (3, 384) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)
    sim = emb @ emb.T
    assert sim[0, 1] > sim[0, 2] + 0.3 and sim[0, 1] > sim[1, 2] + 0.3
    # sentence-transformers' own all-MiniLM-L6-v2 pipeline is mean pooling + normalisation
    from sentence_transformers import SentenceTransformer

    ref = SentenceTransformer(minilm.name, device="cpu").encode(TEXTS, normalize_embeddings=True)
    np.testing.assert_allclose(emb, ref, atol=1e-5)


def test_minilm_cls_pooler(minilm):
    enc = TextEncoder("", "cls_pooler", "cpu")
    emb = enc.encode(TEXTS)
    assert emb.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)
    assert not np.allclose(emb, minilm.encode(TEXTS), atol=1e-2)  # a different pooling, not a no-op
    # pooler_output = tanh(dense(CLS state)), computed here by hand
    import torch

    tok = enc.tok(TEXTS[:1], return_tensors="pt")
    with torch.inference_mode():
        cls = enc.model(**tok).last_hidden_state[:, 0]
        manual = torch.tanh(enc.model.pooler.dense(cls)).numpy()
    np.testing.assert_allclose(emb[0], manual[0] / np.linalg.norm(manual[0]), atol=1e-5)
    np.testing.assert_allclose(enc.encode_raw(TEXTS[:1])[0], manual[0], atol=1e-5)  # raw: pooler_output itself


def test_minilm_mean_raw_is_the_masked_token_mean(minilm):
    """encode_raw = mean of the token states over the attention mask, not normalised (computed by hand)."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    tok, model = AutoTokenizer.from_pretrained(minilm.name), AutoModel.from_pretrained(minilm.name).eval()
    enc = tok(TEXTS, padding=True, truncation=True, max_length=256, return_tensors="pt")
    with torch.inference_mode():
        states = model(**enc).last_hidden_state  # [N, T, D]
    mask = enc["attention_mask"][..., None].float()
    manual = ((states * mask).sum(1) / mask.sum(1)).numpy()
    raw = minilm.encode_raw(TEXTS)
    np.testing.assert_allclose(raw, manual, atol=1e-4)
    norms = np.linalg.norm(raw, axis=1)
    assert (np.abs(norms - 1) > 0.1).all()  # MiniLM's raw means are not unit vectors
    np.testing.assert_allclose(minilm.encode(TEXTS), raw / norms[:, None], atol=1e-5)


def test_embedder_returns_unit_rows_and_raw_norms(minilm):
    emb = Embedder("", "mean", "cpu", batch_size=2, max_seq_length=256)
    out = emb({"row": np.arange(3), "text": np.asarray(TEXTS, dtype=object)})
    raw = minilm.encode_raw(TEXTS)
    np.testing.assert_allclose(out["norm"], np.linalg.norm(raw, axis=1), rtol=1e-5)
    np.testing.assert_allclose(out["emb"] * out["norm"][:, None], raw, atol=1e-5)
    assert out["norm"].dtype == np.float32 and list(out["row"]) == [0, 1, 2]


def test_unit_rows_keep_zero_outputs_safe():
    unit, norm = unit_rows(np.array([[3.0, 4.0], [0.0, 0.0]], np.float32))
    np.testing.assert_allclose(unit, [[0.6, 0.8], [0, 0]])
    np.testing.assert_allclose(norm, [5.0, NORM_FLOOR])
    assert np.isfinite(unit).all() and (norm > 0).all() and norm.dtype == unit.dtype == np.float32


@pytest.mark.slow  # ~30 s of actor start-up; the raw end-to-end pipeline test covers this path too
def test_ray_embed_matches_in_process(ray_local, minilm):
    texts = TEXTS * 3 + ["one more"]
    got, norms = embed_texts_with_norms(texts, EmbedConfig(batch_size=4), progress=False, rows_per_block=3)
    np.testing.assert_allclose(got, minilm.encode(texts), atol=1e-5)
    np.testing.assert_allclose(norms, np.linalg.norm(minilm.encode_raw(texts), axis=1), rtol=1e-5)
    np.testing.assert_allclose(embed_texts(texts, EmbedConfig(batch_size=4), progress=False), got, atol=1e-6)
