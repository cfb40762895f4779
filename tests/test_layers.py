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

