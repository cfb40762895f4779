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
dL/d(memory) into the memory's gradient buffer, which is then the encoder's upstream gradient.

Search (models/translation.py) runs the two halves apart: `encode(src)` once, then
`logits(tgt_in, memory)` for every prefix.
"""
import numpy as np

from ..nn.checks import check_token_ids
from ..nn.context import Memory
from ..nn.layers import Linear
from ..nn.loss import CrossEntropy
from ..nn.model import Model
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
                    attn_dropout=c.attn_dropout, attn_window=c.attn_window)
        self.encoder = TransformerEncoder(self.store, "encoder", c.src_vocab_size, c.max_src_len, c.n_encoder_layer,
                                          **arch)
        self.decoder = TransformerDecoder(self.store, "decoder", c.tgt_vocab_size, c.max_tgt_len, c.n_decoder_layer,
                                          **arch)
        # The output projection ("generator", as in the Annotated Transformer): tied, it is the target
        # embedding matrix itself and adds no parameter (paper, 3.4); untied, a (V, C) weight.
        self.generator = Linear(self.store, "generator", c.n_embd, c.tgt_vocab_size, bias=False,
                                weight=self.decoder.embed.weight if c.tie_weights else None)
        self.loss = CrossEntropy(ignore_index=c.pad_id, label_smoothing=c.label_smoothing)
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

    # -- the two halves, also run apart by search --------------------------------------------------
    def encode(self, src, ctx=None):
        """src (B, S) -> the Memory the decoder attends over: values (B, S, C) and mask (B, S) bool,
        buffers of the model, valid until the next encode (copy them to keep them longer)."""
        src = self._check_src(src)
        mask = padding_mask(src, self.config.pad_id, self.buffer("src_mask", src.shape, np.bool_))
        empty = np.flatnonzero(~mask.any(axis=1))
        if empty.size:
            raise ValueError(f"src rows {empty[:10].tolist()} hold only padding: there is nothing to translate")
        ctx = ctx or self.context()
        return Memory(self.encoder.forward(src, ctx.replace(key_mask=mask)), mask)

    def logits(self, tgt_in, memory, ctx=None):
        """tgt_in (B, T) -> logits (B, T, V_tgt), given encode()'s memory for the same B."""
        c = self.config
        tgt_in = self._check_tgt("tgt_in", tgt_in, memory.values.shape[0])
        B, T = tgt_in.shape
        tgt_mask = padding_mask(tgt_in, c.pad_id, self.buffer("tgt_mask", tgt_in.shape, np.bool_))
        ctx = (ctx or self.context()).replace(key_mask=tgt_mask, memory=memory)
        h = self.decoder.forward(tgt_in, ctx)
        return self.generator.forward(h.reshape(B * T, c.n_embd), ctx).reshape(B, T, -1)

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
        ctx = self.context()  # one forward: one count for the encoder's draws and the decoder's
        self._memory = self.encode(src, ctx)
        logits = self.logits(tgt_in, self._memory, ctx)
        if tgt_out is None:
            return logits, None
        self._targets = tgt_out.reshape(-1)
        return logits, self.loss.forward(logits.reshape(self._targets.shape[0], -1), self._targets)

    def backward(self):
        """Accumulate dloss/dparams into `grads` (call `zero_grad()` first, once per step)."""
        if self._targets is None:
            raise RuntimeError("backward() needs a forward(src, tgt_in, tgt_out) immediately before it")
        dh = self.buffer("dh", (self._targets.shape[0], self.config.n_embd), self.dtype)  # (B * T, C)
        # dL/dG goes into the generator's (or the tied embedding's) gradient
        self.generator.backward(self.loss.backward(), dh, accumulate=False)
        memory = self._memory
        memory.grad = self.zeros("dmemory", memory.values.shape, self.dtype)  # the cross-attentions add into it
        self.decoder.backward(dh)
        self.encoder.backward(memory.grad)

    def activation_floats(self, batch_size):
        """Floats a training step keeps for batches of batch_size at the longest lengths (train/memory.py)."""
        c = self.config
        S, T = c.max_src_len, c.max_tgt_len
        return (self.encoder.activation_floats(batch_size * S, S)
                + self.decoder.activation_floats(batch_size * T, T, S) + batch_size * T * 3 * c.tgt_vocab_size)
