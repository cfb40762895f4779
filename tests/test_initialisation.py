"""Initial weights: the distributions the models document, written here from their sources.

GPT (GPT-2's code, as nanoGPT and Hugging Face's GPT2 _init_weights have it): every matrix and
embedding N(0, 0.02²), except the two projections per block that write into the residual stream,
N(0, (0.02 / sqrt(2 n_layer))²).
Encoder and encoder-decoder (nn/block.py's PAPER style): token embeddings N(0, 1/d_model), so that
scaled by sqrt(d_model) their entries have unit size; a learned position table N(0, 1/2), the mean
square of the sinusoids; every weight of the blocks N(0, 1/fan_in); the heads (classifier,
untied generator) N(0, 0.02²), so that the first predictions are nearly uniform.
Everywhere: biases 0, layer-norm gains 1.

Each matrix has at least 4096 entries, so its sample standard deviation is within 1.1% (one sigma)
of the true one; 5% allows for over four sigma.
"""
import math

import numpy as np
import pytest

from transformer_jit import (GPT, ClassifierConfig, EncoderClassifier, GPTConfig, Seq2SeqConfig,
                             Seq2SeqTransformer)

C, N_LAYER = 64, 4


def gpt2_std(name, shape):
    return 0.02 / math.sqrt(2 * N_LAYER) if name.endswith("c_proj.weight") else 0.02


def paper_std(name, shape):
    if name.endswith("embed.weight"):
        return C ** -0.5
    if name.endswith("pos.weight"):
        return math.sqrt(0.5)
    if name in ("classifier.weight", "generator.weight"):
        return 0.02
    return shape[1] ** -0.5  # (out_features, in_features): fan_in is the second axis


@pytest.mark.parametrize("build, expected_std", [
    (lambda: GPT(GPTConfig(vocab_size=64, block_size=64, n_layer=N_LAYER, n_head=4, n_embd=C)), gpt2_std),
    (lambda: EncoderClassifier(ClassifierConfig(vocab_size=64, max_len=64, n_layer=2, n_head=4, n_embd=C,
                                                n_classes=64, positional="learned")), paper_std),
    (lambda: Seq2SeqTransformer(Seq2SeqConfig(src_vocab_size=64, tgt_vocab_size=64, max_src_len=64, max_tgt_len=64,
                                              n_head=4, n_embd=C, positional="learned", tie_weights=False)),
     paper_std),
], ids=["gpt", "classifier", "seq2seq"])
def test_initial_weights_have_the_documented_distributions(build, expected_std):
    for name, w in build().state_dict().items():
        if w.ndim == 1:
            np.testing.assert_array_equal(w, 0.0 if name.endswith(".bias") else 1.0, err_msg=name)
            continue
        std = expected_std(name, w.shape)
        assert w.size >= 4096, name
        assert abs(w.std() / std - 1) < 0.05, f"{name}: std {w.std():.4g}, documented {std:.4g}"
        assert abs(w.mean()) < 5 * std / math.sqrt(w.size), f"{name}: mean {w.mean():.3g}"
