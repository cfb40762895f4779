"""A GPT-2 style decoder-only language model.

    idx (B, T) --wte--> (+ wpe) --dropout--> n_layer x Block(causal) --ln_f--> h (B, T, C)
    logits = h wteᵀ                     (the language-model head is tied to the token embedding)
    loss   = mean cross-entropy(softmax(logits), targets)

The transformer is the paper's decoder stack without cross-attention, with GPT-2's names and
initialisation. The backward pass walks the same path in reverse, by hand; the tied weights need
nothing special because every backward kernel accumulates into the gradient buffer.
"""
import numpy as np
from tqdm.auto import tqdm

from .. import kernels as K
from ..nn.checks import check_token_ids
from ..nn.head import LMHead
from ..nn.model import Model
from ..nn.stack import TransformerStack
from .configs import GPTConfig

IGNORE_INDEX = -1  # targets equal to this are left out of the loss


class GPT(Model):
    def __init__(self, config, seed=0, dtype=np.float32):
        if not isinstance(config, GPTConfig):
            raise TypeError(f"GPT needs a GPTConfig, got {type(config).__name__}")
        super().__init__(config, seed, dtype)
        c = config
        self.transformer = TransformerStack(self.store, "transformer", c.vocab_size, c.block_size, c.n_layer, c.n_head,
                                            c.n_embd, causal=True, dropout=c.dropout, bias=c.bias,
                                            positional=c.positional, style="gpt2")
        self.lm_head = LMHead(self.transformer.embed.weight, IGNORE_INDEX)  # tied to wte
        self._build()
        self._targets = None

    def attention_layers(self):
        return self.transformer.attention_layers()

    def forward(self, idx, targets=None):
        """idx (B, T) integer token ids, T <= block_size. Returns (logits (B, T, V), loss or None).

        With targets (B, T) the loss is the mean cross-entropy over positions whose target is not
        IGNORE_INDEX, and `backward()` may follow.
        """
        c = self.config
        idx = check_token_ids("idx", idx, c.vocab_size)
        B, T = idx.shape
        if T > c.block_size:
            raise ValueError(f"sequence length {T} exceeds block_size {c.block_size}")
        self._targets = None
        if targets is not None:
            targets = check_token_ids("targets", targets, c.vocab_size, ignore_index=IGNORE_INDEX)
            if targets.shape != idx.shape:
                raise ValueError(f"targets shape {targets.shape} must equal idx shape {idx.shape}")
            self._targets = targets.reshape(B * T)
        h = self.transformer.forward(idx, None, self._dropout_seeds(self.transformer.n_dropout))  # (B, T, C)
        logits, loss = self.lm_head.forward(h.reshape(B * T, c.n_embd), self._targets)
        return logits.reshape(B, T, -1), loss

    def backward(self):
        """Accumulate dloss/dparams into `grads` (call `zero_grad()` first, once per step)."""
        if self._targets is None:
            raise RuntimeError("backward() needs a forward(idx, targets) immediately before it")
        self.transformer.backward(self.lm_head.backward())

    def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None, seed=None, progress=False):
        """Append `max_new_tokens` sampled tokens to idx (B, T0) and return the (B, T0 + new) array.

        Each step feeds the last block_size tokens, divides the last position's logits by
        `temperature`, keeps the `top_k` most likely tokens if given, and samples. The same seed
        gives the same tokens.
        """
        c = self.config
        idx = check_token_ids("idx", idx, c.vocab_size)
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        if top_k is not None and not 1 <= top_k:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        if max_new_tokens < 0:
            raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
        rng = np.random.default_rng(seed)
        with self.evaluating():
            for _ in tqdm(range(max_new_tokens), desc="generating", unit="tok", disable=not progress, leave=False):
                logits, _ = self.forward(idx[:, -c.block_size:])
                scaled = logits[:, -1, :].astype(np.float64) / temperature
                probs = np.empty_like(scaled)
                K.softmax_forward(probs, scaled)
                if top_k is not None and top_k < c.vocab_size:
                    kth = np.sort(probs, axis=1)[:, -top_k][:, None]
                    probs = np.where(probs >= kth, probs, 0.0)
                    probs /= probs.sum(axis=1, keepdims=True)
                # inverse-CDF sampling, one uniform draw per sequence
                u = rng.random((idx.shape[0], 1))
                nxt = np.minimum((np.cumsum(probs, axis=1) <= u).sum(axis=1), c.vocab_size - 1)
                idx = np.concatenate([idx, nxt[:, None].astype(np.int64)], axis=1)
        return idx
