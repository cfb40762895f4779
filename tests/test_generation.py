"""Generation: the kernels of one token (matvec, attention over a cache, bfloat16), logits of the
cached steps against full forwards, batches of different lengths, the sliding window, sampling
filters, stop tokens and argument checks."""
import numpy as np
import pytest

from row_independence import assert_rows_independent
from transformer_jit import GPT, GPTConfig
from transformer_jit import kernels as K
from transformer_jit.kernels.bfloat16 import widen
from transformer_jit.models.generation import Sequences, narrow_weights, sample_next
from transformer_jit.nn import Context, KVCache, ParameterStore, SelfAttention

TINY = dict(vocab_size=11, block_size=6, n_layer=2, n_head=2, n_embd=16)


def gelu(x):
    return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))


def bfloat16_to_float64(bits):
    return (bits.astype(np.uint32) << 16).view(np.float32).astype(np.float64)


# ---- kernels ----------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-12), (np.float32, 2e-5)])
@pytest.mark.parametrize("B, C", [(3, 40), (9, 64)])  # C: whole vectors of 8 or 16 and a tail, or none
def test_matvec_matches_numpy(rng, dtype, tol, B, C):
    OC = 37  # two full blocks of rows and a partial one
    x = rng.standard_normal((B, C)).astype(dtype)
    w = rng.standard_normal((OC, C)).astype(dtype)
    bias = rng.standard_normal(OC).astype(dtype)
    y = x.astype(np.float64) @ w.T.astype(np.float64)
    out = np.empty((B, OC), dtype)
    K.matvec(out, x, w, bias, False, False)
    assert out.dtype == dtype
    np.testing.assert_allclose(out, y + bias, rtol=tol, atol=tol * 10)
    K.matvec(out, x, w, np.empty(0, dtype), True, True)  # out += GELU(x wᵀ), no bias
    np.testing.assert_allclose(out, y + bias + gelu(y), rtol=tol, atol=tol * 10)
    assert_rows_independent(K.matvec, x, w, bias)



def test_matvec_reads_bfloat16_weights_and_runs_interpreted(rng):
    x = rng.standard_normal((2, 5)).astype(np.float32)
    w = rng.standard_normal((18, 5)).astype(np.float32)
    narrow = np.empty(w.size, np.uint16)
    K.bfloat16_from_float32(narrow, w.reshape(-1).view(np.uint32))
    narrow = narrow.reshape(w.shape)
    bias = rng.standard_normal(18).astype(np.float32)
    y = x.astype(np.float64) @ bfloat16_to_float64(narrow).T + bias
    for weight, expected in ((w, x.astype(np.float64) @ w.T + bias), (narrow, y)):
        compiled, interpreted = np.empty((2, 18), np.float32), np.empty((2, 18), np.float32)
        K.matvec(compiled, x, weight, bias, False, True)
        K.matvec.py_func(interpreted, x, weight, bias, False, True)
        np.testing.assert_allclose(compiled, gelu(expected), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(interpreted, compiled, rtol=1e-5, atol=1e-6)


def test_bfloat16_rounds_to_nearest_even_and_widens_exactly(rng):
    x = np.concatenate([rng.standard_normal(1000) * 10.0 ** rng.integers(-30, 30, 1000),
                        [0.0, -0.0, 1.0, -2.5, 3.0e38]]).astype(np.float32)
    bits = np.empty(x.size, np.uint16)
    K.bfloat16_from_float32(bits, x.view(np.uint32))
    back = bfloat16_to_float64(bits)
    err = np.abs(back - x) / np.maximum(np.abs(x), 1e-38)
    assert err.max() <= 2.0 ** -8  # half a unit in the last of bfloat16's 8 significant bits
    # the nearest: neither neighbouring bit pattern is closer (past a zero the neighbour is a NaN)
    for step in (-1, 1):
        neighbour = bfloat16_to_float64((bits.astype(np.int64) + step).astype(np.uint16))
        assert np.all(np.nan_to_num(np.abs(neighbour - x), nan=np.inf) >= np.abs(back - x))
    # ties go to the even pattern: 1 + 2^-8 lies halfway between 1 and 1 + 2^-7
    tie = np.array([1 + 2.0 ** -8, 1 + 3 * 2.0 ** -8], np.float32)
    K.bfloat16_from_float32(bits[:2], tie.view(np.uint32))
    np.testing.assert_array_equal(bfloat16_to_float64(bits[:2]), [1.0, 1 + 2.0 ** -6])
    assert widen(bits[1]) == np.float32(1 + 2.0 ** -6) and widen(np.float32(0.5)) == 0.5


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-12), (np.float32, 1e-5)])
def test_kv_attention_appends_and_attends_over_each_rows_prefix(rng, dtype, tol):
    B, NH, hs, W = 3, 2, 4, 6
    C = NH * hs
    positions = np.array([0, 3, 5])
    keys = rng.standard_normal((B, NH, W, hs)).astype(dtype)
    values = rng.standard_normal((B, NH, W, hs)).astype(dtype)
    qkv = rng.standard_normal((B, 3 * C)).astype(dtype)
    out, probs = np.empty((B, C), dtype), np.full((B, NH, W), 7.0, dtype)
    expected_keys, expected_values = keys.copy(), values.copy()
    K.kv_attention_forward(out, probs, qkv, keys, values, positions, NH, 0)
    for b, t in enumerate(positions):
        for h in range(NH):
            q, k, v = (qkv[b, part * C + h * hs:part * C + (h + 1) * hs] for part in range(3))
            expected_keys[b, h, t], expected_values[b, h, t] = k, v
            a = expected_keys[b, h, :t + 1] @ q / np.sqrt(hs)
            p = np.exp(a - a.max())
            p /= p.sum()
            np.testing.assert_allclose(probs[b, h, :t + 1], p, rtol=tol, atol=tol)
            assert not probs[b, h, t + 1:].any()
            np.testing.assert_allclose(out[b, h * hs:(h + 1) * hs], p @ expected_values[b, h, :t + 1], rtol=tol,
                                       atol=tol)
    np.testing.assert_array_equal(keys, expected_keys)  # only the new rows changed
    np.testing.assert_array_equal(values, expected_values)
    again = np.empty_like(out)
    K.kv_attention_forward.py_func(again, probs, qkv, keys, values, positions, NH, 0)
    np.testing.assert_allclose(again, out, rtol=tol, atol=tol)


# ---- the cache against full forwards ----------------------------------------------------------

def random_model(rng, dtype=np.float64, **options):
    model = GPT(GPTConfig(**TINY, **options), seed=0, dtype=dtype)
    model.params[:] = rng.normal(0, 0.3, model.params.shape)  # larger than GPT-2's init: logits that differ
    return model


def full_logits(model, tokens):
    logits, _ = model.forward(np.array([tokens]))
    return logits[0, -1]


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-10), (np.float32, 2e-4)])
@pytest.mark.parametrize("options", [dict(bias=True, positional="learned"),
                                     dict(bias=False, positional="sinusoidal")])
def test_cached_logits_equal_full_forward_at_every_step_and_after_slides(rng, dtype, tol, options):
    model = random_model(rng, dtype, **options).eval()
    bs = model.config.block_size
    keep = (bs + 1) // 2
    prompts = [np.array([1, 2]), np.array([3, 4, 5, 6, 7])]  # lengths 2 and 5: the second slides first
    sequences = Sequences(model, 2, bs)
    logits = sequences.prefill(prompts)
    # the window rule, restated: a full window keeps its last keep - 1 tokens before the next one
    windows = [list(p) for p in prompts]
    for step in range(12):  # past block_size twice for both rows
        for b in range(2):
            np.testing.assert_allclose(logits[b], full_logits(model, windows[b]), rtol=tol, atol=tol)
        tokens = rng.integers(0, model.config.vocab_size, 2)
        for b in range(2):
            if len(windows[b]) == bs:
                windows[b] = windows[b][len(windows[b]) - (keep - 1):]
            windows[b].append(int(tokens[b]))
        logits = sequences.step(tokens)
        assert logits.dtype == dtype
    assert min(len(w) for w in windows) >= keep


def test_rows_do_not_depend_on_the_rest_of_the_batch(rng):
    model = random_model(rng, np.float32)
    a, b, c = [1, 2, 3], [4, 5, 6, 7, 8, 9, 10], [2]
    with_b = model.generate([a, b], 10, seed=3)
    with_c = model.generate([a, c], 10, seed=3)
    np.testing.assert_array_equal(with_b[0], with_c[0])  # row 0 draws from the same generator
    greedy = model.generate([a, b, c], 9, temperature=0)
    for prompt, row in zip([a, b, c], greedy):
        np.testing.assert_array_equal(row, model.generate([prompt], 9, temperature=0)[0])
        assert len(row) == len(prompt) + 9 and np.array_equal(row[:len(prompt)], prompt)


def test_greedy_generation_is_the_argmax_of_full_forwards_through_slides(rng):
    model = random_model(rng, np.float64)
    bs, keep = model.config.block_size, (model.config.block_size + 1) // 2
    prompt = [3, 1, 4, 1, 5, 9, 2, 6]  # longer than block_size: its last block_size tokens count
    out = model.generate(np.array([prompt]), 10, temperature=0)
    window, expected = prompt[-bs:], []
    for _ in range(10):
        expected.append(int(np.argmax(full_logits(model, window))))
        window = (window[len(window) - (keep - 1):] if len(window) == bs else window) + [expected[-1]]
    np.testing.assert_array_equal(out, [prompt + expected])


# ---- sampling ---------------------------------------------------------------------------------

def draws(logits, n=4000, seed=0, **options):
    """n samples from one row of logits, with the options of generate."""
    rows = np.repeat(np.log(np.asarray(logits, np.float64))[None, :], n, axis=0)
    rngs = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(n)]
    args = dict(temperature=1.0, top_k=None, top_p=None)
    args.update(options)
    return sample_next(rows, args["temperature"], args["top_k"], args["top_p"], rngs)


def frequencies(tokens, V):
    return np.bincount(tokens, minlength=V) / len(tokens)


P = [0.05, 0.4, 0.1, 0.3, 0.15]  # most likely first: 1, 3, 4, 2, 0


@pytest.mark.parametrize("options, allowed", [
    (dict(top_k=1), [1]),
    (dict(top_k=3), [1, 3, 4]),
    (dict(top_p=0.35), [1]),
    (dict(top_p=0.6), [1, 3]),
    (dict(top_p=0.9), [1, 3, 4, 2]),
    (dict(top_p=1.0), [0, 1, 2, 3, 4]),
    (dict(top_k=2, top_p=0.5), [1]),  # top-p over the top-2, renormalised: 0.4 / 0.7 >= 0.5
    (dict(top_k=4, top_p=0.7), [1, 3]),
])
def test_top_k_and_top_p_sample_exactly_their_renormalised_set(options, allowed):
    f = frequencies(draws(P, **options), len(P))
    expected = np.zeros(len(P))
    expected[allowed] = np.array(P)[allowed] / np.sum(np.array(P)[allowed])
    assert set(np.flatnonzero(f)) == set(allowed)
    np.testing.assert_allclose(f, expected, atol=0.03)  # 4000 draws: standard error <= 0.008


def test_temperature_scales_the_logits_and_zero_is_greedy():
    for temperature in (0.5, 2.0):
        expected = np.array(P) ** (1 / temperature)
        np.testing.assert_allclose(frequencies(draws(P, temperature=temperature), len(P)), expected / expected.sum(),
                                   atol=0.03)
    assert set(draws(P, n=50, temperature=0, top_k=3)) == {1}


# ---- generate: options, stops, seeds, errors -------------------------------------------------

def test_same_seed_same_tokens_and_mode_restored(rng):
    model = random_model(rng, np.float32)
    prompt = np.array([[1, 2], [3, 4]])
    a = model.generate(prompt, 8, seed=5, top_k=4, top_p=0.9)
    np.testing.assert_array_equal(a, model.generate(prompt, 8, seed=5, top_k=4, top_p=0.9))
    assert not np.array_equal(a, model.generate(prompt, 8, seed=6, top_k=4, top_p=0.9))
    assert a.shape == (2, 10) and np.array_equal(a[:, :2], prompt) and model.training


def test_stop_token_ends_each_row(rng):
    model = random_model(rng, np.float32)
    prompts = [[2, 3], [1], [4]]
    free = model.generate(prompts, 12, seed=1)
    new = free[0][2:]
    first = next(i for i in range(1, 12) if new[i] not in new[:i])  # a token row 0 samples first at step i
    stop = int(new[first])
    out = model.generate(prompts, 12, seed=1, stop_token=stop)
    for row, unstopped, prompt in zip(out, free, prompts):
        # a list row: its prompt and its tokens up to and including its first stop token
        hits = np.flatnonzero(unstopped[len(prompt):] == stop)
        np.testing.assert_array_equal(row, unstopped[:len(prompt) + hits[0] + 1] if hits.size else unstopped)
    assert len(out[0]) == 2 + first + 1
    # an array: rows that stopped hold the stop token after it; it ends when every row has stopped
    alone = model.generate(np.array([prompts[0]]), 12, seed=1, stop_token=stop)
    np.testing.assert_array_equal(alone, [out[0]])
    both = model.generate(np.array([[2, 3], [5, 5]]), 12, seed=1, stop_token=stop)
    np.testing.assert_array_equal(both[0, :len(out[0])], out[0])
    assert (both[0, len(out[0]):] == stop).all() and both.shape[1] >= len(out[0])


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(temperature=float("nan")), ValueError, "temperature"),
    (dict(temperature=-1.0), ValueError, "temperature"),
    (dict(temperature=float("inf")), ValueError, "temperature"),
    (dict(top_k=0), ValueError, "top_k"),
    (dict(top_k=2.5), ValueError, "top_k"),
    (dict(top_p=0.0), ValueError, "top_p"),
    (dict(top_p=1.5), ValueError, "top_p"),
    (dict(top_p=float("nan")), ValueError, "top_p"),
    (dict(max_new_tokens=-1), ValueError, "max_new_tokens"),
    (dict(max_new_tokens=10 ** 12), ValueError, "max_new_tokens"),
    (dict(max_new_tokens=3.0), ValueError, "max_new_tokens"),
    (dict(stop_token=11), ValueError, "stop_token"),
    (dict(seed=-1), ValueError, "seed"),
    (dict(weights="float16"), ValueError, "weights"),
    (dict(idx=[]), ValueError, "idx"),
    (dict(idx=[[1, 2], [[3]]]), ValueError, r"idx\[1\]"),
    (dict(idx=[[1, 2], []]), ValueError, r"idx\[1\]"),
    (dict(idx=np.array([[1, 11]])), ValueError, "idx"),
    (dict(idx=np.array([[0.5]])), TypeError, "idx"),
])
def test_bad_arguments_are_refused_by_name(rng, kwargs, error, match):
    model = random_model(rng, np.float32)
    args = dict(idx=np.array([[1, 2]]), max_new_tokens=3)
    args.update(kwargs)
    with pytest.raises(error, match=match):
        model.generate(**args)


def test_bfloat16_weights_cost_a_small_logit_error_and_leave_the_model_as_it_was(rng):
    model = random_model(rng, np.float32)
    model.params[:] = rng.normal(0, 0.1, model.params.shape)
    prompt = np.array([[1, 2, 3]])
    before = model.forward(prompt)[0].copy()
    greedy = model.generate(prompt, 4, temperature=0)
    assert np.array_equal(model.generate(prompt, 4, temperature=0, weights="bfloat16")[:, :3], prompt)
    np.testing.assert_array_equal(model.forward(prompt)[0], before)  # the copies lived in the call only
    with model.evaluating():
        copies = narrow_weights(model, "bfloat16")
        assert len(copies) == 1 + 4 * model.config.n_layer and all(w.dtype == np.uint16 for w in copies.values())
        narrow = Sequences(model, 1, 6, copies).prefill([greedy[0, :5]]).copy()
        exact = Sequences(model, 1, 6).prefill([greedy[0, :5]])
    spread = exact.max() - exact.min()
    assert 0 < np.abs(narrow - exact).max() < 0.02 * spread


def test_a_cache_is_refused_where_it_cannot_work(rng):
    model = random_model(rng, np.float64).eval()
    cache = KVCache(1, 4, model.dtype)
    with pytest.raises(ValueError, match="targets"):
        model.forward(np.array([[1, 2]]), np.array([[2, 3]]), cache=cache)
    model.forward(np.array([[1, 2]]), cache=cache)
    with pytest.raises(ValueError, match="empty cache"):
        model.forward(np.array([[3, 4]]), cache=cache)  # a second prompt into a cache that holds one
    model.forward(np.array([[3]]), cache=cache)
    model.forward(np.array([[4]]), cache=cache)
    with pytest.raises(ValueError, match="holds 4 positions"):
        model.forward(np.array([[5]]), cache=cache)
    assert list(cache.lengths) == [4]  # the refused forwards wrote nothing
    encoder_attention = SelfAttention(ParameterStore(), "attn", 16, 2, causal=False)
    with pytest.raises(ValueError, match="causal"):
        encoder_attention.forward(np.zeros((1, 1, 16)), Context(cache=cache))
