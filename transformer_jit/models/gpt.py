"""A GPT-2 style decoder-only language model.

    idx (B, T) --wte--> (+ wpe) --dropout--> n_layer x Block(causal) --ln_f--> h (B, T, C)
    logits = h wteᵀ                     (the language-model head is tied to the token embedding)
    loss   = mean cross-entropy(softmax(logits), targets)

The transformer is the paper's decoder stack without cross-attention, with GPT-2's names and
initialisation. The backward pass walks the same path in reverse, by hand; the tied weights need
nothing special because every backward kernel accumulates into the gradient buffer.

Generating is the same forward with a key/value cache (models/generation.py): over a prompt, then
over one new token per sequence at a time, each forward giving the logits of the last position.
"""
import numpy as np

from .. import formats
from ..nn.block import GPT2
from ..nn.checks import check_token_ids
from ..nn.layers import Linear
from ..nn.loss import CrossEntropy
from ..nn.model import Model
from ..nn.stack import TransformerStack
from . import generation
from .configs import GPTConfig

IGNORE_INDEX = -1  # targets equal to this are left out of the loss
WPE = "transformer.wpe.weight"  # the learned positions, one row per position


def cropped_sizes(sizes, block_size, path):
    """A GPT-2 checkpoint's sizes with its context shortened to block_size (None: kept), which
    must be one of the positions the checkpoint has learned."""
    positions = sizes["block_size"]
    if block_size is None:
        return dict(sizes)
    if isinstance(block_size, bool) or not isinstance(block_size, (int, np.integer)) \
            or not 1 <= block_size <= positions:
        raise ValueError(f"block_size {block_size!r}: the weights in {path} have learned {positions} positions; "
                         f"give 1 to {positions}")
    return {**sizes, "block_size": int(block_size)}


class GPT(Model):
    def __init__(self, config, seed=0, dtype=np.float32, allocate=True):
        if not isinstance(config, GPTConfig):
            raise TypeError(f"GPT needs a GPTConfig, got {type(config).__name__}")
        super().__init__(config, seed, dtype, allocate)
        c = config
        self.transformer = TransformerStack(self.store, "transformer", c.vocab_size, c.block_size, c.n_layer, c.n_head,
                                            c.n_embd, causal=True, style=GPT2, dropout=c.dropout, bias=c.bias,
                                            positional=c.positional, attn_dropout=c.attn_dropout,
                                            attn_window=c.attn_window)
        # logits = h wteᵀ: the head is the token embedding, tied
        self.lm_head = Linear(self.store, "lm_head", c.n_embd, c.vocab_size, bias=False,
                              weight=self.transformer.embed.weight)
        self.loss = CrossEntropy(IGNORE_INDEX)
        self._build()
        self._targets = None

    def attention_layers(self):
        return self.transformer.attention_layers()

    def forward(self, idx, targets=None, cache=None, weights=None):
        """idx (B, T) integer token ids, T <= block_size. Returns (logits (B, T, V), loss or None).

        With targets (B, T) the loss is the mean cross-entropy over positions whose target is not
        IGNORE_INDEX, and `backward()` may follow.

        With a key/value cache (nn/kv_cache.py; generation) idx are the next tokens of the cache's
        sequences, after the positions it holds: (B, 1), or (B, T) into an empty cache. Returns the
        logits of the last position only, (B, 1, V), as nanoGPT's inference does. weights: None, or
        copies of the matrices ({layer: copy}, models/generation.py): narrower ones (bfloat16 bits,
        int8) for generation's few-row products to read, or rounded float ones for every product.
        """
        c = self.config
        idx = check_token_ids("idx", idx, c.vocab_size)
        B, T = idx.shape
        if T > c.block_size:
            raise ValueError(f"sequence length {T} exceeds block_size {c.block_size}")
        self._targets = None
        if targets is not None:
            if cache is not None:
                raise ValueError("targets and a key/value cache do not go together: the cache is for generation")
            targets = check_token_ids("targets", targets, c.vocab_size, ignore_index=IGNORE_INDEX)
            if targets.shape != idx.shape:
                raise ValueError(f"targets shape {targets.shape} must equal idx shape {idx.shape}")
            self._targets = targets.reshape(B * T)
        ctx = self.context(cache=cache, weights=weights)
        h = self.transformer.forward(idx, ctx)  # (B, T, C)
        if cache is not None:
            last = self.buffer("last", (B, c.n_embd), self.dtype)
            last[...] = h[:, -1]  # a copy: the head reads contiguous rows
            return self.lm_head.forward(last, ctx).reshape(B, 1, -1), None
        logits = self.lm_head.forward(h.reshape(B * T, c.n_embd), ctx)
        loss = None if self._targets is None else self.loss.forward(logits, self._targets)
        return logits.reshape(B, T, -1), loss

    def backward(self):
        """Accumulate dloss/dparams into `grads` (call `zero_grad()` first, once per step)."""
        if self._targets is None:
            raise RuntimeError("backward() needs a forward(idx, targets) immediately before it")
        dh = self.buffer("dh", (self._targets.shape[0], self.config.n_embd), self.dtype)  # (B * T, C)
        self.lm_head.backward(self.loss.backward(), dh, accumulate=False)
        self.transformer.backward(dh)

    def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None, top_p=None, seed=None, stop_token=None,
                 progress=False, weights=None):
        """Sample up to `max_new_tokens` tokens after each prompt: forwards over a key/value cache
        (models/generation.py: the window, batching, sampling).

        idx: an integer array (B, T) of prompts, or a list (or tuple) of 1-D prompts of any lengths.
        temperature: 0 (or anything below 1e-6) is greedy (argmax); otherwise the logits are divided by it.
        top_k: keep the k most likely tokens. top_p: then keep the smallest set of most likely
        tokens whose probability reaches top_p, in (0, 1] (nucleus sampling).
        seed: the same seed gives the same tokens (None: fresh randomness).
        stop_token: a sequence ends with the first one it samples (e.g. GPT-2's <|endoftext|>).
        progress: a progress bar on a terminal. weights: None uses the model's own; "bfloat16"
        reads bfloat16 copies, made at the start of the call (half the bytes per token, logits
        off by bfloat16 rounding of the weights); "int8" reads int8 copies with a scale per block
        of 32 weights (kernels/int8.py: a quarter of the bytes, plus the scales). Both serve the
        products of up to nn.layers.FEW_ROWS rows (every new token, short prompts); a longer
        prompt's forward reads the float32 weights.

        Past block_size the window slides: when a sequence has block_size tokens of context, its
        last ceil(block_size / 2) tokens start again at position 0 (GPT-2's positions are
        absolute), so every token sees at least half a window of context.

        Returns, for an array, the array (B, T + n): each row its prompt and its new tokens, n =
        max_new_tokens, or fewer if every row stopped; a row that stopped early holds its stop token
        in the remaining places. For a list, a list of 1-D arrays: each prompt followed by its new
        tokens, up to and including its stop token.
        """
        return generation.generate(self, idx, max_new_tokens, temperature, top_k, top_p, seed, stop_token, progress,
                                   weights)

    # -- GPT-2 files of other projects (the codecs are in transformer_jit.formats) --------------------
    @classmethod
    def from_pretrained(cls, directory, dropout=0.0, dtype=np.float32, attn_dropout=0.0, block_size=None):
        """GPT-2 (any size, 124M to 1.5B) from a Hugging Face directory: config.json, model.safetensors.
        dropout and attn_dropout: the rates to fine-tune with (the file's *_pdrop are not read).
        block_size: keep only the first block_size learned positions (None: all), as nanoGPT's
        crop_block_size does: a shorter context trains in less time and memory per step."""
        return cls._from_checkpoint(formats.HuggingFaceGPT2(directory), dropout, dtype, attn_dropout, block_size)

    @classmethod
    def from_llmc(cls, path, dropout=0.0, dtype=np.float32, attn_dropout=0.0, block_size=None):
        """GPT-2 from an llm.c checkpoint such as gpt2_124M.bin (float32 or bfloat16); block_size as
        from_pretrained's."""
        return cls._from_checkpoint(formats.LlmcGPT2(path), dropout, dtype, attn_dropout, block_size)

    @classmethod
    def _from_checkpoint(cls, checkpoint, dropout, dtype, attn_dropout, block_size):
        if np.dtype(dtype) not in (np.float32, np.float64):
            raise ValueError(f"dtype must be float32 or float64, got {np.dtype(dtype)}: the weights are floating point")
        sizes = cropped_sizes(checkpoint.sizes, block_size, checkpoint.path)
        config = GPTConfig(**sizes, dropout=dropout, attn_dropout=attn_dropout)
        model = cls.for_loading(config, dtype=dtype)
        params = model._parameter_views()
        wpe = params[WPE]
        positions = checkpoint.sizes["block_size"]
        if sizes["block_size"] < positions:  # the whole table read aside (it is small), its first rows kept
            params = {**params, WPE: np.empty((positions, wpe.shape[1]), wpe.dtype)}
        checkpoint.copy_into(params)
        wpe[...] = params[WPE][:sizes["block_size"]]
        return model

    def save_pretrained(self, directory):
        """Write config.json and model.safetensors (float32) that transformers' GPT2LMHeadModel loads."""
        formats.save_gpt2_pretrained(directory, self._parameter_views(), self.config.to_dict())

    def save_llmc(self, path):
        """Write an llm.c checkpoint (version 3, float32)."""
        formats.save_llmc(path, self._parameter_views(), self.config.to_dict())

    def activation_floats(self, batch_size):
        """Floats a training step keeps for batches of batch_size at block_size (train/memory.py):
        the stack's, and the logits, probabilities and their gradient (3 V per token)."""
        tokens = batch_size * self.config.block_size
        return self.transformer.activation_floats(tokens, self.config.block_size) + tokens * 3 * self.config.vocab_size

    def _parameter_views(self):
        """{nanoGPT name: the parameter's view into the flat buffer}: filled and read in place, no copy."""
        return {name: p.data for name, p in self.store.params.items()}
