"""Layers: each owns its activation buffers and wires kernels together.

Every layer has
    forward(x) -> out         out is a buffer the layer owns, valid until its next forward
    backward(dout, dinp)      ACCUMULATES dL/d(input) into the caller's dinp and dL/d(params)
                              into the parameters' .grad views
Linear, the activations, the attentions and the MLP also take backward(..., accumulate=False),
which overwrites dinp instead: a temporary that receives a single gradient then needs no zeroing.
Nothing here does arithmetic itself: all per-element work happens in kernels. Activations are
2-D (N, C) with N = B * T unless a docstring says otherwise; reshaping a C-contiguous array is free.

Generation's path: the layers it runs also have `decode(...)`, on (B, C) rows, one new position
per sequence. It keeps nothing for a backward and uses buffers of its own, so it leaves the
training buffers alone. Its products are matrix-vector products (kernels.matvec), which read
`decode_weight` when that is set (a bfloat16 copy while a generation runs) and the parameter
otherwise.
"""
import math
import threading

import numpy as np

from .. import kernels as K
from .checks import check_array
from .memory import aligned_empty
from .parameters import constant, normal


# Temporaries of backward passes, per thread: {(layer class, key, dtype): flat array}. See Layer.scratch.
_workspace = threading.local()


class Layer:
    """Buffer bookkeeping shared by all layers: one allocation per (shape, dtype), reused every step."""

    def __init__(self):
        self._buffers = {}

    def buffer(self, key, shape, dtype):
        buf = self._buffers.get(key)
        if buf is None or buf.shape != shape or buf.dtype != dtype:
            buf = aligned_empty(shape, dtype)
            self._buffers[key] = buf
        return buf

    def zeros(self, key, shape, dtype):
        buf = self.buffer(key, shape, dtype)
        buf.fill(0)
        return buf

    def scratch(self, key, shape, dtype, zero=True):
        """An array (zeroed unless zero=False) for a temporary that lives only inside one backward()
        call.

        Backward passes run one layer at a time, so every layer of a class can share such a
        temporary: it is taken from one pool per thread (grown to the largest shape asked for),
        not held per layer, so a deep model holds one block's gradient temporaries, not one set
        per block. Two temporaries in use at the same time must have different keys or come from
        different classes."""
        pool = getattr(_workspace, "pool", None)
        if pool is None:
            pool = _workspace.pool = {}
        name = (type(self), key, np.dtype(dtype))
        size = math.prod(shape)
        flat = pool.get(name)
        if flat is None or flat.size < size:
            flat = pool[name] = aligned_empty(size, dtype)
        buf = flat[:size].reshape(shape)
        if zero:
            buf.fill(0)
        return buf


class Linear(Layer):
    """y = x Wᵀ + b with W stored (out_features, in_features), like torch.nn.Linear.

    W starts as N(0, std²); std=None means std = in_features^-0.5 (LeCun), which keeps a
    unit-variance input's outputs at unit variance: var(y_o) = sum_c var(W_oc) var(x_c) = 1.
    """

    def __init__(self, store, name, in_features, out_features, bias=True, std=0.02):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        std = in_features ** -0.5 if std is None else std
        self.weight = store.add(f"{name}.weight", (out_features, in_features), True, normal(std))
        self.bias = store.add(f"{name}.bias", (out_features,), False, constant(0.0)) if bias else None
        self.decode_weight = None

    def forward(self, x):  # x (N, C) -> (N, OC)
        check_array("Linear input", x, self.weight.data.dtype, (None, self.in_features))
        self.x = x  # backward needs the input for dL/dW = dL/dyᵀ x
        out = self.buffer("out", (x.shape[0], self.out_features), x.dtype)
        K.linear_forward(out, x, self.weight.data, None if self.bias is None else self.bias.data)
        return out

    def backward(self, dout, dinp, accumulate=True):
        K.linear_backward(dinp, self.weight.grad, None if self.bias is None else self.bias.grad,
                          dout, self.x, self.weight.data, accumulate)

    def decode(self, x, into=None, gelu=False):
        """x (B, C) -> GELU(x Wᵀ + b) if gelu else x Wᵀ + b, (B, OC), a buffer of this layer; or,
        given `into` (B, OC), that added into it (a residual stream) and `into` returned."""
        out = into if into is not None else self.buffer("decode_out", (x.shape[0], self.out_features), x.dtype)
        bias = self.bias.data if self.bias is not None else self.buffer("no_bias", (0,), x.dtype)
        K.matvec(out, x, weight_to_decode(self), bias, into is not None, gelu)
        return out


def weight_to_decode(layer):
    """The matrix that `layer.decode` multiplies by: its `decode_weight` copy if one is set, else
    the parameter itself."""
    return layer.decode_weight if layer.decode_weight is not None else layer.weight.data


class LayerNorm(Layer):
    def __init__(self, store, name, n_features, bias=True, eps=1e-5):
        super().__init__()
        self.n_features, self.eps = n_features, eps
        self.weight = store.add(f"{name}.weight", (n_features,), False, constant(1.0))
        # Without a learned bias (GPTConfig.bias=False) the kernel still gets a zero bias whose
        # gradient is simply discarded.
        self.bias = store.add(f"{name}.bias", (n_features,), False, constant(0.0)) if bias else None

    def forward(self, x):  # (N, C) -> (N, C)
        check_array("LayerNorm input", x, self.weight.data.dtype, (None, self.n_features))
        n = x.shape[0]
        self.x = x
        out = self.buffer("out", x.shape, x.dtype)
        # mean and rstd are cached for backward
        self.mean = self.buffer("mean", (n,), x.dtype)
        self.rstd = self.buffer("rstd", (n,), x.dtype)
        K.layernorm_forward(out, self.mean, self.rstd, x, self.weight.data, self._bias(x.dtype), self.eps)
        return out

    def decode(self, x):
        """x (B, C) -> (B, C) normalized, a buffer of this layer (the statistics are not kept)."""
        out = self.buffer("decode_out", x.shape, x.dtype)
        stats = self.buffer("decode_stats", (2, x.shape[0]), x.dtype)
        K.layernorm_forward(out, stats[0], stats[1], x, self.weight.data, self._bias(x.dtype), self.eps)
        return out

    def backward(self, dout, dinp):
        dbias = self.bias.grad if self.bias is not None else self.zeros("dbias", (self.n_features,), dout.dtype)
        K.layernorm_backward(dinp, self.weight.grad, dbias, dout, self.x, self.mean, self.rstd, self.weight.data)

    def _bias(self, dtype):
        if self.bias is not None:
            return self.bias.data
        return self.zeros("bias", (self.n_features,), dtype)


class GELU(Layer):
    """GELU, tanh approximation (as GPT-2). Elementwise: works on flat views."""

    def forward(self, x):
        self.x = x  # backward needs the input
        out = self.buffer("out", x.shape, x.dtype)
        K.gelu_forward(out.reshape(-1), x.reshape(-1))
        return out

    def backward(self, dout, dinp, accumulate=True):
        K.gelu_backward(dinp.reshape(-1), dout.reshape(-1), self.x.reshape(-1), accumulate)


class ReLU(Layer):
    """ReLU, the feed-forward activation of "Attention Is All You Need". Elementwise: flat views."""

    def forward(self, x):
        self.x = x  # backward needs the sign of the input
        out = self.buffer("out", x.shape, x.dtype)
        K.relu_forward(out.reshape(-1), x.reshape(-1))
        return out

    def backward(self, dout, dinp, accumulate=True):
        K.relu_backward(dinp.reshape(-1), dout.reshape(-1), self.x.reshape(-1), accumulate)


ACTIVATIONS = {"gelu": GELU, "relu": ReLU}


class Dropout(Layer):
    """Inverted dropout. In training mode with p > 0 each call needs a fresh seed; otherwise identity."""

    def __init__(self, p):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = p
        self.active = False

    def forward(self, x, seed):
        self.active = self.p > 0.0 and seed is not None
        if not self.active:
            return x
        out = self.buffer("out", x.shape, x.dtype)
        self.mask = self.buffer("mask", x.shape, x.dtype)  # 0 or 1/(1-p), kept for backward
        K.dropout_forward(out.reshape(-1), self.mask.reshape(-1), x.reshape(-1), self.p, seed)
        return out

    def backward(self, dout, dinp):
        if self.active:
            K.dropout_backward(dinp.reshape(-1), dout.reshape(-1), self.mask.reshape(-1))
        else:
            K.add_(dinp.reshape(-1), dout.reshape(-1))  # identity: dinp += dout


class Embedding(Layer):
    """Token embedding: row lookup, and its scatter-add backward.

    With `scale` != 1 the looked-up rows are multiplied by it: "Attention Is All You Need" (3.4)
    multiplies embeddings by sqrt(d_model), so that with an init std of d_model^-0.5 a token
    vector has unit-size entries, comparable to the sinusoidal position table it is added to,
    while the same matrix, used unscaled as the tied output projection, gives logits of order 1.
        y = s W[idx]    =>    dL/dW[idx[n]] += s dL/dy[n]
    """

    def __init__(self, store, name, num_embeddings, dim, std=0.02, scale=1.0):
        super().__init__()
        self.weight = store.add(f"{name}.weight", (num_embeddings, dim), True, normal(std))
        self.scale = float(scale)

    def forward(self, idx):  # idx (N,) int64 -> (N, C)
        self.idx = idx
        out = self.buffer("out", (idx.shape[0], self.weight.shape[1]), self.weight.data.dtype)
        K.embedding_forward(out, idx, self.weight.data)
        if self.scale != 1.0:
            K.scale_(out.reshape(-1), self.scale)
        return out

    def backward(self, dout):
        if self.scale != 1.0:
            scaled = self.buffer("dout_scaled", dout.shape, dout.dtype)
            np.copyto(scaled, dout)
            K.scale_(scaled.reshape(-1), self.scale)
            dout = scaled
        K.embedding_backward(self.weight.grad, dout, self.idx)


POSITIONALS = ("learned", "sinusoidal")


class PositionalEncoding(Layer):
    """Adds a position table to (B, T, C): learned (GPT-2's wpe) or the fixed sinusoidal table of
    "Attention Is All You Need". Only the learned table is a parameter."""

    def __init__(self, store, name, max_len, dim, kind="learned", std=0.02):
        super().__init__()
        if kind not in POSITIONALS:
            raise ValueError(f"positional encoding must be one of {POSITIONALS}, got {kind!r}")
        self.kind = kind
        self.max_len, self.dim = max_len, dim
        self.weight = store.add(f"{name}.weight", (max_len, dim), True, normal(std)) if kind == "learned" else None

    def table(self, dtype):
        if self.weight is not None:
            return self.weight.data
        table = self._buffers.get("table")
        if table is None or table.dtype != dtype:
            table = self.buffer("table", (self.max_len, self.dim), np.float64)
            K.sinusoidal_table(table)
            table = self._buffers["table"] = table.astype(dtype)
        return table

    def forward(self, x, start=0):
        """x (B, T, C), added to in place: position t gets row start + t of the table."""
        T = x.shape[1]
        if start + T > self.max_len:
            raise ValueError(f"positions {start}..{start + T - 1} run past the table's {self.max_len} rows")
        self.start = start
        K.positional_forward(x, x, self.table(x.dtype)[start:start + T])
        return x

    def decode(self, x, positions):
        """x (B, C), one position per row, added to in place: row b gets row positions[b] of the
        table. positions: (B,) int64, each in [0, max_len)."""
        rows = self.buffer("decode_rows", x.shape, x.dtype)
        K.embedding_forward(rows, positions, self.table(x.dtype))
        K.add_(x.reshape(-1), rows.reshape(-1))
        return x

    def backward(self, dout):  # dL/dx is dout itself; only the learned table has a gradient
        if self.weight is not None:
            T = dout.shape[1]
            K.positional_backward(self.weight.grad[self.start:self.start + T], dout)
