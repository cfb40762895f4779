"""Tests for the buffer bookkeeping of transformer_jit/layers.py and the layers' overwrite mode."""
import threading

import numpy as np
import pytest

from transformer_jit.nn.attention import CrossAttention, SelfAttention
from transformer_jit.nn.block import MLP
from transformer_jit.nn.layers import GELU, Layer, Linear, ReLU
from transformer_jit.nn.parameters import ParameterStore


class A(Layer):
    pass


class B(Layer):
    pass


def test_scratch_is_zeroed_and_shared_by_the_layers_of_one_class():
    a1, a2, b = A(), A(), B()
    x = a1.scratch("dh", (3, 4), np.float64)
    assert x.shape == (3, 4) and np.all(x == 0)
    x[:] = 7.0
    y = a2.scratch("dh", (3, 4), np.float64)  # another layer of the same class: the same memory, zeroed
    assert np.shares_memory(x, y) and np.all(y == 0)
    assert not np.shares_memory(y, a2.scratch("other", (3, 4), np.float64))  # another key
    assert not np.shares_memory(y, b.scratch("dh", (3, 4), np.float64))      # another class
    assert not np.shares_memory(y, a1.scratch("dh", (3, 4), np.float32))     # another dtype


def test_scratch_without_zeroing_keeps_the_old_contents():
    a = A()
    x = a.scratch("t", (3, 4), np.float64)
    x[:] = 7.0
    y = a.scratch("t", (3, 4), np.float64, zero=False)
    assert np.shares_memory(x, y) and np.all(y == 7.0)


def test_scratch_grows_and_serves_smaller_shapes_from_the_same_memory():
    a = A()
    small = a.scratch("t", (2, 3), np.float32)
    big = a.scratch("t", (5, 7), np.float32)
    assert big.shape == (5, 7) and np.all(big == 0)
    again = a.scratch("t", (2, 3), np.float32)
    assert np.shares_memory(again, big) and not np.shares_memory(small, big)


def test_scratch_is_per_thread():
    a = A()
    mine = a.scratch("t", (4,), np.float64)
    theirs = []
    thread = threading.Thread(target=lambda: theirs.append(a.scratch("t", (4,), np.float64)))
    thread.start()
    thread.join()
    assert not np.shares_memory(mine, theirs[0])



def test_model_buffers_start_on_64_byte_boundaries():
    from transformer_jit import GPT, AdamW, GPTConfig
    from transformer_jit.nn.memory import aligned_empty

    for shape, dtype in (((3, 5), np.float32), (7, np.float64), ((2, 3, 4), np.int64)):
        x = aligned_empty(shape, dtype)
        assert x.ctypes.data % 64 == 0 and x.flags.c_contiguous and x.dtype == dtype
        assert x.shape == ((shape,) if isinstance(shape, int) else shape)
    model = GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=16))
    opt = AdamW(model, lr=1e-3)
    x = np.zeros((2, 8), dtype=np.int64)
    model.forward(x, x)
    model.backward()
    arrays = [model.params, model.grads, opt.m, opt.v, model.transformer.layers[0].attn.probs,
              model.transformer.layers[0].mlp.c_fc.forward(np.zeros((4, 16), np.float32))]
    assert all(a.ctypes.data % 64 == 0 for a in arrays)


LAYERS = {  # name -> (make(store), takes (B, T, C) inputs?)
    "linear": (lambda store: Linear(store, "fc", 8, 16), False),
    "gelu": (lambda store: GELU(), False),
    "relu": (lambda store: ReLU(), False),
    "mlp": (lambda store: MLP(store, "mlp", 8), True),
    "self_attention": (lambda store: SelfAttention(store, "attn", 8, 2, causal=True), True),
    "cross_attention": (lambda store: CrossAttention(store, "cross", 8, 2), True),
}


@pytest.mark.parametrize("name", LAYERS)
def test_backward_overwrites_dinp_when_not_accumulating(rng, name):
    """backward(..., accumulate=False) writes dinp without reading it (here NaN) and gives what
    accumulating into zeros gives; the parameter gradients are the same either way."""
    make, three_d = LAYERS[name]
    store = ParameterStore()
    layer = make(store)
    store.build(np.float64, rng)
    x = rng.standard_normal((2, 5, 8) if three_d else (10, 8))
    memory = rng.standard_normal((2, 3, 8))
    out = layer.forward(x, memory) if name == "cross_attention" else layer.forward(x)
    dout = rng.standard_normal(out.shape)
    results = []
    for accumulate, dinp in ((True, np.zeros_like(x)), (False, np.full_like(x, np.nan))):
        store.grad.fill(0)
        dmemory = [np.zeros_like(memory)] if name == "cross_attention" else []
        layer.backward(dout, dinp, *dmemory, accumulate=accumulate)
        results.append([dinp, store.grad.copy(), *dmemory])
    for accumulated, overwritten in zip(*results):
        np.testing.assert_array_equal(overwritten, accumulated)
