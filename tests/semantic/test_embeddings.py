"""The real packaged MiniLM on a few texts: shape, norm, similarity order, both poolings, Ray path."""
from __future__ import annotations

import numpy as np
import pytest

from sracl_ray.semantic.embeddings import TextEncoder, embed_texts
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


@pytest.mark.slow  # ~30 s of actor start-up; the raw end-to-end pipeline test covers this path too
def test_ray_embed_matches_in_process(ray_local, minilm):
    texts = TEXTS * 3 + ["one more"]
    got = embed_texts(texts, EmbedConfig(batch_size=4), progress=False, rows_per_block=3)
    np.testing.assert_allclose(got, minilm.encode(texts), atol=1e-5)
