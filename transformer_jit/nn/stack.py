"""The encoder and decoder stacks of "Attention Is All You Need", as layers inside a model.

    x = embed(ids) * sqrt(C) + PE        (PE sinusoidal or learned; C = d_model)
    x = dropout(x)
    x = n_layer x Block(x)               encoder: bidirectional self-attention over non-padding keys
                                         decoder: causal self-attention, then cross-attention over the
                                                  encoder output (its padding masked), then FFN
    x = LN(x)                            pre-LN stacks only: a post-LN block already ends with LN

The stacks take token ids, so their backward passes stop at the embedding (there is no gradient
with respect to ids); the decoder's backward also hands back dL/d(memory) for the encoder.
"""
import math

import numpy as np

from .block import PAPER_NAMES, Block
from .layers import Dropout, Embedding, Layer, LayerNorm, PositionalEncoding


class TransformerStack(Layer):
    """Embeddings, positions, dropout, n_layer blocks and (pre-LN) a final layer norm.

    State-dict names under `name`: embed.weight, pos.weight (learned positions only),
    layers.{i}.{self_attn_norm, self_attn, [cross_attn_norm, cross_attn,] ffn_norm, ffn}.*, norm.*
    """

    def __init__(self, store, name, vocab_size, max_len, n_layer, n_head, n_embd, n_inner=0, dropout=0.0,
                 bias=True, positional="sinusoidal", norm_first=True, activation="gelu", decoder=False,
                 position_shift=0):
        super().__init__()
        self.n_embd, self.max_len, self.decoder = n_embd, max_len, decoder
        # Paper, 3.4: embeddings are multiplied by sqrt(d_model). With init std d_model^-0.5 a token
        # vector then has entries of size ~1, like the sinusoidal table's (RMS sqrt(1/2)); a learned
        # table starts at that same RMS.
        # Every weight matrix of the blocks starts at N(0, 1/fan_in) to match (see Block).
        self.embed = Embedding(store, f"{name}.embed", vocab_size, n_embd, std=n_embd ** -0.5,
                               scale=math.sqrt(n_embd))
        self.pos = PositionalEncoding(store, f"{name}.pos", max_len + position_shift, n_embd, positional,
                                      std=math.sqrt(0.5))
        self.drop = Dropout(dropout)
        self.layers = [Block(store, f"{name}.layers.{i}", n_embd, n_head, n_layer, causal=decoder, bias=bias,
                             dropout=dropout, norm_first=norm_first, activation=activation,
                             cross_attention=decoder, n_inner=n_inner or None, names=PAPER_NAMES, init="lecun")
                       for i in range(n_layer)]
        self.norm = LayerNorm(store, f"{name}.norm", n_embd, bias) if norm_first else None

    @property
    def n_dropout(self):
        """Dropout seeds one forward takes: the embedding's plus one per sub-layer."""
        return 1 + sum(block.n_dropout for block in self.layers)

    def forward(self, ids, key_mask, seeds, memory=None, memory_mask=None, first_position=0):
        """ids (B, T) int64 with T <= max_len; key_mask bool (B, T), True at real tokens.
        Decoder: memory (B, S, C) and memory_mask bool (B, S). first_position: the position the
        first token takes (up to position_shift). Returns (B, T, C)."""
        B, T = ids.shape
        N, C = B * T, self.n_embd
        x = self.embed.forward(ids.reshape(N)).reshape(B, T, C)
        x = self.pos.forward(x, first_position)
        x = self.drop.forward(x, seeds[0])
        at = 1
        for block in self.layers:
            x = block.forward(x, key_mask, seeds[at:at + block.n_dropout], memory, memory_mask)
            at += block.n_dropout
        if self.norm is not None:
            x = self.norm.forward(x.reshape(N, C)).reshape(B, T, C)
        self._shape = (B, T)
        return x

    def backward(self, dout, dmemory=None):
        """dout (B, T, C) = dL/d(output). Accumulates parameter gradients and, in the decoder,
        dL/d(memory) into dmemory (B, S, C)."""
        B, T = self._shape
        N, C = B * T, self.n_embd
        dtype = dout.dtype
        if self.norm is not None:
            dx = self.zeros("dx_a", (B, T, C), dtype)
            self.norm.backward(dout.reshape(N, C), dx.reshape(N, C))
            spare = "dx_b"
        else:
            dx, spare = dout, "dx_a"
        for block in reversed(self.layers):
            dprev = self.zeros(spare, (B, T, C), dtype)
            block.backward(dx, dprev, dmemory)
            spare = "dx_a" if spare == "dx_b" else "dx_b"
            dx = dprev
        demb = self.zeros("demb", (B, T, C), dtype)
        self.drop.backward(dx, demb)
        self.pos.backward(demb)  # x = s E[ids] + P[t]: both get demb
        self.embed.backward(demb.reshape(N, C))

    def attention_layers(self, prefix):
        """(name, attention layer) pairs, in order, for attention maps."""
        for i, block in enumerate(self.layers):
            yield f"{prefix}.layers.{i}.self_attn", block.attn
            if block.cross_attn is not None:
                yield f"{prefix}.layers.{i}.cross_attn", block.cross_attn


class TransformerEncoder(TransformerStack):
    """The paper's encoder: bidirectional self-attention, padding masked. forward(ids, key_mask, seeds)."""

    def __init__(self, store, name, vocab_size, max_len, n_layer, n_head, n_embd, **options):
        super().__init__(store, name, vocab_size, max_len, n_layer, n_head, n_embd, decoder=False, **options)


class TransformerDecoder(TransformerStack):
    """The paper's decoder: causal self-attention, cross-attention over the encoder output, FFN.
    forward(ids, key_mask, seeds, memory, memory_mask); backward(dout, dmemory)."""

    def __init__(self, store, name, vocab_size, max_len, n_layer, n_head, n_embd, **options):
        super().__init__(store, name, vocab_size, max_len, n_layer, n_head, n_embd, decoder=True, **options)


def padding_mask(ids, pad_id, out):
    """out (B, T) bool = ids != pad_id: True where a position holds a real token. (A comparison of
    integer ids, once per forward: bookkeeping, not arithmetic on activations.)"""
    return np.not_equal(ids, pad_id, out=out)
