"""int8 weights for generation: quantisation with a scale per block of 32, the matrix-vector
kernel that reads them (against a float64 reference), and generate(..., weights="int8")."""
import numpy as np
import pytest

from row_independence import assert_rows_independent
from transformer_jit import GPT, GPTConfig, evaluate_perplexity
from transformer_jit import kernels as K
from transformer_jit.kernels._jit import interpreted
from transformer_jit.kernels.int8 import QBLOCK, n_blocks
from transformer_jit.models.generation import Sequences, narrow_weights, rounded_weights

TINY = dict(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=40)  # 40: a full block and a short one


def quantized(w, dtype=None):
    dtype = dtype or w.dtype
    q = np.empty(w.shape, np.int8)
    scales = np.empty((w.shape[0], n_blocks(w.shape[1])), dtype)
    K.quantize_int8(q, scales, w)
    return q, scales


def reference_dequantized(q, scales):
    """W~[o, c] = scales[o, c // 32] q[o, c], in float64."""
    return q.astype(np.float64) * np.repeat(scales.astype(np.float64), QBLOCK, axis=1)[:, :q.shape[1]]


def gelu(x):
    return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("C", [32, 45, 96])
def test_quantisation_keeps_each_weight_within_half_its_blocks_step(rng, dtype, C):
    w = (rng.standard_normal((5, C)) * rng.choice([1e-3, 1.0, 50.0], (5, 1))).astype(dtype)
    w[1, :QBLOCK] = 0  # a block of zeros: scale 0, every q 0
    q, scales = quantized(w)
    ref = np.abs(w.astype(np.float64))
    for k in range(n_blocks(C)):  # each block's scale is its own absmax / 127
        block = ref[:, k * QBLOCK:(k + 1) * QBLOCK]
        np.testing.assert_allclose(scales[:, k], block.max(axis=1) / 127, rtol=1e-6 if dtype == np.float32 else 1e-14)
    assert np.abs(q.astype(np.int64)).max() == 127 and q.min() >= -127
    assert scales[1, 0] == 0 and not q[1, :QBLOCK].any()
    back = np.empty(w.shape, dtype)
    K.dequantize_int8(back, q, scales)
    np.testing.assert_array_equal(back, reference_dequantized(q, scales).astype(dtype))
    step = np.repeat(scales.astype(np.float64), QBLOCK, axis=1)[:, :C]
    error = np.abs(back.astype(np.float64) - w)
    assert (error <= step / 2 * (1 + 1e-5) + 1e-30).all()  # rounding to the nearest: at most half a step
    assert (np.abs(back) == np.abs(w)).any(axis=1).all()  # each row's largest weight comes back exactly


def test_quantisation_rounds_the_exact_quotient():
    """q = round(w / scale) with w / scale the correctly rounded quotient, never w (1 / scale):
    weights a few ulps from the halfway points k + 1/2, where the two round differently."""
    def rounded(v):
        return np.sign(v) * np.minimum(np.floor(np.abs(v) + np.float32(0.5)), 127)
    scale = np.float32(1) / np.float32(127)  # the scale of a block whose largest |w| is 1
    halves = ((np.arange(127) + 0.5) * np.float64(scale)).astype(np.float32)
    near = [halves]
    for direction in (0, 2):
        v = halves
        for _ in range(4):
            v = np.nextafter(v, np.float32(direction))
            near.append(v)
    near = np.concatenate(near)
    near = np.concatenate([near, -near])
    differ = near[rounded(near / scale) != rounded(near * (np.float32(1) / scale))]
    assert len(differ) >= 10
    w = np.zeros((len(differ), QBLOCK), np.float32)
    w[:, 0], w[:, 1] = 1, differ
    q, scales = quantized(w)
    assert (scales == scale).all()
    np.testing.assert_array_equal(q[:, 1], rounded(differ / scale))


def test_halves_round_away_from_zero():
    w = np.array([[127.0, 0.5, -0.5, 1.5, -2.5, 126.5] + [0.0] * 26])
    q, scales = quantized(w)
    assert scales[0, 0] == 1.0
    np.testing.assert_array_equal(q[0, :6], [127, 1, -1, 2, -3, 127])


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-12), (np.float32, 2e-5)])
@pytest.mark.parametrize("B, C", [(3, 45), (9, 64)])
def test_matvec_int8_matches_a_float64_reference_over_x_rounded_alike(rng, dtype, tol, B, C):
    OC = 37  # more than one block of rows, not a multiple of it
    x = rng.standard_normal((B, C)).astype(dtype)
    q, scales = quantized(rng.standard_normal((OC, C)).astype(dtype))
    bias = rng.standard_normal(OC).astype(dtype)
    y = reference_dequantized(*quantized(x)) @ reference_dequantized(q, scales).T + bias
    out = np.full((B, OC), np.nan, dtype)
    K.matvec_int8(out, x, q, scales, bias, False, False)
    np.testing.assert_allclose(out, y, rtol=tol, atol=tol)
    residual = rng.standard_normal((B, OC)).astype(dtype)
    out = residual.copy()
    K.matvec_int8(out, x, q, scales, np.empty(0, dtype), True, True)  # out += GELU(x~ W~ᵀ), no bias
    np.testing.assert_allclose(out, residual + gelu(y - bias), rtol=tol, atol=tol)
    assert_rows_independent(K.matvec_int8, x, q, scales, bias)
    unrounded = x.astype(np.float64) @ reference_dequantized(q, scales).T + bias
    assert np.abs(out - residual - gelu(unrounded - bias)).max() > 100 * tol  # x was rounded


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("B, C", [(1, 64), (9, 96), (5, 45)])
def test_matvec_int8_sums_the_integer_products_exactly(rng, dtype, B, C):
    """Every block holds a 127 or -127, so every scale is 1: the result is the integer dot product,
    exact in either dtype (below 2^24), a shorter last block included."""
    def integers(rows):
        v = rng.integers(-127, 128, (rows, C))
        v[:, ::QBLOCK] = rng.choice([-127, 127], (rows, n_blocks(C)))
        return v
    x, w = integers(B), integers(37)
    q, scales = quantized(w.astype(dtype))
    assert (scales == 1).all()
    out = np.empty((B, 37), dtype)
    K.matvec_int8(out, x.astype(dtype), q, scales, np.zeros(37, dtype), False, False)
    np.testing.assert_array_equal(out, x @ w.T)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_round_to_int8_gives_the_rows_the_int8_products_read(rng, dtype):
    x = (rng.standard_normal((4, 45)) * rng.choice([1e-3, 1.0, 50.0], (4, 1))).astype(dtype)
    out = np.empty_like(x)
    K.round_to_int8(out, x)
    np.testing.assert_array_equal(out, reference_dequantized(*quantized(x)).astype(dtype))


def test_matvec_int8_runs_interpreted_as_compiled(rng):
    x = rng.standard_normal((2, 40))
    q, scales = quantized(rng.standard_normal((18, 40)))
    bias = rng.standard_normal(18)
    compiled, slow = np.empty((2, 18)), np.empty((2, 18))
    K.matvec_int8(compiled, x, q, scales, bias, False, True)
    with interpreted(K.matvec_int8) as matvec_int8:
        matvec_int8(slow, x, q, scales, bias, False, True)
    np.testing.assert_allclose(slow, compiled, rtol=1e-12, atol=1e-12)


def random_model(rng, dtype=np.float32):
    model = GPT(GPTConfig(**TINY), seed=0, dtype=dtype)
    model.params[:] = rng.normal(0, 0.3, model.params.shape)
    return model


def test_int8_weights_give_logits_close_to_float32_and_leave_the_model_as_it_was(rng):
    model = random_model(rng)
    prompt = np.array([[1, 2, 3]])
    before = model.forward(prompt)[0].copy()
    assert np.array_equal(model.generate(prompt, 4, temperature=0, weights="int8")[:, :3], prompt)
    np.testing.assert_array_equal(model.forward(prompt)[0], before)  # the copies lived in the call only
    with model.evaluating():
        copies = narrow_weights(model, "int8")
        assert len(copies) == 1 + 4 * model.config.n_layer
        assert all(w.q.dtype == np.int8 and w.scales.dtype == np.float32 for w in copies.values())
        tokens = np.array([4, 1, 7, 2, 9])
        int8 = Sequences(model, 1, 6, copies).prefill([tokens]).copy()
        bf16 = Sequences(model, 1, 6, narrow_weights(model, "bfloat16")).prefill([tokens]).copy()
        exact = Sequences(model, 1, 6).prefill([tokens])
    spread = exact.max() - exact.min()
    assert 0 < np.abs(int8 - exact).max() < 0.05 * spread
    assert np.abs(int8 - exact).max() > np.abs(bf16 - exact).max()  # 8 bits, not bfloat16's 8 of mantissa


def test_a_sequences_int8_logits_do_not_depend_on_the_rest_of_the_batch(rng):
    model = random_model(rng)
    prompts = [np.array([1, 2, 3]), np.array([5]), np.array([7, 7, 0, 4])]
    steps = np.array([[4, 6, 8], [2, 2, 10]])  # the next token of each sequence, twice
    with model.evaluating():
        copies = narrow_weights(model, "int8")
        batch = Sequences(model, 3, 7, copies)
        together = [batch.prefill(prompts).copy()] + [batch.step(tokens).copy() for tokens in steps]
        for row, prompt in enumerate(prompts):
            one = Sequences(model, 1, 7, copies)
            alone = [one.prefill([prompt]).copy()] + [one.step(tokens[row:row + 1]).copy() for tokens in steps]
            for a, b in zip(alone, together):
                np.testing.assert_array_equal(a[0], b[row])


@pytest.mark.parametrize("weights", ["bfloat16", "int8"])
def test_a_forward_with_rounded_weights_computes_what_generation_with_the_copies_does(rng, weights):
    model = random_model(rng)
    tokens = np.array([4, 1, 7, 2, 9, 3])
    with model.evaluating():
        generated = Sequences(model, 1, 6, narrow_weights(model, weights)).prefill([tokens])[0].copy()
        rounded = model.forward(tokens[None, :], weights=rounded_weights(model, weights))[0][0, -1].copy()
        exact = model.forward(tokens[None, :])[0][0, -1]
    np.testing.assert_allclose(rounded, generated, rtol=1e-5, atol=1e-5)
    assert np.abs(rounded - exact).max() > 1e3 * np.abs(rounded - generated).max()  # they are the copies' values


def test_perplexity_with_int8_weights_is_close_to_float32s_and_not_equal(rng):
    model = random_model(rng)
    ids = rng.integers(0, TINY["vocab_size"], 40)
    exact = evaluate_perplexity(model, ids).loss
    int8 = evaluate_perplexity(model, ids, weights="int8").loss
    assert int8 != exact and abs(int8 / exact - 1) < 0.02
    with pytest.raises(ValueError, match="weights must be one of"):
        evaluate_perplexity(model, ids, weights="float16")


@pytest.mark.parametrize("dtype, weights, message", [
    (np.float32, "int4", r"weights must be one of \(None, 'bfloat16', 'int8'\), got 'int4'"),
    (np.float64, "int8", "int8 weights need a float32 model, this one is float64"),
    (np.float64, "bfloat16", "bfloat16 weights need a float32 model, this one is float64"),
])
def test_bad_weights_are_refused(rng, dtype, weights, message):
    with pytest.raises(ValueError, match=message):
        random_model(rng, dtype).generate(np.array([[1, 2]]), 2, weights=weights)


def test_a_nan_weight_inside_a_block_is_reported_by_int8_generation_as_by_float32(rng):
    model = random_model(rng)
    layer = next(m for m in model.modules() if type(m).__name__ == "Linear")
    layer.weight.data[3, 5] = np.nan  # not the first of its block: a chain of maxima skipped it
    for weights in (None, "int8"):
        with pytest.raises(FloatingPointError, match="weights hold inf or NaN"):
            model.generate(np.array([[1, 2]]), 3, temperature=0, weights=weights)
