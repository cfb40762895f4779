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
With attn_dropout > 0 the attention layers also drop attention probabilities (GPT-2's attn_pdrop).
Every dropout site is named after the part it follows (`h.0.attn.resid_dropout`, `h.0.attn.attn_dropout`),
and draws its masks by that name (nn/context.py).

Backward, by hand, in reverse. For one pre-LN sub-layer, from dL/dy:
    dL/dx = dL/dy + LNᵀ fᵀ dropoutᵀ dL/dy      (the residual passes the gradient through unchanged)
and for a post-LN one, with s = x + dropout(f(x)) and ds = LNᵀ dL/dy:
    dL/dx = ds + fᵀ dropoutᵀ ds
"""
import math
from dataclasses import dataclass

from .. import kernels as K
from .attention import CrossAttention, SelfAttention
from .layers import ACTIVATIONS, Dropout, Layer, LayerNorm, Linear, pass_gradient


@dataclass(frozen=True)
class Style:
    """A convention for a stack: the state-dict names of its parts, and their initial values.

    names: the names of a stack's parts and of its blocks' parts.
    init: "gpt2": weights N(0, 0.02²), and the projections that write into the residual stream
          N(0, (0.02 / sqrt(2 n_layer))²) (see residual_std): right for GPT-2's small (0.02)
          embeddings, which are not scaled.
          "lecun": every weight N(0, 1 / fan_in), so each sub-layer maps unit-variance inputs to
          unit-variance outputs: right for the paper's embeddings, scaled by sqrt(C) to unit size
          (3.4). (With 0.02-sized weights next to unit-sized embeddings the sub-layers' first
          contributions to the residual stream are far too small to matter, and training stalls.)
    scaled_embeddings: token embeddings multiplied by sqrt(C), as the paper's are.
    """
    names: dict
    init: str
    scaled_embeddings: bool


# GPT keeps nanoGPT's names, so GPT-2 weights map one to one; the encoder and decoder use names
# that read like the paper's parts.
GPT2 = Style({"embed": "wte", "pos": "wpe", "layers": "h", "norm": "ln_f", "ln_1": "ln_1", "attn": "attn",
              "ln_2": "ln_2", "mlp": "mlp"}, init="gpt2", scaled_embeddings=False)
PAPER = Style({"embed": "embed", "pos": "pos", "layers": "layers", "norm": "norm", "ln_1": "self_attn_norm",
               "attn": "self_attn", "ln_cross": "cross_attn_norm", "cross_attn": "cross_attn", "ln_2": "ffn_norm",
               "mlp": "ffn"}, init="lecun", scaled_embeddings=True)


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

    def forward(self, x, ctx):  # (..., C) -> (..., C); every position independently
        C = x.shape[-1]
        h = self.act.forward(self.c_fc.forward(x.reshape(-1, C), ctx), ctx)
        return self.c_proj.forward(h, ctx).reshape(x.shape)

    def backward(self, dout, dinp, accumulate=True):
        C = dout.shape[-1]
        dh = self.scratch("dh", self.act.x.shape, dout.dtype, zero=False)  # overwritten: no zeroing
        self.c_proj.backward(dout.reshape(-1, C), dh, accumulate=False)
        dpre = self.scratch("dpre", self.act.x.shape, dout.dtype, zero=False)
        self.act.backward(dh, dpre, accumulate=False)
        self.c_fc.backward(dpre, dinp.reshape(-1, C), accumulate)


class Residual(Layer):
    """One sub-layer f with its residual connection, dropout and layer norm (pre- or post-LN).

    f is a layer (B, T, C) -> (B, T, C); `name` is f's, after which the dropout site is named.
    """

    def __init__(self, norm, fn, dropout, norm_first, name):
        super().__init__()
        self.norm, self.fn, self.norm_first = norm, fn, norm_first
        self.drop = Dropout(dropout, f"{name}.resid_dropout")

    def forward(self, x, ctx):
        B, T, C = x.shape
        N = B * T
        if self.norm_first:  # y = x + dropout(f(LN(x)))
            h = self.fn.forward(self.norm.forward(x.reshape(N, C), ctx).reshape(B, T, C), ctx)
            h = self.drop.forward(h, ctx)
            y = self.buffer("y", (B, T, C), x.dtype)
            K.residual_forward(y.reshape(-1), x.reshape(-1), h.reshape(-1))
            return y
        # y = LN(x + dropout(f(x)))
        h = self.drop.forward(self.fn.forward(x, ctx), ctx)
        s = self.buffer("s", (B, T, C), x.dtype)
        K.residual_forward(s.reshape(-1), x.reshape(-1), h.reshape(-1))
        return self.norm.forward(s.reshape(N, C), ctx).reshape(B, T, C)

    def backward(self, dout, dinp, accumulate=True):
        B, T, C = dout.shape
        N = B * T
        if self.norm_first:
            pass_gradient(dinp, dout, accumulate)  # identity path
            dh = self._dropout_backward(dout)
            dln = self.scratch("dln", (B, T, C), dout.dtype, zero=False)  # overwritten by fn
            self.fn.backward(dh, dln, accumulate=False)
            self.norm.backward(dln.reshape(N, C), dinp.reshape(N, C))
            return
        ds = self.scratch("ds", (B, T, C), dout.dtype, zero=False)  # dL/ds, s = x + dropout(f(x))
        self.norm.backward(dout.reshape(N, C), ds.reshape(N, C), accumulate=False)
        pass_gradient(dinp, ds, accumulate)  # identity path
        self.fn.backward(self._dropout_backward(ds), dinp)

    def _dropout_backward(self, dout):
        """dL/dh for h = dropout(f(...)): dout itself when dropout is off (no copy)."""
        if not self.drop.active:
            return dout
        dh = self.scratch("dh", dout.shape, dout.dtype, zero=False)
        self.drop.backward(dout, dh, accumulate=False)
        return dh


class Block(Layer):
    """GPT block (causal, two sub-layers), encoder block (causal=False, key padding mask) or
    decoder block (cross_attention=True). `style` (GPT2 or PAPER) gives the names of its parts and
    their initial values; norm_eps is its layer norms' epsilon."""

    def __init__(self, store, name, n_embd, n_head, n_layer, causal, *, style, bias=True, dropout=0.0,
                 norm_first=True, activation="gelu", cross_attention=False, n_inner=None, attn_dropout=0.0,
                 norm_eps=1e-5):
        super().__init__()
        if style.init == "gpt2":
            std, proj_std = 0.02, residual_std(n_layer)
        elif style.init == "lecun":
            std = proj_std = None  # Linear's default: 1 / sqrt(fan_in)
        else:
            raise ValueError(f"init must be 'gpt2' or 'lecun', got {style.init!r}")
        names = {part: f"{name}.{part_name}" for part, part_name in style.names.items()}
        # Declaration order = state-dict order = initialisation order: keep GPT's (ln_1, attn, ln_2, mlp).
        self.ln_1 = LayerNorm(store, names["ln_1"], n_embd, bias, norm_eps)
        self.attn = SelfAttention(store, names["attn"], n_embd, n_head, causal, bias, proj_std, std, attn_dropout)
        self.sublayers = [Residual(self.ln_1, self.attn, dropout, norm_first, names["attn"])]
        self.cross_attn = None
        if cross_attention:
            self.ln_cross = LayerNorm(store, names["ln_cross"], n_embd, bias, norm_eps)
            self.cross_attn = CrossAttention(store, names["cross_attn"], n_embd, n_head, bias, proj_std, std,
                                             attn_dropout)
            self.sublayers.append(Residual(self.ln_cross, self.cross_attn, dropout, norm_first, names["cross_attn"]))
        self.ln_2 = LayerNorm(store, names["ln_2"], n_embd, bias, norm_eps)
        self.mlp = MLP(store, names["mlp"], n_embd, bias, proj_std=proj_std, hidden=n_inner, activation=activation,
                       std=std)
        self.sublayers.append(Residual(self.ln_2, self.mlp, dropout, norm_first, names["mlp"]))

    def forward(self, x, ctx):
        """x (B, T, C) -> (B, T, C): each sub-layer in turn. Self-attention reads ctx.key_mask and
        ctx.cache; a decoder block's cross-attention reads ctx.memory."""
        for sub in self.sublayers:
            x = sub.forward(x, ctx)
        return x

    def backward(self, dout, dinp, accumulate=True):
        # Each sub-layer's input gradient is written into a temporary that the sub-layer before it
        # reads; the first sub-layer's goes into the caller's dinp.
        for i in range(len(self.sublayers) - 1, 0, -1):
            dprev = self.scratch(f"dx{i}", dout.shape, dout.dtype, zero=False)
            self.sublayers[i].backward(dout, dprev, accumulate=False)
            dout = dprev
        self.sublayers[0].backward(dout, dinp, accumulate)
