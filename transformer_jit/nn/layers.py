"""Layers: each owns its activation buffers and wires kernels together.

The contract every layer keeps (the attention layers, the blocks and the stacks included):

    forward(x, ctx) -> y        ctx: the call's context (nn/context.py), of which each layer reads
                                what concerns it. y is a buffer the layer owns (or x itself, from a
                                layer that changes nothing), valid until its next forward.
    backward(dy, dx, accumulate=True)
                                dL/dx into dx: added, or with accumulate=False written (dx's old
                                contents are never read, so a temporary needs no zeroing); dL/d(its
                                parameters) added into their .grad views. A layer whose input is
                                token ids (Embedding, the stacks) takes dx=None.
    backward differentiates the last forward, whose inputs the layer keeps.

A loss keeps a contract of its own, since the backward pass starts there (nn/loss.py):
forward(logits, targets) -> the mean loss, a float; backward() -> dL/dlogits, a buffer of its own.

"No bias" is bias=False: the layer declares no bias parameter and hands the kernels an empty
(0,) array, which every kernel reads as no bias.

Nothing here does arithmetic itself: all per-element work happens in kernels. Activations are
2-D (N, C) with N = B * T unless a docstring says otherwise; reshaping a C-contiguous array is free.
"""
import functools
import math
import threading
from typing import NamedTuple

import numpy as np

from .. import kernels as K
from ..kernels.int8 import n_blocks
from .checks import check_rows
from .context import RoundedInt8, site_key
from .memory import aligned_empty
from .parameters import constant, normal

# Generation's products have one row per sequence: up to this many rows a matrix-vector product,
# which streams each weight once, beats the tiled matmul, which first copies the weights into panels
# (scripts/bench_few_rows.py measures where).
FEW_ROWS = 32

# Temporaries of backward passes, per thread: {(layer class, key, dtype): flat array}. See Layer.scratch.
_workspace = threading.local()
_no_bias = {}  # dtype -> the empty array that says "no bias" to a kernel


def no_bias(dtype):
    """The (0,) array of `dtype` that kernels read as "no bias"."""
    dtype = np.dtype(dtype)
    if dtype not in _no_bias:
        _no_bias[dtype] = np.empty(0, dtype)
    return _no_bias[dtype]


def bias_data(bias, dtype):
    """A bias parameter's values, or "no bias" for a layer without one."""
    return no_bias(dtype) if bias is None else bias.data


def bias_grad(bias, dtype):
    """A bias parameter's gradient, or "no bias" for a layer without one."""
    return no_bias(dtype) if bias is None else bias.grad


def grown_view(pool, name, shape, dtype):
    """An array of `shape` over pool[name], a flat allocation of `dtype` grown to the largest size
    asked for under that name: smaller shapes reuse it and allocate nothing."""
    size = math.prod(shape)
    flat = pool.get(name)
    if flat is None or flat.dtype != dtype or flat.size < size:
        flat = pool[name] = aligned_empty(size, dtype)
    return flat[:size].reshape(shape)


def pass_gradient(dinp, dout, accumulate):
    """dinp += dout, or dinp = dout with accumulate=False: the backward of an identity."""
    if accumulate:
        K.add_(dinp.reshape(-1), dout.reshape(-1))
    else:
        np.copyto(dinp, dout.reshape(dinp.shape))


class Layer:
    """Buffer bookkeeping shared by all layers: one allocation per key, reused every step.

    A layer that draws random numbers in training sets `draws`; its model then advances the
    forward count that seeds them (nn/context.py)."""

    draws = False

    def __init__(self):
        self._buffers = {}  # key -> the array last handed out
        self._allocations = {}  # key -> the flat allocation behind it, grown to the largest size asked for

    def buffer(self, key, shape, dtype):
        """An array of `shape` and `dtype` that this layer keeps under `key` (its contents are
        whatever was last written there). A smaller shape reuses the memory of a larger one, so
        that shapes which alternate (a prompt, then one token per step) allocate nothing."""
        buf = self._buffers.get(key)
        if buf is None or buf.shape != shape or buf.dtype != dtype:
            buf = self._buffers[key] = grown_view(self._allocations, key, shape, np.dtype(dtype))
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
        buf = grown_view(pool, (type(self), key, np.dtype(dtype)), shape, np.dtype(dtype))
        if zero:
            buf.fill(0)
        return buf

    def modules(self):
        """This layer and every layer inside it, each once, in the order they were declared."""
        seen, order = set(), []

        def visit(layer):
            if id(layer) in seen:
                return
            seen.add(id(layer))
            order.append(layer)
            for value in vars(layer).values():
                for item in value if isinstance(value, list) else [value]:
                    if isinstance(item, Layer):
                        visit(item)

        visit(self)
        return order


class Int8Weight(NamedTuple):
    """A matrix W (OC, C) as int8 numbers and a scale per block of 32 of a row: W ~ scales[o, c // 32] q[o, c]."""
    q: np.ndarray       # (OC, C) int8
    scales: np.ndarray  # (OC, ceil(C / 32)), the model's dtype


class Linear(Layer):
    """y = x Wᵀ + b with W stored (out_features, in_features), like torch.nn.Linear.

    W starts as N(0, std²); std=None means std = in_features^-0.5 (LeCun), which keeps a
    unit-variance input's outputs at unit variance: var(y_o) = sum_c var(W_oc) var(x_c) = 1.
    `weight`, given, is an existing parameter (out_features, in_features) to use instead of a new
    one: a tied matrix, such as a language-model head that is the token embedding.

    Generating (a key/value cache in the context) with up to FEW_ROWS rows, one per sequence, the
    product is a matrix-vector product (kernels.matvec), which may read a narrower copy of W
    (ctx.weight): bfloat16 bits, or an Int8Weight (kernels.matvec_int8, which rounds x to int8 too).
    Otherwise it is the tiled matmul: training and evaluation always take it, so their results do not
    change with the batch size. It reads W, or a copy of W's dtype given in the context (rounded
    values, to evaluate what generation with narrow copies computes; a RoundedInt8 rounds x too).
    """

    def __init__(self, store, name, in_features, out_features, bias=True, std=0.02, weight=None):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        std = in_features ** -0.5 if std is None else std
        if weight is None:
            weight = store.add(f"{name}.weight", (out_features, in_features), True, normal(std))
        elif weight.shape != (out_features, in_features):
            raise ValueError(f"{name}: a shared weight must be {(out_features, in_features)}, got {weight.shape}")
        self.weight = weight
        self.bias = store.add(f"{name}.bias", (out_features,), False, constant(0.0)) if bias else None

    def forward(self, x, ctx):  # x (N, C) -> (N, OC)
        check_rows("Linear input", x, self.weight.data.dtype, self.in_features)
        self.x = x  # backward needs the input for dL/dW = dL/dyᵀ x
        out = self.buffer("out", (x.shape[0], self.out_features), x.dtype)
        bias = bias_data(self.bias, x.dtype)
        if ctx.cache is not None and x.shape[0] <= FEW_ROWS:
            weight = ctx.weight(self)
            if isinstance(weight, Int8Weight):
                K.matvec_int8(out, x, weight.q, weight.scales, bias, False, False)
            else:
                K.matvec(out, x, weight, bias, False, False)
        else:
            if isinstance(ctx.weight(self), RoundedInt8):  # evaluating what int8 generation computes
                rounded = self.buffer("rounded_input", x.shape, x.dtype)
                K.round_to_int8(rounded, x)
                x = rounded
            K.linear_forward(out, x, ctx.dense_weight(self), bias)
        return out

    def backward(self, dout, dinp, accumulate=True):
        K.linear_backward(dinp, self.weight.grad, bias_grad(self.bias, dout.dtype), dout, self.x, self.weight.data,
                          accumulate)

    def bfloat16_weight(self):
        """A bfloat16 copy (uint16 bits) of W as it is now, in a buffer this layer keeps for the next
        copy: half the bytes for generation's matrix-vector products to read."""
        w = self.weight.data
        narrow = self.buffer("bfloat16_weight", w.shape, np.uint16)
        K.bfloat16_from_float32(narrow.reshape(-1), w.reshape(-1).view(np.uint32))
        return narrow

    def int8_weight(self):
        """An int8 copy of W as it is now (kernels/int8.py: a scale per block of 32 weights along a
        row), in buffers this layer keeps for the next copy: a quarter of float32's bytes, plus the
        scales, for generation's matrix-vector products to read."""
        w = self.weight.data
        q = self.buffer("int8_weight", w.shape, np.int8)
        scales = self.buffer("int8_scales", (w.shape[0], n_blocks(w.shape[1])), w.dtype)
        K.quantize_int8(q, scales, w)
        return Int8Weight(q, scales)


class LayerNorm(Layer):
    def __init__(self, store, name, n_features, bias=True, eps=1e-5):
        super().__init__()
        self.n_features, self.eps = n_features, eps
        self.weight = store.add(f"{name}.weight", (n_features,), False, constant(1.0))
        self.bias = store.add(f"{name}.bias", (n_features,), False, constant(0.0)) if bias else None

    def forward(self, x, ctx):  # (N, C) -> (N, C)
        check_rows("LayerNorm input", x, self.weight.data.dtype, self.n_features)
        n = x.shape[0]
        self.x = x
        out = self.buffer("out", x.shape, x.dtype)
        # mean and rstd are cached for backward
        self.mean = self.buffer("mean", (n,), x.dtype)
        self.rstd = self.buffer("rstd", (n,), x.dtype)
        K.layernorm_forward(out, self.mean, self.rstd, x, self.weight.data, bias_data(self.bias, x.dtype), self.eps)
        return out

    def backward(self, dout, dinp, accumulate=True):
        if not accumulate:
            dinp.fill(0)  # the kernel accumulates
        K.layernorm_backward(dinp, self.weight.grad, bias_grad(self.bias, dout.dtype), dout, self.x, self.mean,
                             self.rstd, self.weight.data)


class GELU(Layer):
    """GELU, tanh approximation (as GPT-2), or with exact=True x Phi(x) through erf (as BERT and
    ViT). Elementwise: works on flat views."""

    def __init__(self, exact=False):
        super().__init__()
        self.exact = exact

    def forward(self, x, ctx):
        self.x = x  # backward needs the input
        out = self.buffer("out", x.shape, x.dtype)
        (K.gelu_erf_forward if self.exact else K.gelu_forward)(out.reshape(-1), x.reshape(-1))
        return out

    def backward(self, dout, dinp, accumulate=True):
        (K.gelu_erf_backward if self.exact else K.gelu_backward)(dinp.reshape(-1), dout.reshape(-1),
                                                                 self.x.reshape(-1), accumulate)


class ReLU(Layer):
    """ReLU, the feed-forward activation of "Attention Is All You Need". Elementwise: flat views."""

    def forward(self, x, ctx):
        self.x = x  # backward needs the sign of the input
        out = self.buffer("out", x.shape, x.dtype)
        K.relu_forward(out.reshape(-1), x.reshape(-1))
        return out

    def backward(self, dout, dinp, accumulate=True):
        K.relu_backward(dinp.reshape(-1), dout.reshape(-1), self.x.reshape(-1), accumulate)


ACTIVATIONS = {"gelu": GELU, "gelu_erf": functools.partial(GELU, exact=True), "relu": ReLU}


class Dropout(Layer):
    """Inverted dropout: in training with p > 0, y = x * mask, mask_i = 0 with probability p, else
    1 / (1 - p); otherwise the identity. `name` fixes the site's key, from which each training
    forward's mask is drawn (nn/context.py)."""

    def __init__(self, p, name):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p, self.site = p, site_key(name)
        self.draws = p > 0.0
        self.active = False

    def forward(self, x, ctx):
        seed = ctx.dropout_seed(self.site) if self.draws else None
        self.active = seed is not None
        if not self.active:
            return x
        out = self.buffer("out", x.shape, x.dtype)
        self.mask = self.buffer("mask", x.shape, x.dtype)  # 0 or 1/(1-p), kept for backward
        K.dropout_forward(out.reshape(-1), self.mask.reshape(-1), x.reshape(-1), self.p, seed)
        return out

    def backward(self, dout, dinp, accumulate=True):
        if not self.active:
            pass_gradient(dinp, dout, accumulate)
            return
        if not accumulate:
            dinp.fill(0)  # the kernel accumulates
        K.dropout_backward(dinp.reshape(-1), dout.reshape(-1), self.mask.reshape(-1))


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

    def forward(self, idx, ctx):  # idx (N,) int64 -> (N, C)
        self.idx = idx
        out = self.buffer("out", (idx.shape[0], self.weight.shape[1]), self.weight.data.dtype)
        K.embedding_forward(out, idx, self.weight.data)
        if self.scale != 1.0:
            K.scale_(out.reshape(-1), self.scale)
        return out

    def backward(self, dout, dinp=None, accumulate=True):
        """dinp must be None: token ids have no gradient."""
        if self.scale != 1.0:
            scaled = self.buffer("dout_scaled", dout.shape, dout.dtype)
            np.copyto(scaled, dout)
            K.scale_(scaled.reshape(-1), self.scale)
            dout = scaled
        K.embedding_backward(self.weight.grad, dout, self.idx)


POSITIONALS = ("learned", "sinusoidal")


class PositionalEncoding(Layer):
    """y = x + P[positions] on (B, T, C): P learned (GPT-2's wpe) or the fixed sinusoidal table of
    "Attention Is All You Need". Only the learned table is a parameter.

    Position t of a sequence gets row start + t, where start is
        0                                   an ordinary forward
        drawn uniform in [0, shift]         a training forward, with shift > 0 (the table then has
                                            max_len + shift rows)
        the positions the cache holds       a forward with a cache (generation): each sequence's own
    """

    def __init__(self, store, name, max_len, dim, kind="learned", std=0.02, shift=0):
        super().__init__()
        if kind not in POSITIONALS:
            raise ValueError(f"positional encoding must be one of {POSITIONALS}, got {kind!r}")
        self.kind = kind
        self.max_len, self.dim, self.shift = max_len + shift, dim, shift
        self.draws = shift > 0
        self.weight = store.add(f"{name}.weight", (self.max_len, dim), True, normal(std)) if kind == "learned" else None
        self._table = None  # the sinusoidal table, made at the first forward

    def table(self, dtype):
        if self.weight is not None:
            return self.weight.data
        if self._table is None or self._table.dtype != dtype:
            table = np.empty((self.max_len, self.dim), np.float64)
            K.sinusoidal_table(table)
            self._table = table.astype(dtype)
        return self._table

    def forward(self, x, ctx):
        B, T, C = x.shape
        out = self.buffer("out", x.shape, x.dtype)
        cache = ctx.cache
        if cache is not None and T == 1:  # one new position per sequence, each its own
            rows = self.buffer("rows", (B, C), x.dtype)
            K.embedding_forward(rows, cache.lengths, self.table(x.dtype))
            K.residual_forward(out.reshape(-1), x.reshape(-1), rows.reshape(-1))
            self.start = None
            return out
        self.start = 0 if cache is not None else ctx.first_position(self.shift)  # a cache starts empty here
        if self.start + T > self.max_len:
            raise ValueError(f"positions {self.start}..{self.start + T - 1} run past the table's {self.max_len} rows")
        K.positional_forward(out, x, self.table(x.dtype)[self.start:self.start + T])
        return out

    def backward(self, dout, dinp, accumulate=True):
        """dL/dx = dL/dy; the learned table's rows get dL/dy summed over the batch."""
        if self.weight is not None:
            T = dout.shape[1]
            K.positional_backward(self.weight.grad[self.start:self.start + T], dout)
        pass_gradient(dinp, dout, accumulate)
