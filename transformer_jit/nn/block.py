"""The transformer block: sub-layers (self-attention, optional cross-attention, feed-forward), each
wrapped in a residual connection with a layer norm.

Two placements of the layer norm, per sub-layer f:
    pre-LN  (GPT-2, the default):             y = x + dropout(f(LN(x)))
    post-LN ("Attention Is All You Need"):    y = LN(x + dropout(f(x)))
Pre-LN leaves an identity path from the loss to every layer's input, which is why it trains
stably without a careful warm-up; post-LN is the paper's original arrangement. A pre-LN stack needs
one more layer norm after its last block (the model adds it); a post-LN stack ends normalised.

A GPT block and an encoder block have two sub-layers, a decoder block three:
    x1 = sub(x,  self-attention)               causal in GPT and decoder, key padding mask in encoder
    x2 = sub(x1, cross-attention over memory)  decoder only: memory = the encoder's output
    x3 = sub(x2, feed-forward)                 ffn(h) = c_proj(act(c_fc(h))), hidden width 4C
With attn_dropout > 0 the attention layers also drop attention probabilities (GPT-2's attn_pdrop),
each with a seed of its own.

Backward, by hand, in reverse. For one pre-LN sub-layer, from dL/dy:
    dL/dx = dL/dy + LNᵀ fᵀ dropoutᵀ dL/dy      (the residual passes the gradient through unchanged)
and for a post-LN one, with s = x + dropout(f(x)) and ds = LNᵀ dL/dy:
    dL/dx = ds + fᵀ dropoutᵀ ds
"""
import math

from .. import kernels as K
from .attention import CrossAttention, SelfAttention
from .layers import ACTIVATIONS, GELU, Dropout, Layer, LayerNorm, Linear

# State-dict names of a block's parts. GPT keeps nanoGPT's names, so GPT-2 weights map one to one;
# the encoder and decoder use names that read like the paper's parts.
GPT2_NAMES = {"ln_1": "ln_1", "attn": "attn", "ln_2": "ln_2", "mlp": "mlp"}
PAPER_NAMES = {"ln_1": "self_attn_norm", "attn": "self_attn", "ln_cross": "cross_attn_norm",
               "cross_attn": "cross_attn", "ln_2": "ffn_norm", "mlp": "ffn"}


def residual_std(n_layer):
    """GPT-2 scales the init of projections that write into the residual stream by 1/sqrt(2 n_layer),
    so the stream's variance does not grow with depth (two such writes per block)."""
    return 0.02 / math.sqrt(2 * n_layer)


class MLP(Layer):
    """The position-wise feed-forward network, on (..., C) inputs: c_proj(act(c_fc(h)))."""

    def __init__(self, store, name, n_embd, bias=True, proj_std=0.02, hidden=None, activation="gelu", std=0.02):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        hidden = hidden or 4 * n_embd
        self.c_fc = Linear(store, f"{name}.c_fc", n_embd, hidden, bias, std=std)
        self.act = ACTIVATIONS[activation]()
        self.c_proj = Linear(store, f"{name}.c_proj", hidden, n_embd, bias, std=proj_std)

    def forward(self, x):  # (..., C) -> (..., C); every position independently
        C = x.shape[-1]
        return self.c_proj.forward(self.act.forward(self.c_fc.forward(x.reshape(-1, C)))).reshape(x.shape)

    def decode(self, h, into):
        """Generation: h (B, C) -> into += c_proj(GELU(c_fc(h))), the GELU fused into c_fc's product."""
        if not isinstance(self.act, GELU):
            raise ValueError(f"decoding needs a GELU feed-forward layer, this one has {type(self.act).__name__}")
        self.c_proj.decode(self.c_fc.decode(h, gelu=True), into=into)

    def backward(self, dout, dinp, accumulate=True):
        C = dout.shape[-1]
        dh = self.scratch("dh", self.act.x.shape, dout.dtype, zero=False)  # overwritten: no zeroing
        self.c_proj.backward(dout.reshape(-1, C), dh, accumulate=False)
        dpre = self.scratch("dpre", self.act.x.shape, dout.dtype, zero=False)
        self.act.backward(dh, dpre, accumulate=False)
        self.c_fc.backward(dpre, dinp.reshape(-1, C), accumulate)


class Residual(Layer):
    """One sub-layer f with its residual connection, dropout and layer norm (pre- or post-LN).

    f is a layer with forward(h (B, T, C), *args) -> (B, T, C) and backward(dout, dinp, *extra).
    """

    def __init__(self, norm, fn, dropout, norm_first):
        super().__init__()
        self.norm, self.fn, self.drop, self.norm_first = norm, fn, Dropout(dropout), norm_first

    def forward(self, x, seed, *args):
        B, T, C = x.shape
        N = B * T
        if self.norm_first:  # y = x + dropout(f(LN(x)))
            h = self.fn.forward(self.norm.forward(x.reshape(N, C)).reshape(B, T, C), *args)
            h = self.drop.forward(h, seed)
            y = self.buffer("y", (B, T, C), x.dtype)
            K.residual_forward(y.reshape(-1), x.reshape(-1), h.reshape(-1))
            return y
        # y = LN(x + dropout(f(x)))
        h = self.drop.forward(self.fn.forward(x, *args), seed)
        s = self.buffer("s", (B, T, C), x.dtype)
        K.residual_forward(s.reshape(-1), x.reshape(-1), h.reshape(-1))
        return self.norm.forward(s.reshape(N, C)).reshape(B, T, C)

    def backward(self, dout, dinp, *extra):
        """dout (B, T, C) = dL/dy; ACCUMULATES dL/dx into dinp; `extra` goes to f.backward
        (cross-attention's dL/dmemory buffer)."""
        B, T, C = dout.shape
        N = B * T
        if self.norm_first:
            K.add_(dinp.reshape(-1), dout.reshape(-1))  # identity path
            dh = self._dropout_backward(dout)
            dln = self.scratch("dln", (B, T, C), dout.dtype, zero=False)  # overwritten by fn
            self.fn.backward(dh, dln, *extra, accumulate=False)
            self.norm.backward(dln.reshape(N, C), dinp.reshape(N, C))
            return
        ds = self.scratch("ds", (B, T, C), dout.dtype)  # dL/ds, s = x + dropout(f(x))
        self.norm.backward(dout.reshape(N, C), ds.reshape(N, C))
        K.add_(dinp.reshape(-1), ds.reshape(-1))  # identity path
        self.fn.backward(self._dropout_backward(ds), dinp, *extra)

    def _dropout_backward(self, dout):
        """dL/dh for h = dropout(f(...)): dout itself when dropout is off (no copy)."""
        if not self.drop.active:
            return dout
        dh = self.scratch("dh", dout.shape, dout.dtype)
        self.drop.backward(dout, dh)
        return dh


class Block(Layer):
    """GPT block (causal, two sub-layers), encoder block (causal=False, key padding mask) or
    decoder block (cross_attention=True).

    init="gpt2": weights N(0, 0.02²), and the projections that write into the residual stream
    N(0, (0.02 / sqrt(2 n_layer))²) (see residual_std): right for GPT-2's small (0.02) embeddings.
    init="lecun": every weight N(0, 1 / fan_in), so each sub-layer maps unit-variance inputs to
    unit-variance outputs: right for the paper's embeddings, scaled to unit size. (With 0.02-sized
    weights next to unit-sized embeddings the sub-layers' first contributions to the residual
    stream are far too small to matter, and training stalls.)
    """

    def __init__(self, store, name, n_embd, n_head, n_layer, causal, bias=True, dropout=0.0,
                 norm_first=True, activation="gelu", cross_attention=False, n_inner=None, names=GPT2_NAMES,
                 init="gpt2", attn_dropout=0.0):
        super().__init__()
        if init == "gpt2":
            std, proj_std = 0.02, residual_std(n_layer)
        elif init == "lecun":
            std = proj_std = None  # Linear's default: 1 / sqrt(fan_in)
        else:
            raise ValueError(f"init must be 'gpt2' or 'lecun', got {init!r}")
        # Declaration order = state-dict order = initialisation order: keep GPT's (ln_1, attn, ln_2, mlp).
        self.ln_1 = LayerNorm(store, f"{name}.{names['ln_1']}", n_embd, bias)
        self.attn = SelfAttention(store, f"{name}.{names['attn']}", n_embd, n_head, causal, bias, proj_std, std,
                                  attn_dropout)
        self.sublayers = [Residual(self.ln_1, self.attn, dropout, norm_first)]
        self.cross_attn = None
        if cross_attention:
            self.ln_cross = LayerNorm(store, f"{name}.{names['ln_cross']}", n_embd, bias)
            self.cross_attn = CrossAttention(store, f"{name}.{names['cross_attn']}", n_embd, n_head, bias,
                                             proj_std, std, attn_dropout)
            self.sublayers.append(Residual(self.ln_cross, self.cross_attn, dropout, norm_first))
        self.ln_2 = LayerNorm(store, f"{name}.{names['ln_2']}", n_embd, bias)
        self.mlp = MLP(store, f"{name}.{names['mlp']}", n_embd, bias, proj_std=proj_std, hidden=n_inner,
                       activation=activation, std=std)
        self.sublayers.append(Residual(self.ln_2, self.mlp, dropout, norm_first))
        # attention layers whose probabilities are dropped out, each taking a seed after the sub-layers'
        self.n_attn_dropout = (1 if self.cross_attn is None else 2) if attn_dropout > 0.0 else 0

    @property
    def n_dropout(self):
        """How many dropout seeds forward takes: one per sub-layer, then one per attention layer
        when attention dropout is on."""
        return len(self.sublayers) + self.n_attn_dropout

    def forward(self, x, key_mask=None, seeds=None, memory=None, memory_mask=None):
        """x (B, T, C) -> (B, T, C).

        key_mask: None or bool (B, T), the keys self-attention may use (padding is False).
        seeds: n_dropout dropout seeds: one per sub-layer, then self-attention's and
        cross-attention's when attention dropout is on (None, or a list of Nones, when not training).
        memory (B, S, C), memory_mask bool (B, S) or None: the encoder output and its padding mask,
        for a decoder block's cross-attention.
        """
        if (self.cross_attn is None) != (memory is None):
            raise ValueError("memory must be given exactly when the block has cross-attention")
        n = len(self.sublayers)
        if seeds is None:
            seeds = [None] * self.n_dropout
        attn_seeds = seeds[n:] if self.n_attn_dropout else (None, None)  # self-, then cross-attention's
        x = self.sublayers[0].forward(x, seeds[0], key_mask, attn_seeds[0])
        if self.cross_attn is not None:
            x = self.sublayers[1].forward(x, seeds[1], memory, memory_mask, attn_seeds[1])
        return self.sublayers[-1].forward(x, seeds[n - 1])

    def decode(self, x, keys, values, probs, positions):
        """Generation, one new position per sequence: x (B, C), the residual stream, updated in
        place, x += attn(ln_1(x)), then x += mlp(ln_2(x)) (pre-LN, causal, no cross-attention: a
        GPT block). keys, values, probs, positions: this layer's cache, as SelfAttention.decode."""
        self.attn.decode(self.ln_1.decode(x), x, keys, values, probs, positions)
        self.mlp.decode(self.ln_2.decode(x), x)

    def backward(self, dout, dinp, dmemory=None):
        """Accumulates dL/dx into dinp (B, T, C) and, in a decoder block, dL/dmemory into dmemory."""
        # Each sub-layer's input gradient goes to a zeroed buffer that the sub-layer before it
        # reads; the first sub-layer adds into the caller's dinp.
        for i in range(len(self.sublayers) - 1, 0, -1):
            dprev = self.scratch(f"dx{i}", dout.shape, dout.dtype)
            sub = self.sublayers[i]
            if sub.fn is self.cross_attn:
                sub.backward(dout, dprev, dmemory)
            else:
                sub.backward(dout, dprev)
            dout = dprev
        self.sublayers[0].backward(dout, dinp)
