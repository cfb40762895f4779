"""The layers' buffer bookkeeping, and the layer contract (nn/layers.py) held by every layer."""
import threading

import numpy as np
import pytest

from transformer_jit.nn.attention import CrossAttention, SelfAttention
from transformer_jit.nn.block import GPT2, MLP, PAPER, Block
from transformer_jit.nn.context import Context, Memory
from transformer_jit.nn.layers import GELU, Dropout, Layer, LayerNorm, Linear, PositionalEncoding, ReLU
from transformer_jit.nn.parameters import ParameterStore
from transformer_jit.nn.patches import ClassToken, PatchEmbedding


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
              model.transformer.layers[0].mlp.c_fc.forward(np.zeros((4, 16), np.float32), Context())]
    assert all(a.ctypes.data % 64 == 0 for a in arrays)


LAYERS = {  # name -> (make(store), input shape): every layer that takes activations, and blocks of each kind
    "linear": (lambda store: Linear(store, "fc", 8, 16), (10, 8)),
    "linear without bias": (lambda store: Linear(store, "fc", 8, 16, bias=False), (3, 8)),
    "layernorm": (lambda store: LayerNorm(store, "ln", 8), (10, 8)),
    "layernorm without bias": (lambda store: LayerNorm(store, "ln", 8, bias=False), (10, 8)),
    "gelu": (lambda store: GELU(), (10, 8)),
    "gelu exact": (lambda store: GELU(exact=True), (10, 8)),
    "relu": (lambda store: ReLU(), (10, 8)),
    "dropout": (lambda store: Dropout(0.3, "drop"), (10, 8)),
    "dropout off": (lambda store: Dropout(0.0, "drop"), (10, 8)),
    "positions": (lambda store: PositionalEncoding(store, "pos", 6, 8), (2, 5, 8)),
    "patch embedding": (lambda store: PatchEmbedding(store, "patch_embed", 3, 2, 8), (2, 3, 4, 6)),
    "class token": (lambda store: ClassToken(store, "cls_token", 8), (2, 5, 8)),
    "mlp": (lambda store: MLP(store, "mlp", 8), (2, 5, 8)),
    "self_attention": (lambda store: SelfAttention(store, "attn", 8, 2, causal=True, dropout=0.2), (2, 5, 8)),
    "cross_attention": (lambda store: CrossAttention(store, "cross", 8, 2, dropout=0.2), (2, 5, 8)),
    "gpt block": (lambda store: Block(store, "b", 8, 2, 1, causal=True, style=GPT2, dropout=0.2), (2, 5, 8)),
    "post-LN decoder block": (lambda store: Block(store, "b", 8, 2, 1, causal=True, style=PAPER, norm_first=False,
                                                  cross_attention=True, activation="relu", dropout=0.2), (2, 5, 8)),
}


@pytest.mark.parametrize("name", LAYERS)
def test_every_layer_keeps_the_contract(rng, name):
    """forward(x, ctx); backward(dout, dinp) adds dL/dx into dinp, backward(..., accumulate=False)
    writes it without reading dinp (here NaN), and both give the same parameter gradients (and, in
    a decoder block, the same dL/d(memory))."""
    make, shape = LAYERS[name]
    store = ParameterStore()
    layer = make(store)
    store.build(np.float64, rng)
    x = rng.standard_normal(shape)
    memory = Memory(rng.standard_normal((2, 3, 8)), np.array([[True, True, False], [True, True, True]]))
    ctx = Context(training=True, seed=5, count=1, memory=memory)
    out = layer.forward(x, ctx)
    dout = rng.standard_normal(out.shape)
    start = rng.standard_normal(shape)
    results = []
    for accumulate, dinp in ((True, start.copy()), (False, np.full_like(x, np.nan))):
        store.grad.fill(0)
        memory.grad = np.zeros_like(memory.values)
        layer.backward(dout, dinp, accumulate=accumulate)
        results.append([dinp - start if accumulate else dinp, store.grad.copy(), memory.grad])
    for accumulated, overwritten in zip(*results):
        np.testing.assert_allclose(overwritten, accumulated, rtol=1e-12, atol=1e-12)
    assert np.abs(results[1][0]).max() > 0  # a gradient reached the input
