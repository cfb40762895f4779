"""The encoder-decoder transformer of "Attention Is All You Need".

    memory = encoder(src)                                    (B, S, C), source padding masked
    h      = decoder(tgt_in, memory)                         (B, T, C): causal self-attention,
                                                             cross-attention over memory, FFN
    logits = h Gᵀ                                            (B, T, V_tgt); G = the target embedding
                                                             matrix (tied) or its own `generator`
    loss   = mean over non-padding targets of cross-entropy(softmax(logits), tgt_out),
             with optional label smoothing

Teacher forcing: tgt_in = BOS + target and tgt_out = target + EOS, so position t predicts token
t + 1 from tokens <= t. Backward runs the decoder first; its cross-attention layers add their
dL/d(memory) into one buffer, which is then the encoder's upstream gradient.
"""
import numpy as np

from ..nn.checks import check_token_ids
from ..nn.head import LMHead
from ..nn.model import Model
from ..nn.parameters import normal
from ..nn.stack import TransformerDecoder, TransformerEncoder, padding_mask
from .configs import Seq2SeqConfig


class Seq2SeqTransformer(Model):
    def __init__(self, config, seed=0, dtype=np.float32, allocate=True):
        if not isinstance(config, Seq2SeqConfig):
            raise TypeError(f"Seq2SeqTransformer needs a Seq2SeqConfig, got {type(config).__name__}")
        super().__init__(config, seed, dtype, allocate)
        c = config
        arch = dict(n_head=c.n_head, n_embd=c.n_embd, n_inner=c.n_inner, dropout=c.dropout, bias=c.bias,
                    positional=c.positional, norm_first=c.norm_first, activation=c.activation,
                    attn_dropout=c.attn_dropout)
        self.encoder = TransformerEncoder(self.store, "encoder", c.src_vocab_size, c.max_src_len, c.n_encoder_layer,
                                          **arch)
        self.decoder = TransformerDecoder(self.store, "decoder", c.tgt_vocab_size, c.max_tgt_len, c.n_decoder_layer,
                                          **arch)
        # The output projection ("generator", as in the Annotated Transformer): tied, it is the target
        # embedding matrix itself and adds no parameter (paper, 3.4); untied, a (V, C) weight.
        if c.tie_weights:
            self.generator = self.decoder.embed.weight
        else:
            self.generator = self.store.add("generator.weight", (c.tgt_vocab_size, c.n_embd), True, normal(0.02))
        self.head = LMHead(self.generator, ignore_index=c.pad_id, label_smoothing=c.label_smoothing)
        self.loss_layer = self.head.loss
        self._build()
        self._targets = None

    def attention_layers(self):
        return [*self.encoder.attention_layers(), *self.decoder.attention_layers()]

    # -- inputs ------------------------------------------------------------------------------------
    def _check_src(self, src):
        c = self.config
        src = check_token_ids("src", src, c.src_vocab_size)
        if src.shape[1] > c.max_src_len:
            raise ValueError(f"source length {src.shape[1]} exceeds the model's max_src_len {c.max_src_len}")
        return src

    def _check_tgt(self, name, tgt, B):
        c = self.config
        tgt = check_token_ids(name, tgt, c.tgt_vocab_size)
        if tgt.shape[1] > c.max_tgt_len:
            raise ValueError(f"{name} length {tgt.shape[1]} exceeds the model's max_tgt_len {c.max_tgt_len}")
        if tgt.shape[0] != B:
            raise ValueError(f"{name} has batch size {tgt.shape[0]} but src has {B}")
        return tgt

    # -- the two halves, also used by decoding -----------------------------------------------------
    def encode(self, src, seeds=None):
        """src (B, S) -> (memory (B, S, C), src_mask (B, S) bool). Both are the model's buffers,
        valid until the next encode; copy them to keep them longer."""
        src = self._check_src(src)
        mask = padding_mask(src, self.config.pad_id, self.buffer("src_mask", src.shape, np.bool_))
        empty = np.flatnonzero(~mask.any(axis=1))
        if empty.size:
            raise ValueError(f"src rows {empty[:10].tolist()} hold only padding: there is nothing to translate")
        seeds = seeds or [None] * self.encoder.n_dropout
        return self.encoder.forward(src, mask, seeds), mask

    def decode(self, tgt_in, memory, src_mask, seeds=None, targets=None):
        """tgt_in (B, T) -> logits (B, T, V_tgt), given encode()'s memory and mask for the same B.
        With targets (B * T,) int64 (checked by the caller) returns (logits, loss) instead."""
        c = self.config
        tgt_in = self._check_tgt("tgt_in", tgt_in, memory.shape[0])
        B, T = tgt_in.shape
        tgt_mask = padding_mask(tgt_in, c.pad_id, self.buffer("tgt_mask", tgt_in.shape, np.bool_))
        seeds = seeds or [None] * self.decoder.n_dropout
        h = self.decoder.forward(tgt_in, tgt_mask, seeds, memory, src_mask)
        logits, loss = self.head.forward(h.reshape(B * T, c.n_embd), targets)
        logits = logits.reshape(B, T, -1)
        return logits if targets is None else (logits, loss)

    # -- forward and backward ----------------------------------------------------------------------
    def forward(self, src, tgt_in, tgt_out=None):
        """src (B, S), tgt_in (B, T) and tgt_out (B, T) token ids padded with pad_id.
        Returns (logits (B, T, V_tgt), loss or None); the loss leaves out positions where
        tgt_out == pad_id."""
        self._targets = None
        if tgt_out is not None:
            tgt_out = self._check_tgt("tgt_out", tgt_out, np.shape(tgt_in)[0])
            if tgt_out.shape != np.shape(tgt_in):
                raise ValueError(f"tgt_out shape {tgt_out.shape} must equal tgt_in shape {np.shape(tgt_in)}")
        seeds = self._dropout_seeds(self.encoder.n_dropout + self.decoder.n_dropout)
        memory, src_mask = self.encode(src, seeds[:self.encoder.n_dropout])
        self._memory_shape = memory.shape
        if tgt_out is None:
            return self.decode(tgt_in, memory, src_mask, seeds[self.encoder.n_dropout:]), None
        self._targets = tgt_out.reshape(-1)
        return self.decode(tgt_in, memory, src_mask, seeds[self.encoder.n_dropout:], self._targets)

    def backward(self):
        """Accumulate dloss/dparams into `grads` (call `zero_grad()` first, once per step)."""
        if self._targets is None:
            raise RuntimeError("backward() needs a forward(src, tgt_in, tgt_out) immediately before it")
        dh = self.head.backward()  # (B * T, C); dL/dG went into the generator's (or embedding's) gradient
        dmemory = self.zeros("dmemory", self._memory_shape, self.dtype)
        self.decoder.backward(dh, dmemory)
        self.encoder.backward(dmemory)
