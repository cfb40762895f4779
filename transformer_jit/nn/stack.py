"""The transformer stack of "Attention Is All You Need", behind every model of the package.

    x = embed(ids) * s + P[positions]    (P sinusoidal or learned; s = sqrt(C) in the paper, 1 in GPT-2)
    x = dropout(x)
    x = n_layer x Block(x)               self-attention: causal (GPT, the decoder) or over the
                                         non-padding keys (the encoder); with cross_attention,
                                         then attention over the encoder's output (the decoder)
    x = LN(x)                            pre-LN stacks only: a post-LN block already ends with LN

GPT is this stack (causal, no cross-attention) plus a head; the encoder-decoder is two of them.
The stack takes token ids, so its backward stops at the embedding (there is no gradient with
respect to ids); with cross-attention it also hands back dL/d(memory) for the encoder.

Two conventions for names and initial values:
    "gpt2"   transformer.wte, .wpe, .h.{i}.{ln_1, attn, ln_2, mlp}, .ln_f; weights N(0, 0.02²),
             unscaled embeddings: GPT-2's checkpoints load name for name
    "paper"  embed, pos, layers.{i}.{self_attn_norm, self_attn, [cross_attn_norm, cross_attn,]
             ffn_norm, ffn}, norm; embeddings scaled by sqrt(C), weights N(0, 1/fan_in)
"""
import math

import numpy as np

from .block import GPT2_NAMES, PAPER_NAMES, Block
from .layers import Dropout, Embedding, Layer, LayerNorm, PositionalEncoding

STACK_NAMES = {
    "gpt2": {"embed": "wte", "pos": "wpe", "layers": "h", "norm": "ln_f", **GPT2_NAMES},
    "paper": {"embed": "embed", "pos": "pos", "layers": "layers", "norm": "norm", **PAPER_NAMES},
}


class TransformerStack(Layer):
    """Embeddings, positions, dropout, n_layer blocks and (pre-LN) a final layer norm.

    causal: each position attends only to itself and earlier ones.
    cross_attention: each block also attends to the memory (an encoder's output) given to forward.
    dropout: on the embeddings and every residual branch; attn_dropout: on attention probabilities.
    """

    def __init__(self, store, name, vocab_size, max_len, n_layer, n_head, n_embd, *, causal, cross_attention=False,
                 n_inner=0, dropout=0.0, bias=True, positional="sinusoidal", norm_first=True, activation="gelu",
                 position_shift=0, style="paper", attn_dropout=0.0):
        super().__init__()
        if style not in STACK_NAMES:
            raise ValueError(f"style must be one of {sorted(STACK_NAMES)}, got {style!r}")
        names = STACK_NAMES[style]
        self.n_embd, self.max_len, self.cross_attention = n_embd, max_len, cross_attention
        if style == "paper":
            # Paper, 3.4: embeddings are multiplied by sqrt(d_model). With init std d_model^-0.5 a
            # token vector then has entries of size ~1, like the sinusoidal table's (RMS sqrt(1/2));
            # a learned table starts at that same RMS, and the blocks' weights at N(0, 1/fan_in).
            embed_std, scale, pos_std, init = n_embd ** -0.5, math.sqrt(n_embd), math.sqrt(0.5), "lecun"
        else:
            embed_std, scale, pos_std, init = 0.02, 1.0, 0.02, "gpt2"
        self.embed = Embedding(store, f"{name}.{names['embed']}", vocab_size, n_embd, std=embed_std, scale=scale)
        self.pos = PositionalEncoding(store, f"{name}.{names['pos']}", max_len + position_shift, n_embd, positional,
                                      std=pos_std)
        self.drop = Dropout(dropout)
        self.layers = [Block(store, f"{name}.{names['layers']}.{i}", n_embd, n_head, n_layer, causal=causal,
                             bias=bias, dropout=dropout, norm_first=norm_first, activation=activation,
                             cross_attention=cross_attention, n_inner=n_inner or None, names=names, init=init,
                             attn_dropout=attn_dropout)
                       for i in range(n_layer)]
        self.norm = LayerNorm(store, f"{name}.{names['norm']}", n_embd, bias) if norm_first else None
        self.layers_name = f"{name}.{names['layers']}"
        self.names = names

    @property
    def n_dropout(self):
        """Dropout seeds one forward takes: the embedding's plus each block's (one per sub-layer, and
        one per attention layer when attention dropout is on)."""
        return 1 + sum(block.n_dropout for block in self.layers)

    def forward(self, ids, key_mask, seeds, memory=None, memory_mask=None, first_position=0):
        """ids (B, T) int64 with T <= max_len; key_mask None or bool (B, T), True at real tokens;
        seeds: n_dropout dropout seeds (None when not training). With cross-attention: memory
        (B, S, C) and memory_mask bool (B, S). first_position: the position the first token takes
        (up to position_shift). Returns (B, T, C)."""
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

    # -- generation: a causal pre-LN stack without cross-attention (GPT), one position at a time ---
    def prefill(self, ids, cache, row):
        """Run one sequence, ids (1, T) with T <= the cache's window, through the stack (the
        forward above, dropout off) and store every layer's keys and values for its positions
        0..T-1 as sequence `row` of the cache. Returns the output (1, T, C)."""
        self._check_decodable()
        h = self.forward(ids, None, [None] * self.n_dropout)
        for layer, block in enumerate(self.layers):
            cache.store(layer, row, block.attn.k[0], block.attn.v[0])
        cache.lengths[row] = ids.shape[1]
        return h

    def decode(self, ids, positions, cache):
        """One new position per sequence: ids (B,) int64 at positions (B,) int64, each below the
        cache's window; every layer appends its keys and values to the cache at those positions
        and attends over the cache. Returns the output (B, C), a buffer of this stack's final layer
        norm. (The caller advances cache.lengths.)"""
        self._check_decodable()
        x = self.embed.forward(ids)  # (B, C), this stack's own buffer: the residual stream
        self.pos.decode(x, positions)
        for layer, block in enumerate(self.layers):
            block.decode(x, cache.keys[layer], cache.values[layer], cache.probs[layer], positions)
        return self.norm.decode(x)

    def _check_decodable(self):
        if self.norm is None or self.cross_attention or not self.layers[0].attn.causal:
            raise ValueError("generating with a key/value cache needs a causal pre-LN stack without cross-attention")

    def backward(self, dout, dmemory=None):
        """dout (B, T, C) or (B * T, C) = dL/d(output). Accumulates parameter gradients and, with
        cross-attention, dL/d(memory) into dmemory (B, S, C)."""
        B, T = self._shape
        N, C = B * T, self.n_embd
        dout = dout.reshape(B, T, C)
        dtype = dout.dtype
        # The gradient flows down through two buffers in turn: each block reads one and adds into
        # the other, zeroed, which the block below then reads.
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

    def attention_layers(self):
        """(state-dict name, attention layer) pairs, in order: what attention maps are read from."""
        for i, block in enumerate(self.layers):
            yield f"{self.layers_name}.{i}.{self.names['attn']}", block.attn
            if block.cross_attn is not None:
                yield f"{self.layers_name}.{i}.{self.names['cross_attn']}", block.cross_attn


class TransformerEncoder(TransformerStack):
    """The paper's encoder: bidirectional self-attention, padding masked. forward(ids, key_mask, seeds)."""

    def __init__(self, store, name, vocab_size, max_len, n_layer, n_head, n_embd, **options):
        super().__init__(store, name, vocab_size, max_len, n_layer, n_head, n_embd, causal=False, **options)


class TransformerDecoder(TransformerStack):
    """The paper's decoder: causal self-attention, cross-attention over the encoder output, FFN.
    forward(ids, key_mask, seeds, memory, memory_mask); backward(dout, dmemory)."""

    def __init__(self, store, name, vocab_size, max_len, n_layer, n_head, n_embd, **options):
        super().__init__(store, name, vocab_size, max_len, n_layer, n_head, n_embd, causal=True,
                         cross_attention=True, **options)


def padding_mask(ids, pad_id, out):
    """out (B, T) bool = ids != pad_id: True where a position holds a real token. (A comparison of
    integer ids, once per forward: bookkeeping, not arithmetic on activations.)"""
    return np.not_equal(ids, pad_id, out=out)
