"""Local (sliding-window) attention: kernels/local_attention.py against a dense NumPy reference and
the global kernels, its gradients against finite differences, and the window through the models,
generation, the command line and the export formats."""
import json

import numpy as np
import pytest
from refusals import assert_refused

from gradcheck import assert_grad_close, check_model_gradients, numerical_grad
from test_encoder import padded_ids
from test_seq2seq import padded_batch
from transformer_jit import (GPT, ClassifierConfig, EncoderClassifier, GPTConfig, Seq2SeqConfig,
                             Seq2SeqTransformer)
from transformer_jit.cli import main
from transformer_jit.kernels import (attention_backward, attention_forward, band_width, local_attention_backward,
                                     local_attention_forward)
from transformer_jit.kernels._jit import interpreted
from transformer_jit.models.generation import Sequences
from transformer_jit.nn.attention import SelfAttention
from transformer_jit.nn.context import Context
from transformer_jit.nn.parameters import ParameterStore
from transformer_jit.util.config import ConfigError

C, NH = 8, 2
SEED = 11


def band(T, window, causal):
    """(T, T) bool: may query t attend key s, by position alone."""
    t, s = np.arange(T)[:, None], np.arange(T)[None, :]
    return (s <= t) & (s > t - window) if causal else np.abs(s - t) <= window


def dense(probs, window, causal):
    """Band layout (B, NH, T, Wk) -> (B, NH, T, T)."""
    B, NH_, T, Wk = probs.shape
    out = np.zeros((B, NH_, T, T), probs.dtype)
    for t in range(T):
        for j in range(Wk):
            s = t - (window - 1 if causal else window) + j
            if 0 <= s < T:
                out[:, :, t, s] = probs[:, :, t, j]
    return out


def reference(q, k, v, key_mask, window, causal):
    """Attention in NumPy with an explicit dense mask: (out (B, T, C), P (B, NH, T, T))."""
    B, T, _ = q.shape
    hs = C // NH
    allowed = np.broadcast_to(band(T, window, causal), (B, T, T)).copy()
    if key_mask is not None:
        allowed &= key_mask[:, None, :]
    out, P = np.zeros((B, T, C)), np.zeros((B, NH, T, T))
    for b in range(B):
        for h in range(NH):
            c = slice(h * hs, (h + 1) * hs)
            a = np.where(allowed[b], q[b, :, c] @ k[b, :, c].T / np.sqrt(hs), -np.inf)
            top = a.max(axis=1, keepdims=True)
            e = np.where(allowed[b], np.exp(a - np.where(np.isfinite(top), top, 0)), 0)
            P[b, h] = e / np.maximum(e.sum(axis=1, keepdims=True), 1e-300)
            out[b, :, c] = P[b, h] @ v[b, :, c]
    return out, P


def inputs(rng, T, padded=False, dtype=np.float64):
    """A fused (2, T, 3C) qkv buffer, and a key mask (batch 1: keys 0 and 2 padding) or None."""
    qkv = rng.standard_normal((2, T, 3 * C)).astype(dtype)
    mask = None
    if padded:
        mask = np.ones((2, T), dtype=bool)
        mask[1, [0, 2]] = False  # query 0 of a causal window of 1 then sees no key at all
    return qkv, mask


def split(x):
    return x[:, :, :C], x[:, :, C:2 * C], x[:, :, 2 * C:]


def local_forward(qkv, mask, window, causal, dropout=0.0, seed=SEED):
    B, T, _ = qkv.shape
    out = np.zeros((B, T, C), qkv.dtype)
    probs = np.full((B, NH, T, band_width(window, causal)), np.nan, qkv.dtype)  # every entry must be written
    local_attention_forward(out, probs, *split(qkv), mask, NH, causal, window, dropout, seed)
    return out, probs


WINDOWS = [  # (T, W, causal, padded); T = 70 spans two query blocks and ends in a partial tile
    (7, 3, True, False), (7, 1, True, True), (9, 2, False, True), (70, 5, True, True), (70, 4, False, False),
]


@pytest.mark.parametrize("T, window, causal, padded", WINDOWS)
def test_the_window_equals_a_dense_band_masked_reference(rng, T, window, causal, padded):
    qkv, mask = inputs(rng, T, padded)
    out, probs = local_forward(qkv, mask, window, causal)
    ref_out, ref_p = reference(*split(qkv), mask, window, causal)
    np.testing.assert_allclose(dense(probs, window, causal), ref_p, atol=1e-12)
    np.testing.assert_allclose(out, ref_out, atol=1e-12)
    # band entries outside the sequence are 0, not left unwritten
    assert np.isfinite(probs).all()


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("dropout", [0.0, 0.4])
def test_a_window_as_long_as_the_text_is_global_attention_dropout_mask_included(rng, causal, dropout):
    T = 6
    window = T if causal else T - 1
    qkv, mask = inputs(rng, T, padded=True)
    dout = rng.standard_normal((2, T, C))
    out, probs = local_forward(qkv, mask, window, causal, dropout)
    g_out, g_probs = np.zeros_like(out), np.zeros((2, NH, T, T))
    attention_forward(g_out, g_probs, *split(qkv), mask, NH, causal, dropout, SEED)
    np.testing.assert_allclose(out, g_out, atol=1e-13)
    np.testing.assert_allclose(dense(probs, window, causal), g_probs, atol=1e-13)
    grads, g_grads = np.zeros_like(qkv), np.zeros_like(qkv)
    local_attention_backward(*split(grads), dout, probs, *split(qkv), None, NH, causal, window, dropout, SEED, True)
    attention_backward(*split(g_grads), dout, g_probs, *split(qkv), None, NH, causal, dropout, SEED, True)
    np.testing.assert_allclose(grads, g_grads, atol=1e-13)


@pytest.mark.parametrize("T, window, causal, padded", WINDOWS)
@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_backward_matches_finite_differences(rng, T, window, causal, padded, dropout):
    qkv, mask = inputs(rng, T, padded)
    dout = rng.standard_normal((2, T, C))
    dout[:, :-14] = 0  # with T = 70 the rows left still straddle the second block, in queries and in keys

    def loss():
        return float(np.sum(local_forward(qkv, mask, window, causal, dropout)[0] * dout))

    _, probs = local_forward(qkv, mask, window, causal, dropout)
    grads = np.full_like(qkv, 0.5)  # backward accumulates: the 0.5 must still be there
    local_attention_backward(*split(grads), dout, probs, *split(qkv), None, NH, causal, window, dropout, SEED, True)
    assert_grad_close(f"d qkv (T {T}, W {window}, causal {causal}, dropout {dropout})", grads - 0.5,
                      numerical_grad(loss, qkv, eps=1e-5))  # fast_exp's relative error, ~1e-13, is noise
                                                            # that a step of 1e-6 would magnify too much
    overwritten = np.full_like(qkv, np.nan)
    local_attention_backward(*split(overwritten), dout, probs, *split(qkv), None, NH, causal, window, dropout, SEED,
                             False)
    np.testing.assert_allclose(overwritten, grads - 0.5, atol=1e-14)


def test_dropout_drops_inside_the_window_and_each_seed_draws_its_own_mask(rng):
    qkv, _ = inputs(rng, 9)
    kept = local_forward(qkv, None, 3, True)[0]
    one, other = local_forward(qkv, None, 3, True, 0.5, 1)[0], local_forward(qkv, None, 3, True, 0.5, 2)[0]
    assert not np.allclose(one, kept) and not np.allclose(one, other)
    np.testing.assert_array_equal(one, local_forward(qkv, None, 3, True, 0.5, 1)[0])


def test_float32_stays_float32_and_interpreted_source_agrees(rng):
    qkv, mask = inputs(rng, 9, padded=True)
    out64, _ = local_forward(qkv, mask, 2, False)
    out32, probs32 = local_forward(qkv.astype(np.float32), mask, 2, False)
    assert out32.dtype == probs32.dtype == np.float32
    np.testing.assert_allclose(out32, out64, atol=1e-5)
    out, probs = np.zeros_like(out64), np.zeros((2, NH, 9, 5))
    with interpreted(local_attention_forward) as f, np.errstate(over="ignore"):
        f(out, probs, *split(qkv), mask, NH, False, 2, 0.0, 0)
    np.testing.assert_allclose(out, out64, atol=1e-13)


def test_window_zero_is_the_global_kernel_bit_for_bit(rng):
    store = ParameterStore()
    layer = SelfAttention(store, "attn", C, NH, causal=True)
    store.build(np.float64, rng)
    x = rng.standard_normal((2, 5, C))
    y = layer.forward(x, Context()).copy()
    probs = layer.probs.copy()
    qkv = layer.c_attn.forward(x.reshape(10, C), Context()).reshape(2, 5, 3 * C).copy()
    out, global_probs = np.zeros((2, 5, C)), np.zeros((2, NH, 5, 5))
    attention_forward(out, global_probs, *split(qkv), None, NH, True, 0.0, 0)
    np.testing.assert_array_equal(probs, global_probs)
    np.testing.assert_array_equal(y, layer.c_proj.forward(out.reshape(10, C), Context()).reshape(2, 5, C))


# -- the models ------------------------------------------------------------------------------------

GPT_TINY = dict(vocab_size=7, block_size=6, n_layer=2, n_head=2, n_embd=8)


@pytest.mark.parametrize("options", [dict(attn_window=2), dict(attn_window=3, attn_dropout=0.3, dropout=0.1)])
def test_whole_gpt_with_a_window_matches_finite_differences(rng, options):
    model = GPT(GPTConfig(**GPT_TINY, **options), seed=1, dtype=np.float64)
    model.params[:] = rng.normal(0, 0.3, model.params.shape)
    idx, targets = rng.integers(0, 7, (2, 6)), rng.integers(0, 7, (2, 6))
    check_model_gradients(model, (idx, targets), min_tensors=len(model.state_dict()))


def test_encoder_and_seq2seq_windows_match_finite_differences(rng):
    classifier = EncoderClassifier(ClassifierConfig(vocab_size=7, max_len=5, n_layer=1, n_head=2, n_embd=8,
                                                    n_classes=3, attn_window=1), seed=1, dtype=np.float64)
    classifier.params[:] = rng.normal(0, 0.3, classifier.params.shape)
    check_model_gradients(classifier, (padded_ids(rng), np.array([0, 2, 1])), min_tensors=10)
    seq2seq = Seq2SeqTransformer(Seq2SeqConfig(src_vocab_size=7, tgt_vocab_size=6, max_src_len=6, max_tgt_len=5,
                                               n_encoder_layer=1, n_decoder_layer=1, n_head=2, n_embd=8,
                                               attn_window=1), seed=1, dtype=np.float64)
    seq2seq.params[:] = rng.normal(0, 0.3, seq2seq.params.shape)
    check_model_gradients(seq2seq, padded_batch(rng), min_tensors=20)
    cross = seq2seq.decoder.layers[0].cross_attn
    assert cross.probs.shape[-1] == 5 and (cross.probs[0, :, :, 3:] == 0).all()  # the whole source, less padding


def test_a_window_limits_what_each_position_sees(rng):
    model = GPT(GPTConfig(**GPT_TINY, attn_window=2), seed=0, dtype=np.float64)
    model.params[:] = rng.normal(0, 0.3, model.params.shape)
    idx = rng.integers(0, 7, (1, 6))
    logits = model.forward(idx)[0].copy()  # the model's buffer serves the next forward
    changed = idx.copy()
    changed[0, 1] = (idx[0, 1] + 1) % 7
    other, _ = model.forward(changed)
    # token 1 reaches position 1 + n_layer (W - 1) = 3 through two layers, no further
    assert np.abs(logits[0, 3] - other[0, 3]).max() > 1e-3 and np.array_equal(logits[0, 4:], other[0, 4:])
    maps = model.attention_maps(idx)["transformer.h.0.attn"]
    assert maps.shape == (1, 2, 6, 6) and np.allclose(maps.sum(axis=-1), 1)
    assert (maps[0, :, ~band(6, 2, True)] == 0).all()


@pytest.mark.parametrize("positional", ["learned", "sinusoidal"])
def test_generation_over_a_rolling_cache_equals_a_full_forward(rng, positional):
    model = GPT(GPTConfig(**{**GPT_TINY, "block_size": 10}, attn_window=3, positional=positional), seed=1,
                dtype=np.float64)
    ids = rng.integers(0, 7, (2, 10))
    full = model.forward(ids)[0].copy()
    with model.evaluating():
        sequences = Sequences(model, 2, 10)
        logits = sequences.prefill([ids[0, :5], ids[1, :5]])  # a prompt longer than the window
        np.testing.assert_allclose(logits, full[:, 4], atol=1e-12)
        for t in range(5, 9):
            np.testing.assert_allclose(sequences.step(ids[:, t].copy()), full[:, t], atol=1e-12)
        keys, values = sequences.cache.layer(model.transformer.layers[0].attn)
        assert keys.shape == values.shape == (2, 2, 3, 4)  # W rows, not the 10 positions


def test_generation_past_block_size_slides_and_keeps_the_cache_w_long(rng):
    model = GPT(GPTConfig(**GPT_TINY, attn_window=2), seed=1, dtype=np.float64)
    out = model.generate(rng.integers(0, 7, (1, 3)), 20, seed=0)
    assert out.shape == (1, 23)
    with model.evaluating():
        sequences = Sequences(model, 1, 6)
        sequences.prefill([out[0, :6]])
        logits = sequences.step(out[0, 6:7].copy())  # the cache is full: the last 3 tokens go to positions 0..2
        assert sequences.cache.lengths[0] == 3
        keys, _ = sequences.cache.layer(model.transformer.layers[1].attn)
        assert keys.shape[2] == 2
    full, _ = model.forward(out[:, 4:7])
    np.testing.assert_allclose(logits[0], full[0, -1], atol=1e-12)


def test_the_window_is_checked_saved_and_optional_in_old_configs():
    for bad in (-1, 2.5, True):
        with pytest.raises(ConfigError, match="attn_window"):
            GPTConfig(attn_window=bad)
    with pytest.raises(ConfigError, match="attn_window"):
        Seq2SeqConfig(attn_window=-3)
    assert GPTConfig.from_dict(GPTConfig(attn_window=4).to_dict()).attn_window == 4
    old = GPTConfig().to_dict()
    del old["attn_window"]
    assert GPTConfig.from_dict(old).attn_window == 0
    with pytest.raises(ValueError, match="attention window must be an integer >= 0"):
        SelfAttention(ParameterStore(), "attn", C, NH, causal=True, window=-1)


TEXT = "the quick brown fox jumps over the lazy dog.\n" * 40
SMALL = ["--n-layer", "1", "--n-embd", "16", "--n-head", "2", "--block-size", "8", "--batch-size", "4",
         "--eval-interval", "2", "--eval-iters", "1", "--sample-tokens", "20"]


def test_cli_trains_resumes_and_refuses_to_export_a_window(tmp_path, capsys, monkeypatch):
    (tmp_path / "input.txt").write_text(TEXT)
    run = tmp_path / "run"
    assert main(["train", "--data", str(tmp_path / "input.txt"), "--out-dir", str(run), "--max-iters", "2",
                 "--attn-window", "3", *SMALL]) == 0
    assert json.loads((run / "config.json").read_text())["model"]["attn_window"] == 3
    assert main(["train", "--resume", "--out-dir", str(run), "--max-iters", "4"]) == 0
    assert json.loads((run / "config.json").read_text())["model"]["attn_window"] == 3
    capsys.readouterr()
    for fmt, dest in (("hf", "hf"), ("llmc", "model.bin")):
        assert_refused(["export", "--out-dir", str(run), "--format", fmt, str(tmp_path / dest)],
                       "needs attn_window=0: GPT-2 attends to its whole context", tmp_path, capsys, monkeypatch)


def test_cli_trains_encoders_with_a_window(tmp_path):
    common = ["--n-embd", "16", "--n-head", "2", "--batch-size", "8", "--eval-interval", "2", "--eval-iters", "1",
              "--n-train", "100", "--n-test", "4", "--max-iters", "2", "--attn-window", "2"]
    assert main(["train-classifier", "--out-dir", str(tmp_path / "cls"), "--n-layer", "1", *common]) == 0
    assert main(["train-seq2seq", "--out-dir", str(tmp_path / "s2s"), "--n-encoder-layer", "1",
                 "--n-decoder-layer", "1", *common]) == 0
    for run in ("cls", "s2s"):
        assert json.loads((tmp_path / run / "config.json").read_text())["model"]["attn_window"] == 2


def test_memory_estimates_count_the_window_band_not_the_context():
    windowed = GPT(GPTConfig(block_size=256, attn_window=64), allocate=False)
    same_tokens_and_keys = GPT(GPTConfig(block_size=64), allocate=False)  # 4x the batch, 64 keys each
    assert windowed.activation_floats(12) == same_tokens_and_keys.activation_floats(48)
