"""Tests for the buffer bookkeeping of transformer_jit/layers.py."""
import threading

import numpy as np

from transformer_jit.layers import Layer


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
    from transformer_jit.memory import aligned_empty

    for shape, dtype in (((3, 5), np.float32), (7, np.float64), ((2, 3, 4), np.int64)):
        x = aligned_empty(shape, dtype)
        assert x.ctypes.data % 64 == 0 and x.flags.c_contiguous and x.dtype == dtype
        assert x.shape == ((shape,) if isinstance(shape, int) else shape)
    model = GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=16))
    opt = AdamW(model, lr=1e-3)
    x = np.zeros((2, 8), dtype=np.int64)
    model.forward(x, x)
    model.backward()
    arrays = [model.params, model.grads, opt.m, opt.v, model.blocks[0].attn.probs,
              model.blocks[0].mlp.c_fc.forward(np.zeros((4, 16), np.float32))]
    assert all(a.ctypes.data % 64 == 0 for a in arrays)
