"""The encoder-decoder as a whole: gradients, masks, causality, decoding, learning, bad input."""
import itertools

import numpy as np
import pytest

from gradcheck import check_model_gradients
from transformer_jit import Seq2SeqConfig, Seq2SeqTransformer, TrainConfig, Trainer, beam_search, greedy_decode
from transformer_jit.nn.attention import CrossAttention
from transformer_jit.nn.context import Context, Memory
from transformer_jit.nn.parameters import ParameterStore

PAD, BOS, EOS = 0, 1, 2
TINY = dict(src_vocab_size=7, tgt_vocab_size=6, max_src_len=6, max_tgt_len=5, n_encoder_layer=2,
            n_decoder_layer=2, n_head=2, n_embd=8)


def padded_batch(rng):
    """Two pairs with different source and target lengths, right-padded like PairDataset's."""
    src = rng.integers(3, 7, (2, 5))
    src[0, 3:] = PAD
    tgt_in = rng.integers(3, 6, (2, 4))
    tgt_in[:, 0] = BOS
    tgt_out = np.concatenate([tgt_in[:, 1:], np.full((2, 1), EOS)], axis=1)
    tgt_in[1, 3], tgt_out[1, 2], tgt_out[1, 3] = PAD, EOS, PAD  # the second target is one shorter
    return src, tgt_in, tgt_out


def random_model(rng, dtype=np.float64, std=0.3, **options):
    model = Seq2SeqTransformer(Seq2SeqConfig(**{**TINY, **options}), seed=1, dtype=dtype)
    model.params[:] = rng.normal(0, std, model.params.shape)  # larger than init: every path matters
    return model


@pytest.mark.parametrize("options", [
    dict(),  # pre-LN, GELU, sinusoidal, tied output projection
    dict(norm_first=False, activation="relu", positional="learned", tie_weights=False, dropout=0.2,
         attn_dropout=0.3, bias=False, label_smoothing=0.1),  # post-LN as in the paper, separate generator,
                                                              # dropouts (attention's in all three), label smoothing
])
def test_whole_seq2seq_gradient_matches_finite_differences(rng, options):
    model = random_model(rng, **options)
    batch = padded_batch(rng)
    check_model_gradients(model, batch, min_tensors=30)


def test_state_dict_names_read_like_the_paper():
    sd = Seq2SeqTransformer(Seq2SeqConfig(**TINY)).state_dict()
    C = 8
    assert sd["encoder.embed.weight"].shape == (7, C) and sd["decoder.embed.weight"].shape == (6, C)
    assert sd["encoder.layers.1.self_attn.c_attn.weight"].shape == (3 * C, C)
    assert sd["decoder.layers.0.self_attn.c_attn.weight"].shape == (3 * C, C)
    assert sd["decoder.layers.0.cross_attn.c_q.weight"].shape == (C, C)
    assert sd["decoder.layers.0.cross_attn.c_kv.weight"].shape == (2 * C, C)
    assert sd["decoder.layers.0.cross_attn.c_proj.bias"].shape == (C,)
    assert sd["decoder.layers.1.cross_attn_norm.weight"].shape == (C,)
    assert sd["decoder.layers.1.ffn.c_fc.weight"].shape == (4 * C, C)
    assert sd["encoder.norm.bias"].shape == sd["decoder.norm.bias"].shape == (C,)
    assert "generator.weight" not in sd  # tied to decoder.embed.weight
    names = "\n".join(sd)
    assert "decoder.layers.0.self_attn_norm" in names and "encoder.layers.0.cross_attn" not in names
    untied = Seq2SeqTransformer(Seq2SeqConfig(**TINY, tie_weights=False, n_inner=12)).state_dict()
    assert untied["generator.weight"].shape == (6, C) and untied["decoder.layers.0.ffn.c_fc.weight"].shape == (12, C)


def test_padding_does_not_change_the_outputs(rng):
    model = random_model(rng, max_src_len=9, max_tgt_len=8)
    src, tgt_in, tgt_out = padded_batch(rng)
    logits, loss = model.forward(src, tgt_in, tgt_out)
    logits = logits.copy()
    pad = lambda a, n: np.concatenate([a, np.zeros((2, n), dtype=np.int64)], axis=1)
    logits2, loss2 = model.forward(pad(src, 3), pad(tgt_in, 2), pad(tgt_out, 2))
    real = tgt_in != PAD
    np.testing.assert_allclose(logits2[:, :4][real], logits[real], rtol=1e-12, atol=1e-12)
    assert abs(loss2 - loss) < 1e-12
    alone, _ = model.forward(src[:1, :3], tgt_in[:1])  # nor does the rest of the batch
    np.testing.assert_allclose(alone[0], logits[0], rtol=1e-12, atol=1e-12)


def test_cross_attention_respects_the_source_mask(rng):
    store = ParameterStore()
    layer = CrossAttention(store, "x", 8, 2)
    store.build(np.float64, rng)
    x, memory = rng.standard_normal((2, 3, 8)), rng.standard_normal((2, 5, 8))
    mask = np.array([[True, True, True, False, False], [True, True, True, True, True]])
    out = layer.forward(x, Context(memory=Memory(memory, mask))).copy()
    assert np.all(layer.probs[0, :, :, 3:] == 0)
    np.testing.assert_allclose(layer.probs.sum(axis=-1), 1.0, rtol=1e-12)
    changed = memory.copy()
    changed[0, 3:] = 100.0  # whatever the encoder put at padding positions
    padded = Memory(changed, mask)
    np.testing.assert_array_equal(layer.forward(x, Context(memory=padded)), out)
    # ... gets no gradient either
    padded.grad = np.zeros_like(memory)
    layer.backward(rng.standard_normal(out.shape), np.zeros_like(x))
    assert np.all(padded.grad[0, 3:] == 0) and np.all(padded.grad[1] != 0)
    # and in the whole model, the cross-attention maps put no weight on source padding
    model = random_model(rng)
    src, tgt_in, _ = padded_batch(rng)
    maps = model.attention_maps(src, tgt_in)
    assert list(maps) == ["encoder.layers.0.self_attn", "encoder.layers.1.self_attn", "decoder.layers.0.self_attn",
                          "decoder.layers.0.cross_attn", "decoder.layers.1.self_attn", "decoder.layers.1.cross_attn"]
    assert maps["decoder.layers.1.cross_attn"].shape == (2, 2, 4, 5)
    for name in ("decoder.layers.0.cross_attn", "encoder.layers.1.self_attn"):
        assert np.all(maps[name][0, :, :, 3:] == 0)


def test_decoder_output_at_t_does_not_depend_on_later_targets(rng):
    model = random_model(rng, dtype=np.float32, std=0.5)
    src, tgt_in, _ = padded_batch(rng)
    before = model.forward(src, tgt_in)[0].copy()
    changed = tgt_in.copy()
    changed[:, 2:] = np.where(changed[:, 2:] == PAD, PAD, 3 + (changed[:, 2:] - 2) % 3)
    after = model.forward(src, changed)[0]
    np.testing.assert_array_equal(before[:, :2], after[:, :2])
    assert not np.allclose(before[0, 2:], after[0, 2:])
    maps = model.attention_maps(src, tgt_in)
    assert np.all(np.triu(maps["decoder.layers.0.self_attn"][0, 0], k=1) == 0)  # causal


def log_prob(model, src, tokens, eos):
    """log P(tokens [+ EOS] | src) by teacher forcing, in float64."""
    out = list(tokens) + ([EOS] if eos else [])
    logits, _ = model.forward(src[None], np.array([[BOS] + out[:-1]]))
    z = logits[0].astype(np.float64)
    z = z - z.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return sum(logp[t, tok] for t, tok in enumerate(out))


def gnmt_penalty(length, alpha):
    """GNMT's length penalty (Wu et al. 2016, eq. 14), (5 + |Y|)^alpha / 6^alpha: written here
    from the paper, apart from the code under test."""
    return (5 + length) ** alpha / 6 ** alpha


def brute_force_best(model, src, alpha, words, max_len):
    """(score, tokens) of the best of every hypothesis: each finished one (n < max_len tokens, then
    EOS) and each unfinished one at the length limit, scored log P / gnmt_penalty(|Y|)."""
    scored = []
    for n in range(max_len):
        for seq in itertools.product(words, repeat=n):
            scored.append((log_prob(model, src, seq, True) / gnmt_penalty(n + 1, alpha), seq))
    for seq in itertools.product(words, repeat=max_len):
        scored.append((log_prob(model, src, seq, False) / gnmt_penalty(max_len, alpha), seq))
    return max(scored)


@pytest.mark.parametrize("seed, alpha, penalty_decides", [
    (0, 0.0, False),
    (0, 1.0, False),
    (25, 0.6, True),  # the raw log-probability prefers the empty output, the penalty three tokens
])
def test_wide_beam_search_finds_the_best_sequence(seed, alpha, penalty_decides):
    """With a beam wider than the number of hypotheses, beam search is exhaustive: its answer must
    be the brute-force best under GNMT's length-normalised score."""
    rng = np.random.default_rng(seed)
    model = random_model(rng, dtype=np.float64, std=0.5, max_tgt_len=3)
    src = rng.integers(3, 7, 4)
    words = [3, 4, 5]  # the target vocabulary without PAD, BOS, EOS
    best_score, best = brute_force_best(model, src, alpha, words, max_len=3)
    _, unpenalised = brute_force_best(model, src, 0.0, words, max_len=3)
    assert (best != unpenalised) == penalty_decides
    (found,), (score,) = beam_search(model, src[None], beam_width=64, alpha=alpha, return_scores=True)
    assert tuple(found) == best
    assert abs(score - best_score) < 1e-9


class CopyDataset:
    """The copy task: the target is the source. Tokens 3..7, lengths 1..6, padded with PAD."""

    def batch(self, split, batch_size, rng):
        lengths = rng.integers(1, 7, batch_size)
        src = rng.integers(3, 8, (batch_size, 6))
        src[np.arange(6) >= lengths[:, None]] = PAD
        tgt_in = np.concatenate([np.full((batch_size, 1), BOS), src], axis=1)
        tgt_out = np.concatenate([src, np.zeros((batch_size, 1), dtype=np.int64)], axis=1)
        tgt_out[np.arange(batch_size), lengths] = EOS
        return src, tgt_in, tgt_out


COPY = dict(src_vocab_size=8, tgt_vocab_size=8, max_src_len=6, max_tgt_len=7, n_encoder_layer=1, n_decoder_layer=1,
            n_head=2, n_embd=32)


@pytest.fixture(scope="module")
def copy_run(tmp_path_factory):
    """A tiny model trained on the copy task for 300 steps, and its weights after 40 (half-trained:
    its outputs differ from source to source, are often wrong and sometimes hit the length limit)."""
    model = Seq2SeqTransformer(Seq2SeqConfig(**COPY), seed=0)
    train = TrainConfig(batch_size=32, max_iters=300, lr=3e-3, warmup_iters=20, eval_interval=300, eval_iters=2,
                        weight_decay=0.0, out_dir=str(tmp_path_factory.mktemp("copy")))
    trainer = Trainer(model, CopyDataset(), train, kind="seq2seq", log=lambda msg: None)
    trainer.fit(until=40)
    partial = model.state_dict()
    trainer.fit()
    src, _, _ = CopyDataset().batch("val", 100, np.random.default_rng(7))
    return model, partial, src


def test_beam_search_with_width_one_equals_greedy(copy_run):
    _, partial, src = copy_run
    model = Seq2SeqTransformer(Seq2SeqConfig(**COPY))
    model.load_state_dict(partial)
    greedy = greedy_decode(model, src)
    beam = beam_search(model, src, beam_width=1)
    lengths = {len(g) for g in greedy}
    assert len(lengths) >= 4 and COPY["max_tgt_len"] in lengths  # a varied test, unfinished ones included
    for g, b in zip(greedy, beam):
        np.testing.assert_array_equal(g, b)
        assert not np.isin(g, [PAD, BOS, EOS]).any()
    wider = beam_search(model, src, beam_width=3)
    assert any(not np.array_equal(g, w) for g, w in zip(greedy, wider))  # a width that matters
    assert model.training  # decoding restores the mode


def test_tiny_model_learns_to_copy_and_decodes_it_exactly(copy_run):
    model, _, src = copy_run
    expected = [row[row != PAD] for row in src]
    for decoded in (greedy_decode(model, src), beam_search(model, src, beam_width=3)):
        wrong = [i for i, (d, e) in enumerate(zip(decoded, expected)) if not np.array_equal(d, e)]
        assert not wrong, f"{len(wrong)} of 100 copies wrong, e.g. {decoded[wrong[0]]} for {expected[wrong[0]]}"


def test_trainer_resumes_a_seq2seq_run_exactly(tmp_path):
    config = Seq2SeqConfig(**{**COPY, "n_embd": 16, "dropout": 0.1})

    def trainer(path, model_seed=3):
        train = TrainConfig(batch_size=8, max_iters=12, lr=3e-3, warmup_iters=4, eval_interval=6, eval_iters=2,
                            out_dir=str(path), schedule="noam")
        return Trainer(Seq2SeqTransformer(config, seed=model_seed), CopyDataset(), train, kind="seq2seq",
                       log=lambda msg: None)

    straight = trainer(tmp_path / "a")
    straight.fit()
    first = trainer(tmp_path / "b")
    first.fit(until=6)
    second = trainer(tmp_path / "b", model_seed=99)
    second.restore(tmp_path / "b" / "last.npz")
    second.fit()
    np.testing.assert_array_equal(second.model.params, straight.model.params)


def test_bad_inputs_get_clear_errors(rng):
    model = Seq2SeqTransformer(Seq2SeqConfig(**TINY))
    src, tgt_in, tgt_out = padded_batch(rng)
    with pytest.raises(ValueError, match="source length 7 exceeds the model's max_src_len 6"):
        model.forward(np.ones((2, 7), dtype=np.int64), tgt_in)
    with pytest.raises(ValueError, match="tgt_in length 6 exceeds the model's max_tgt_len 5"):
        model.forward(src, np.ones((2, 6), dtype=np.int64))
    with pytest.raises(ValueError, match=r"src has ids outside the vocabulary \[0, 7\): \[9\]"):
        model.forward(np.array([[3, 9]]), tgt_in[:1])
    with pytest.raises(ValueError, match="tgt_out has ids outside the vocabulary"):
        model.forward(src, tgt_in, np.full(tgt_in.shape, 6))
    with pytest.raises(ValueError, match="empty"):
        model.forward(np.zeros((0, 4), dtype=np.int64), tgt_in)
    with pytest.raises(ValueError, match="empty"):
        greedy_decode(model, np.zeros((0, 4), dtype=np.int64))
    with pytest.raises(ValueError, match="only padding"):
        beam_search(model, np.array([[3, 4], [0, 0]]))
    with pytest.raises(ValueError, match="batch size 1 but src has 2"):
        model.forward(src, tgt_in[:1])
    with pytest.raises(ValueError, match="tgt_out shape"):
        model.forward(src, tgt_in, tgt_out[:, :2])
    with pytest.raises(ValueError, match="beam_width"):
        beam_search(model, src, beam_width=0)
    with pytest.raises(RuntimeError, match="backward"):
        model.forward(src, tgt_in)
        model.backward()
    with pytest.raises(ValueError, match="must differ from pad_id and bos_id"):
        Seq2SeqConfig(**TINY, eos_id=1)
    with pytest.raises(ValueError, match="label_smoothing"):
        Seq2SeqConfig(**TINY, label_smoothing=1.0)
