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

from . import kernels as K
from .checks import check_token_ids
from .configs import Seq2SeqConfig
from .kernels.matmul import matmul
from .model import Model
from .params import normal
from .stack import TransformerDecoder, TransformerEncoder, padding_mask


class Seq2SeqTransformer(Model):
    def __init__(self, config, seed=0, dtype=np.float32):
        if not isinstance(config, Seq2SeqConfig):
            raise TypeError(f"Seq2SeqTransformer needs a Seq2SeqConfig, got {type(config).__name__}")
        super().__init__(config, seed, dtype)
        c = config
        arch = dict(n_head=c.n_head, n_embd=c.n_embd, n_inner=c.n_inner, dropout=c.dropout, bias=c.bias,
                    positional=c.positional, norm_first=c.norm_first, activation=c.activation)
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
        self._build()
        self._targets = None

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

    def decode(self, tgt_in, memory, src_mask, seeds=None):
        """tgt_in (B, T) -> logits (B, T, V_tgt), given encode()'s memory and mask for the same B."""
        c = self.config
        tgt_in = self._check_tgt("tgt_in", tgt_in, memory.shape[0])
        B, T = tgt_in.shape
        N, C = B * T, c.n_embd
        tgt_mask = padding_mask(tgt_in, c.pad_id, self.buffer("tgt_mask", tgt_in.shape, np.bool_))
        seeds = seeds or [None] * self.decoder.n_dropout
        self.h = self.decoder.forward(tgt_in, tgt_mask, seeds, memory, src_mask).reshape(N, C)
        logits = self.buffer("logits", (N, c.tgt_vocab_size), self.dtype)
        # logits = h Gᵀ, G the output projection (tied to the target embedding or not): a product
        # without bias (see GPT.forward)
        matmul(logits, self.h, False, self.generator.data, True, np.empty(0, self.dtype), False)
        return logits.reshape(B, T, -1)

    # -- forward and backward ----------------------------------------------------------------------
    def forward(self, src, tgt_in, tgt_out=None):
        """src (B, S), tgt_in (B, T) and tgt_out (B, T) token ids padded with pad_id.
        Returns (logits (B, T, V_tgt), loss or None); the loss leaves out positions where
        tgt_out == pad_id."""
        c = self.config
        seeds = self._dropout_seeds(self.encoder.n_dropout + self.decoder.n_dropout)
        memory, src_mask = self.encode(src, seeds[:self.encoder.n_dropout])
        logits = self.decode(tgt_in, memory, src_mask, seeds[self.encoder.n_dropout:])
        B, T, V = logits.shape
        self._targets = None
        self._memory_shape = memory.shape
        if tgt_out is None:
            return logits, None
        tgt_out = self._check_tgt("tgt_out", tgt_out, B)
        if tgt_out.shape != (B, T):
            raise ValueError(f"tgt_out shape {tgt_out.shape} must equal tgt_in shape {(B, T)}")
        self._targets = tgt_out.reshape(B * T)
        losses = self.buffer("losses", (B * T,), self.dtype)
        self.probs = self.buffer("probs", (B * T, V), self.dtype)  # softmax, kept for backward
        loss = K.cross_entropy_forward(losses, self.probs, logits.reshape(B * T, V), self._targets, c.pad_id,
                                       c.label_smoothing)
        return logits, loss

    def backward(self):
        """Accumulate dloss/dparams into `grads` (call `zero_grad()` first, once per step)."""
        if self._targets is None:
            raise RuntimeError("backward() needs a forward(src, tgt_in, tgt_out) immediately before it")
        c = self.config
        N, V = self.probs.shape
        # loss = mean over counted positions: dlogits = (probs - target distribution) / n_counted
        n_counted = K.count_targets(self._targets, c.pad_id)
        dlogits = self.zeros("dlogits", (N, V), self.dtype)
        if n_counted:
            K.cross_entropy_backward(dlogits, self.probs, self._targets, c.pad_id, c.label_smoothing, 1.0 / n_counted)
        # logits = h Gᵀ: dL/dh = dlogits G, dL/dG += dlogitsᵀ h (into the tied embedding's gradient)
        dh = self.buffer("dh", (N, c.n_embd), self.dtype)  # overwritten: no zeroing
        no_bias = np.empty(0, self.dtype)
        matmul(dh, dlogits, False, self.generator.data, False, no_bias, False)
        matmul(self.generator.grad, dlogits, True, self.h, False, no_bias, True)
        dmemory = self.zeros("dmemory", self._memory_shape, self.dtype)
        B, S, C = self._memory_shape
        self.decoder.backward(dh.reshape(B, N // B, C), dmemory)
        self.encoder.backward(dmemory)

    # -- inspection --------------------------------------------------------------------------------
    def attention_maps(self, src, tgt_in):
        """Attention probabilities for one teacher-forced pass, dropout off:
        "encoder.layers.{i}.self_attn" (B, NH, S, S), "decoder.layers.{i}.self_attn" (B, NH, T, T)
        and "decoder.layers.{i}.cross_attn" (B, NH, T, S): row = query position, column = key."""
        self._run_eval(self.forward, src, tgt_in)
        return self._collect_attention([*self.encoder.attention_layers("encoder"),
                                        *self.decoder.attention_layers("decoder")])
