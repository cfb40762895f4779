"""Multi-head attention layers: self-attention (GPT, encoder, decoder) and cross-attention (decoder).

Self-attention, one fused QKV projection:
    qkv = x W_attnᵀ + b_attn                       (B, T, 3C), split into q, k, v views
    head h: A = q_h k_hᵀ / sqrt(hs), P = softmax(A) (masked keys skipped), y_h = P v_h
    out = y W_projᵀ + b_proj                       (B, T, C)

Cross-attention ("encoder-decoder attention"): the same, except that the queries come from the
decoder stream x (B, T, C) and the keys and values from the encoder's output, the memory m
(B, S, C), so the projection is split in two:
    q  = x W_qᵀ + b_q                              (B, T, C)
    kv = m W_kvᵀ + b_kv                            (B, S, 2C), split into k, v views

Parameter names follow nanoGPT: `c_attn` is the fused projection, `c_proj` the output projection;
cross-attention's halves are `c_q` and `c_kv`. Both layers keep the probabilities P of their last
forward in `.probs` (B, NH, T, S): the backward pass needs them, and they are the attention maps.

Attention dropout (GPT-2's attn_pdrop): with `dropout` p > 0, in training,
y_h = (P * M / (1 - p)) v_h, M a Bernoulli(1 - p) mask; `.probs` still holds P. The kernel draws M
from the layer's seed for this forward (nn/context.py) and the backward draws it again from the
same seed (kernels/attention.py), so no mask is stored.

Local attention (`window` W > 0, self-attention only): query t attends to the keys t - W + 1 .. t
(causal) or t - W .. t + W (bidirectional), in time and memory O(T W) (kernels/local_attention.py);
`.probs` then holds P in band layout (B, NH, T, Wk), and `attention_map()` spreads it back to
(B, NH, T, T). W = 0 is global attention.

With a key/value cache (generation, nn/kv_cache.py) self-attention must be causal. A forward of
one position per sequence appends that position's key and value to the cache and attends over
everything the cache holds (kernels.kv_attention_forward); a forward of several positions (a
prompt, into an empty cache) is the ordinary forward, and stores its keys and values as it goes.
With a window the cache keeps only the last W positions, as a ring.
"""
import numpy as np

from .. import kernels as K
from ..util.config import is_int
from .checks import head_size
from .context import site_key
from .layers import Layer, Linear


class AttentionDropout:
    """The (rate, seed) pair a forward passes to the attention kernels and its backward passes
    again, so that both draw the same mask; (0.0, 0) when dropout is off. Always a float and an
    int: other types (an int rate, None) would compile other versions of the kernels."""

    def __init__(self, p, name):
        if not 0.0 <= p < 1.0:
            raise ValueError(f"{name} dropout probability must be in [0, 1), got {p}")
        self.p, self.site = float(p), site_key(f"{name}.attn_dropout")
        self.args = (0.0, 0)

    def draw(self, ctx):
        """Arguments for this forward: the rate and this forward's seed in training, else (0.0, 0)."""
        seed = ctx.dropout_seed(self.site) if self.p > 0.0 else None
        self.args = (self.p, seed) if seed is not None else (0.0, 0)
        return self.args


class SelfAttention(Layer):
    def __init__(self, store, name, n_embd, n_head, causal, bias=True, proj_std=0.02, std=0.02, dropout=0.0,
                 window=0):
        super().__init__()
        head_size(n_embd, n_head, "SelfAttention")
        if not is_int(window) or window < 0:
            raise ValueError(f"{name} attention window must be an integer >= 0 (0: global), got {window!r}")
        self.n_embd, self.n_head, self.causal, self.window = n_embd, n_head, causal, int(window)
        self.drop = AttentionDropout(dropout, name)
        self.draws = self.drop.p > 0.0
        self.c_attn = Linear(store, f"{name}.c_attn", n_embd, 3 * n_embd, bias, std=std)
        self.c_proj = Linear(store, f"{name}.c_proj", n_embd, n_embd, bias, std=proj_std)

    def forward(self, x, ctx):
        """x (B, T, C) -> (B, T, C). Reads ctx.key_mask (None or bool (B, T), True where a key may
        be attended) and ctx.cache."""
        cache = ctx.cache
        if cache is not None and not self.causal:
            raise ValueError("a key/value cache needs causal self-attention")
        B, T, C = x.shape
        qkv = self.c_attn.forward(x.reshape(B * T, C), ctx).reshape(B, T, 3 * C)
        y = self.buffer("y", (B, T, C), x.dtype)
        if cache is not None and T == 1:
            keys, values = cache.layer(self)
            # the attention map; with a window, over the last keys only
            self.probs = self.buffer("cached_probs", (B, self.n_head, 1, keys.shape[2]), x.dtype)
            K.kv_attention_forward(y.reshape(B, C), self.probs.reshape(B, self.n_head, -1), qkv.reshape(B, 3 * C),
                                   keys, values, cache.lengths, self.n_head, self.window)
        else:
            self.q, self.k, self.v = qkv[:, :, :C], qkv[:, :, C:2 * C], qkv[:, :, 2 * C:]
            if self.window:
                width = K.band_width(self.window, self.causal)
                self.probs = self.buffer("band_probs", (B, self.n_head, T, width), x.dtype)  # kept for backward
                K.local_attention_forward(y, self.probs, self.q, self.k, self.v, ctx.key_mask, self.n_head,
                                          self.causal, self.window, *self.drop.draw(ctx))
            else:
                self.probs = self.buffer("probs", (B, self.n_head, T, T), x.dtype)  # kept for backward
                K.attention_forward(y, self.probs, self.q, self.k, self.v, ctx.key_mask, self.n_head, self.causal,
                                    *self.drop.draw(ctx))
            if cache is not None:
                cache.store(self, self.k, self.v)
        return self.c_proj.forward(y.reshape(B * T, C), ctx).reshape(B, T, C)

    def backward(self, dout, dinp, accumulate=True):
        B, T, C = dout.shape
        # temporaries that each receive one gradient: overwritten, so not zeroed first
        dy = self.scratch("dy", (B * T, C), dout.dtype, zero=False)
        self.c_proj.backward(dout.reshape(B * T, C), dy, accumulate=False)
        dqkv = self.scratch("dqkv", (B, T, 3 * C), dout.dtype, zero=False)
        dq, dk, dv = dqkv[:, :, :C], dqkv[:, :, C:2 * C], dqkv[:, :, 2 * C:]
        if self.window:
            K.local_attention_backward(dq, dk, dv, dy.reshape(B, T, C), self.probs, self.q, self.k, self.v, None,
                                       self.n_head, self.causal, self.window, *self.drop.args, False)
        else:
            K.attention_backward(dq, dk, dv, dy.reshape(B, T, C), self.probs, self.q, self.k, self.v, None,
                                 self.n_head, self.causal, *self.drop.args, False)
        self.c_attn.backward(dqkv.reshape(B * T, 3 * C), dinp.reshape(B * T, C), accumulate)

    def attention_map(self):
        """The probabilities of the last full forward as (B, NH, T, T), row t query t, column s key
        s: a copy of `.probs`, or with a window its band layout spread out (0 outside the band)."""
        if not self.window:
            return self.probs.copy()
        B, NH, T, width = self.probs.shape
        keys = np.arange(T)[:, None] - (self.window - 1 if self.causal else self.window) + np.arange(width)
        inside = (keys >= 0) & (keys < T)
        dense = np.zeros((B, NH, T, T), self.probs.dtype)
        dense[:, :, np.nonzero(inside)[0], keys[inside]] = self.probs[:, :, inside]
        return dense


class CrossAttention(Layer):
    def __init__(self, store, name, n_embd, n_head, bias=True, proj_std=0.02, std=0.02, dropout=0.0):
        super().__init__()
        head_size(n_embd, n_head, "CrossAttention")
        self.n_embd, self.n_head = n_embd, n_head
        self.drop = AttentionDropout(dropout, name)
        self.draws = self.drop.p > 0.0
        self.c_q = Linear(store, f"{name}.c_q", n_embd, n_embd, bias, std=std)
        self.c_kv = Linear(store, f"{name}.c_kv", n_embd, 2 * n_embd, bias, std=std)
        self.c_proj = Linear(store, f"{name}.c_proj", n_embd, n_embd, bias, std=proj_std)

    def forward(self, x, ctx):
        """x (B, T, C) queries -> (B, T, C). The keys and values come from ctx.memory: values
        (B, S, C) and mask (B, S) (padding is never attended); the backward adds dL/d(memory) into
        the memory's grad."""
        B, T, C = x.shape
        memory = self.memory = ctx.memory
        S = memory.values.shape[1]
        self.q = self.c_q.forward(x.reshape(B * T, C), ctx).reshape(B, T, C)
        kv = self.c_kv.forward(memory.values.reshape(B * S, C), ctx).reshape(B, S, 2 * C)
        self.k, self.v = kv[:, :, :C], kv[:, :, C:]
        y = self.buffer("y", (B, T, C), x.dtype)
        self.probs = self.buffer("probs", (B, self.n_head, T, S), x.dtype)  # kept for backward
        K.attention_forward(y, self.probs, self.q, self.k, self.v, memory.mask, self.n_head, False,
                            *self.drop.draw(ctx))
        return self.c_proj.forward(y.reshape(B * T, C), ctx).reshape(B, T, C)

    def backward(self, dout, dinp, accumulate=True):
        B, T, C = dout.shape
        S = self.k.shape[1]
        dy = self.scratch("dy", (B * T, C), dout.dtype, zero=False)  # overwritten: no zeroing
        self.c_proj.backward(dout.reshape(B * T, C), dy, accumulate=False)
        dq = self.scratch("dq", (B, T, C), dout.dtype, zero=False)
        dkv = self.scratch("dkv", (B, S, 2 * C), dout.dtype, zero=False)
        K.attention_backward(dq, dkv[:, :, :C], dkv[:, :, C:], dy.reshape(B, T, C),
                             self.probs, self.q, self.k, self.v, None, self.n_head, False,
                             *self.drop.args, False)
        self.c_q.backward(dq.reshape(B * T, C), dinp.reshape(B * T, C), accumulate)
        self.c_kv.backward(dkv.reshape(B * S, 2 * C), self.memory.grad.reshape(B * S, C))

    def attention_map(self):
        """The probabilities of the last forward, (B, NH, T, S): a copy of `.probs`."""
        return self.probs.copy()
