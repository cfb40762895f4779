"""A GPT-2 style decoder-only language model.

    idx (B, T) --wte--> (+ wpe) --dropout--> n_layer x Block(causal) --ln_f--> h (B, T, C)
    logits = h wteᵀ                     (the language-model head is tied to the token embedding)
    loss   = mean cross-entropy(softmax(logits), targets)

The backward pass walks the same path in reverse, by hand; tied weights need nothing special
because every backward kernel accumulates into the gradient buffer.
"""
from dataclasses import asdict, dataclass

import numpy as np
from tqdm.auto import tqdm

from . import kernels as K
from .block import Block
from .checks import check_token_ids
from .kernels.matmul import matmul
from .layers import Dropout, Embedding, LayerNorm, PositionalEncoding
from .model import Model


@dataclass
class GPTConfig:
    vocab_size: int = 65
    block_size: int = 64
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.0
    bias: bool = True
    positional: str = "learned"  # or "sinusoidal"

    def __post_init__(self):
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"GPTConfig.{name} must be a positive integer, got {getattr(self, name)}")
        if self.n_embd % self.n_head:
            raise ValueError(f"GPTConfig.n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"GPTConfig.dropout must be in [0, 1), got {self.dropout}")
        if self.positional not in ("learned", "sinusoidal"):
            raise ValueError(f"GPTConfig.positional must be 'learned' or 'sinusoidal', got {self.positional!r}")

    def to_dict(self):
        return asdict(self)


IGNORE_INDEX = -1  # targets equal to this are left out of the loss


class GPT(Model):
    def __init__(self, config, seed=0, dtype=np.float32):
        super().__init__(config, seed, dtype)
        c = config
        self.wte = Embedding(self.store, "transformer.wte", c.vocab_size, c.n_embd)
        self.wpe = PositionalEncoding(self.store, "transformer.wpe", c.block_size, c.n_embd, c.positional)
        self.drop = Dropout(c.dropout)
        self.blocks = [Block(self.store, f"transformer.h.{i}", c.n_embd, c.n_head, c.n_layer, causal=True,
                             bias=c.bias, dropout=c.dropout) for i in range(c.n_layer)]
        self.ln_f = LayerNorm(self.store, "transformer.ln_f", c.n_embd, c.bias)
        self._build()
        self._targets = None

    # -- forward and backward ----------------------------------------------------------------------
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
        N, C = B * T, c.n_embd
        x = self.wte.forward(idx.reshape(N)).reshape(B, T, C)
        x = self.wpe.forward(x)
        seeds = self._dropout_seeds(1 + 2 * c.n_layer)
        x = self.drop.forward(x, seeds[0])
        for i, block in enumerate(self.blocks):
            x = block.forward(x, None, seeds[1 + 2 * i:3 + 2 * i])
        self.h = self.ln_f.forward(x.reshape(N, C))
        logits = self.buffer("logits", (N, c.vocab_size), self.dtype)
        # logits = h wteᵀ, the head tied to the token embedding: a product without bias, done by the
        # matrix multiply itself (linear_forward with bias=None would be one more compiled kernel)
        matmul(logits, self.h, False, self.wte.weight.data, True, np.empty(0, self.dtype), False)
        self._targets = None
        self._shape = (B, T)
        if targets is None:
            return logits.reshape(B, T, -1), None
        targets = check_token_ids("targets", targets, c.vocab_size, ignore_index=IGNORE_INDEX)
        if targets.shape != idx.shape:
            raise ValueError(f"targets shape {targets.shape} must equal idx shape {idx.shape}")
        self._targets = targets.reshape(N)
        losses = self.buffer("losses", (N,), self.dtype)
        self.probs = self.buffer("probs", (N, c.vocab_size), self.dtype)  # softmax, kept for backward
        loss = K.cross_entropy_forward(losses, self.probs, logits, self._targets, IGNORE_INDEX, 0.0)
        return logits.reshape(B, T, -1), loss

    def backward(self):
        """Accumulate dloss/dparams into `grads` (call `zero_grad()` first, once per step)."""
        if self._targets is None:
            raise RuntimeError("backward() needs a forward(idx, targets) immediately before it")
        c = self.config
        B, T = self._shape
        N, C = B * T, c.n_embd
        # loss = mean over counted rows, so each counted row's loss has gradient 1 / n_counted;
        # softmax + cross-entropy collapse to dlogits = (probs - onehot) / n_counted
        n_counted = K.count_targets(self._targets, IGNORE_INDEX)
        dlogits = self.zeros("dlogits", (N, c.vocab_size), self.dtype)
        if n_counted:
            K.cross_entropy_backward(dlogits, self.probs, self._targets, IGNORE_INDEX, 0.0, 1.0 / n_counted)
        # logits = h wteᵀ: dL/dh = dlogits wte (overwrites dh: no zeroing) and dL/dwte += dlogitsᵀ h, the
        # head's weight gradient landing in the (tied) embedding's gradient
        dh = self.buffer("dh", (N, C), self.dtype)
        no_bias = np.empty(0, self.dtype)
        matmul(dh, dlogits, False, self.wte.weight.data, False, no_bias, False)
        matmul(self.wte.weight.grad, dlogits, True, self.h, False, no_bias, True)
        dx = self.zeros("dx_a", (N, C), self.dtype)
        self.ln_f.backward(dh, dx)
        spare = "dx_b"
        for block in reversed(self.blocks):
            dprev = self.zeros(spare, (N, C), self.dtype)
            block.backward(dx.reshape(B, T, C), dprev.reshape(B, T, C))
            spare = "dx_a" if spare == "dx_b" else "dx_b"
            dx = dprev
        demb = self.zeros("demb", (N, C), self.dtype)
        self.drop.backward(dx, demb)
        self.wpe.backward(demb.reshape(B, T, C))  # x = wte[idx] + wpe[t]: both get demb
        self.wte.backward(demb)

    def attention_maps(self, idx):
        """Attention probabilities of every layer for idx (B, T), dropout off:
        {"transformer.h.{i}.attn": (B, NH, T, T)}; row t is query t, column s key s."""
        self._run_eval(self.forward, idx)
        return self._collect_attention((f"transformer.h.{i}.attn", b.attn) for i, b in enumerate(self.blocks))

    # -- sampling ----------------------------------------------------------------------------------
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
        was_training = self.training
        self.eval()
        try:
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
        finally:
            self.train(was_training)
        return idx
