"""The transformer stack of "Attention Is All You Need", behind every model of the package.

    x = embed(ids) * s + P[positions]    (P sinusoidal or learned; s = sqrt(C) in the paper, 1 in GPT-2)
    x = dropout(x)
    x = n_layer x Block(x)               self-attention: causal (GPT, the decoder) or over the
                                         non-padding keys (the encoder); with cross_attention,
                                         then attention over the encoder's output (the decoder)
    x = LN(x)                            pre-LN stacks only: a post-LN block already ends with LN

GPT is this stack (causal, no cross-attention) plus a head; the encoder-decoder is two of them.
The stack takes token ids, so its backward stops at the embedding (there is no gradient with
respect to ids); with cross-attention it also hands back dL/d(memory) for the encoder. Made with
vocab_size=None it has no token embedding and takes vectors (B, T, C) instead, whose gradient its
backward hands back: a vision transformer's patches.

Two conventions for names and initial values (nn/block.py's Style, a required argument):
    GPT2     transformer.wte, .wpe, .h.{i}.{ln_1, attn, ln_2, mlp}, .ln_f; weights N(0, 0.02²),
             unscaled embeddings: GPT-2's checkpoints load name for name
    PAPER    embed, pos, layers.{i}.{self_attn_norm, self_attn, [cross_attn_norm, cross_attn,]
             ffn_norm, ffn}, norm; embeddings scaled by sqrt(C), weights N(0, 1/fan_in)

With a key/value cache in the context (generation) a forward covers the positions after those
the cache holds, and advances the cache's lengths once every layer has written its keys and values.
"""
import math

import numpy as np

from .block import PAPER, Block
from .layers import Dropout, Embedding, Layer, LayerNorm, PositionalEncoding


class TransformerStack(Layer):
    """Embeddings, positions, dropout, n_layer blocks and (pre-LN) a final layer norm.

    causal: each position attends only to itself and earlier ones.
    cross_attention: each block also attends to the memory (an encoder's output) in the context.
    dropout: on the embeddings and every residual branch; attn_dropout: on attention probabilities.
    position_shift: training forwards number positions from a random start in [0, position_shift].
    style: GPT2 or PAPER (nn/block.py), the names and initial values.
    vocab_size: None for a stack whose inputs are vectors (B, T, C), not token ids.
    norm_eps: the epsilon of every layer norm.
    """

    def __init__(self, store, name, vocab_size, max_len, n_layer, n_head, n_embd, *, causal, style,
                 cross_attention=False, n_inner=0, dropout=0.0, bias=True, positional="sinusoidal", norm_first=True,
                 activation="gelu", position_shift=0, attn_dropout=0.0, norm_eps=1e-5):
        super().__init__()
        names = style.names
        self.n_embd, self.n_head, self.max_len = n_embd, n_head, max_len
        self.causal, self.cross_attention = causal, cross_attention
        if style.scaled_embeddings:
            # Paper, 3.4: embeddings are multiplied by sqrt(d_model). With init std d_model^-0.5 a
            # token vector then has entries of size ~1, like the sinusoidal table's (RMS sqrt(1/2));
            # a learned table starts at that same RMS, and the blocks' weights at N(0, 1/fan_in).
            embed_std, scale, pos_std = n_embd ** -0.5, math.sqrt(n_embd), math.sqrt(0.5)
        else:
            embed_std, scale, pos_std = 0.02, 1.0, 0.02
        self.embed = None if vocab_size is None else Embedding(store, f"{name}.{names['embed']}", vocab_size, n_embd,
                                                               std=embed_std, scale=scale)
        self.pos = PositionalEncoding(store, f"{name}.{names['pos']}", max_len, n_embd, positional, std=pos_std,
                                      shift=position_shift)
        self.drop = Dropout(dropout, f"{name}.drop")
        self.layers_name = f"{name}.{names['layers']}"
        self.layers = [Block(store, f"{self.layers_name}.{i}", n_embd, n_head, n_layer, causal=causal, style=style,
                             bias=bias, dropout=dropout, norm_first=norm_first, activation=activation,
                             cross_attention=cross_attention, n_inner=n_inner or None, attn_dropout=attn_dropout,
                             norm_eps=norm_eps)
                       for i in range(n_layer)]
        self.norm = LayerNorm(store, f"{name}.{names['norm']}", n_embd, bias, norm_eps) if norm_first else None
        self.names = names

    def forward(self, ids, ctx):
        """ids (B, T) int64 with T <= max_len, or vectors (B, T, C) for a stack without a token
        embedding -> (B, T, C). Self-attention reads ctx.key_mask (None or bool (B, T), True at
        real tokens); with cross-attention ctx.memory must be given; with ctx.cache, T is 1 (each
        sequence's next token) or the whole of prompts into an empty cache."""
        if self.cross_attention != (ctx.memory is not None):
            raise ValueError("a memory must be given exactly when the stack has cross-attention")
        B, T = ids.shape[:2]
        N, C = B * T, self.n_embd
        cache = ctx.cache
        if cache is not None:
            if T > 1 and cache.lengths.any():
                raise ValueError(f"a forward of {T} positions with a key/value cache starts from an empty cache")
            if (cache.lengths + T > cache.window).any():
                raise ValueError(f"the key/value cache holds {cache.window} positions per sequence; these run past it")
        x = ids if self.embed is None else self.embed.forward(ids.reshape(N), ctx).reshape(B, T, C)
        x = self.pos.forward(x, ctx)
        x = self.drop.forward(x, ctx)
        for block in self.layers:
            x = block.forward(x, ctx)
        if self.norm is not None:
            x = self.norm.forward(x.reshape(N, C), ctx).reshape(B, T, C)
        if cache is not None:
            cache.lengths += T
        self._shape = (B, T)
        return x

    def backward(self, dout, dinp=None, accumulate=True):
        """dout (B, T, C) or (B * T, C) = dL/d(output); dinp must be None when the input is token
        ids; for vectors it receives dL/d(input). Accumulates parameter gradients and, with
        cross-attention, dL/d(memory) into the memory's grad."""
        B, T = self._shape
        N, C = B * T, self.n_embd
        dout = dout.reshape(B, T, C)
        dtype = dout.dtype
        # The gradient flows down through two buffers in turn: each block reads one and writes the
        # other, which the block below then reads.
        if self.norm is not None:
            dx = self.buffer("dx_a", (B, T, C), dtype)
            self.norm.backward(dout.reshape(N, C), dx.reshape(N, C), accumulate=False)
            spare = "dx_b"
        else:
            dx, spare = dout, "dx_a"
        for block in reversed(self.layers):
            dprev = self.buffer(spare, (B, T, C), dtype)
            block.backward(dx, dprev, accumulate=False)
            spare = "dx_a" if spare == "dx_b" else "dx_b"
            dx = dprev
        demb = self.buffer("demb", (B, T, C), dtype)
        self.drop.backward(dx, demb, accumulate=False)
        if self.embed is None:  # x = inputs + P[t]: both get demb
            self.pos.backward(demb, dinp.reshape(B, T, C), accumulate)
            return
        dpos = self.buffer("dpos", (B, T, C), dtype)
        self.pos.backward(demb, dpos, accumulate=False)  # x = s E[ids] + P[t]: both get demb
        self.embed.backward(dpos.reshape(N, C))

    def attention_layers(self):
        """(state-dict name, attention layer) pairs, in order: what attention maps are read from."""
        for i, block in enumerate(self.layers):
            yield f"{self.layers_name}.{i}.{self.names['attn']}", block.attn
            if block.cross_attn is not None:
                yield f"{self.layers_name}.{i}.{self.names['cross_attn']}", block.cross_attn

    def activation_floats(self, tokens, keys, cross_keys=0):
        """Floats a training step keeps for this stack, `tokens` = B * T of them, each attending
        over `keys` positions (and `cross_keys` of the memory): per token, a block keeps its layer
        norms, projections and residual sums (about 10 C), the feed-forward hidden layer before and
        after the activation (2 x 4C), and a row of attention probabilities per head (NH x keys);
        cross-attention adds its projections and probabilities. One block's backward temporaries
        are shared by all blocks, and the embeddings keep about 4C."""
        C, NH = self.n_embd, self.n_head
        per_block = 10 * C + 2 * 4 * C + NH * keys + (6 * C + NH * cross_keys if cross_keys else 0)
        return tokens * ((len(self.layers) + 1) * per_block + 4 * C)


class TransformerEncoder(TransformerStack):
    """The paper's encoder: bidirectional self-attention, padding masked (ctx.key_mask)."""

    def __init__(self, store, name, vocab_size, max_len, n_layer, n_head, n_embd, style=PAPER, **options):
        super().__init__(store, name, vocab_size, max_len, n_layer, n_head, n_embd, causal=False, style=style,
                         **options)


class TransformerDecoder(TransformerStack):
    """The paper's decoder: causal self-attention, cross-attention over the encoder output
    (ctx.memory), FFN."""

    def __init__(self, store, name, vocab_size, max_len, n_layer, n_head, n_embd, style=PAPER, **options):
        super().__init__(store, name, vocab_size, max_len, n_layer, n_head, n_embd, causal=True,
                         cross_attention=True, style=style, **options)


def padding_mask(ids, pad_id, out):
    """out (B, T) bool = ids != pad_id: True where a position holds a real token. (A comparison of
    integer ids, once per forward: bookkeeping, not arithmetic on activations.)"""
    return np.not_equal(ids, pad_id, out=out)
