"""Generating text with a GPT: the model's forward over a key/value cache, so that each new token
costs one position's work.

    prefill   each prompt in one forward over all its tokens, into an empty cache (nn/kv_cache.py):
              every attention layer stores its keys and values as it computes them, and the last
              position's logits give the first new token
    step      a forward over each sequence's newest token at its next position: every attention
              layer appends its key and value to the cache and attends over it
              (kernels.kv_attention_forward); with one row per sequence every product is a matrix
              times a few vectors (kernels.matvec), at memory speed

Both are GPT.forward(..., cache=...), the training forward's layers; the logits equal those of a
full forward over the same tokens, up to float rounding.

Batches: prompts may have different lengths. Each is prefilled on its own and each sequence keeps
its own position in the cache, so its positions and attention are exactly those of the prompt
alone; the products sum every row in the same order whatever the other rows hold, so a sequence's
tokens do not depend on the rest of the batch.

The window. GPT-2's positions are learned and absolute (there is no embedding past block_size - 1),
and every cached key was computed at its position, so a full cache cannot shift by one. When a
sequence's cache holds block_size positions and another token comes, its last ceil(block_size / 2)
tokens (the new one included) are prefilled again at positions 0.., and generation goes on from
there: every step sees between ceil(block_size / 2) and block_size tokens of context, and the
logits after a slide are exactly those of a forward over those last tokens. A slide costs one
prefill of half a window every half window of steps. (Recomputing the whole last window at every
step, as a plain forward over the last block_size tokens would, costs a window per token.) A
prompt longer than block_size keeps its last block_size tokens.

A model with an attention window W (attn_window > 0) attends to its last W positions only, so each
layer's cache is a ring of W keys and values (nn/kv_cache.py), not block_size: its memory does not
grow with the text. Its positions still end at block_size, so it slides exactly as above (the
tokens run again at positions 0.. fill the ring with their last W), and its logits too equal
those of a full forward over the same tokens.

Sampling (`sample_next`): temperature 0 is greedy (argmax), and so is any temperature below
GREEDY_BELOW (dividing by a subnormal one overflows, and at 1e-6 the distribution is already
one-hot unless two logits lie within about 1e-4 of each other). Otherwise the logits are divided by
the temperature, top_k keeps the k most likely tokens, top_p then keeps the smallest set of most
likely tokens whose probabilities add up to at least p (nucleus sampling, Holtzman et al. 2019),
and a token is drawn from what is kept, renormalised. Each sequence draws from a random generator
of its own, spawned from the seed, so its tokens do not depend on the batch either.
"""
import numpy as np
from tqdm.auto import tqdm

from .. import kernels as K
from ..formats.safetensors import widen_bfloat16
from ..nn.checks import check_token_ids
from ..nn.kv_cache import KVCache
from ..nn.context import RoundedInt8
from ..nn.layers import Linear
from ..util.config import is_int, is_number

MAX_NEW_TOKENS = 1 << 20  # per call: the output is allocated up front
WEIGHTS = (None, "bfloat16", "int8")  # the model's own, or bfloat16 or int8 copies
GREEDY_BELOW = 1e-6  # temperatures below this are greedy


class Sequences:
    """The sequences one generate call extends: a key/value cache of `window` <= block_size
    positions each (block_size if any may slide), the tokens it holds, and the slide."""

    def __init__(self, model, batch, window, weights=None):
        c = model.config
        if not 1 <= window <= c.block_size:
            raise ValueError(f"window must be in [1, block_size={c.block_size}], got {window}")
        self.model, self.weights, self.block_size = model, weights, c.block_size
        self.keep = (c.block_size + 1) // 2  # tokens a slide leaves, the new one included
        self.cache = KVCache(batch, window, model.dtype)
        self.context = np.zeros((batch, window), dtype=np.int64)  # the tokens the cache holds
        self.logits = np.empty((batch, c.vocab_size), dtype=model.dtype)

    def prefill(self, prompts):
        """prompts: one 1-D int64 array per sequence, each at most `window` tokens. Returns the
        logits (B, V) of each prompt's last position (a buffer, valid until the next call)."""
        for row, tokens in enumerate(prompts):
            self.logits[row] = self.fill(row, tokens)
        return self.logits

    def step(self, tokens):
        """tokens (n,) int64, n <= B: the newest token of each of the first n sequences, appended at
        its next position (after a slide if its cache is full); the other sequences wait, so that a
        server steps only the rows it has in use. Returns the logits (n, V) of the token after each
        (a buffer, valid until the next call)."""
        n = len(tokens)
        cache = self.cache if n == self.cache.batch else self.cache.rows(0, n)
        for row in np.flatnonzero(cache.lengths == cache.window):
            self._slide(row)
        self.context[np.arange(n), cache.lengths] = tokens
        logits, _ = self.model.forward(tokens[:, None], cache=cache, weights=self.weights)
        self.logits[:n] = logits[:, 0]  # a copy: the model's buffer serves its next forward
        return self.logits[:n]

    def fill(self, row, tokens):
        """Sequence `row` from scratch: `tokens` at positions 0..; the logits after the last (a view of
        the model's buffer, valid until its next forward)."""
        self.context[row, :len(tokens)] = tokens
        self.cache.lengths[row] = 0
        logits, _ = self.model.forward(tokens[None, :], cache=self.cache.rows(row), weights=self.weights)
        return logits[0, 0]

    def _slide(self, row):
        """Sequence `row` has a full cache: keep its last keep - 1 tokens, at positions 0.., so that
        the coming token goes to position keep - 1."""
        window = self.cache.window
        if window < self.block_size:
            raise RuntimeError(f"the cache of {window} positions is full; it was sized for fewer tokens")
        n = self.keep - 1
        if n == 0:
            self.cache.lengths[row] = 0
        else:
            self.fill(row, self.context[row, window - n:].copy())


def narrow_weights(model, weights):
    """{linear layer: a copy of its matrix in `weights`} for every linear layer of `model` (the lm
    head included), made now from the current weights: what a generation with weights="bfloat16"
    or "int8" reads (nn.Linear.bfloat16_weight, int8_weight); None for the model's own."""
    if weights is None:
        return None
    if model.dtype != np.float32:
        raise ValueError(f"{weights} weights need a float32 model, this one is {model.dtype.name}")
    copy = Linear.bfloat16_weight if weights == "bfloat16" else Linear.int8_weight
    return {layer: copy(layer) for layer in model.modules() if isinstance(layer, Linear)}


def rounded_weights(model, weights):
    """{linear layer: the float32 values its `weights` ("bfloat16" or "int8") copy stands for, int8's
    as a RoundedInt8}: passed as a forward's weights, every product reads them (int8's rounding their
    inputs as well), so that a forward over whole sequences (an evaluation) computes what generation
    with those copies computes, up to the order of sums."""
    copies = narrow_weights(model, weights)
    if copies is None:
        return None
    rounded = {}
    for layer, copy in copies.items():
        values = np.empty(layer.weight.data.shape, model.dtype)
        if weights == "int8":
            K.dequantize_int8(values, copy.q, copy.scales)
            rounded[layer] = RoundedInt8(values)
        else:
            values[...] = widen_bfloat16(copy)
            rounded[layer] = values
    return rounded


def sample_next(logits, temperature, top_k, top_p, rngs):
    """The next token of every sequence: logits (B, V) -> (B,) int64; rngs: one numpy Generator
    per sequence. Arguments as in `generate` (checked there)."""
    if temperature < GREEDY_BELOW:
        return np.argmax(logits, axis=1)
    B, V = logits.shape
    z = logits.astype(np.float64)
    ids = None  # with top_k: the vocabulary ids of z's columns
    if top_k is not None and top_k < V:
        ids = np.argpartition(z, V - top_k, axis=1)[:, V - top_k:]
        z = np.take_along_axis(z, ids, axis=1)
    probs = np.empty_like(z)
    K.softmax_forward(probs, z / temperature)
    tokens = np.empty(B, dtype=np.int64)
    for b in range(B):
        p, row_ids = probs[b], None if ids is None else ids[b]
        if top_p is not None and top_p < 1.0:
            kept = nucleus(p, top_p)
            p, row_ids = p[kept], kept if row_ids is None else row_ids[kept]
        # inverse-CDF sampling: the first token whose cumulative probability exceeds u
        cumulative = np.cumsum(p)
        j = min(int(np.searchsorted(cumulative, rngs[b].random() * cumulative[-1], side="right")), len(p) - 1)
        tokens[b] = j if row_ids is None else row_ids[j]
    return tokens


def nucleus(probs, top_p):
    """Indices of the smallest set of the largest `probs` whose sum reaches top_p, most likely
    first. Sorts only a top slice of the probabilities (64, then 8 times more until the slice holds
    that much): full sorts of a 50k vocabulary would cost milliseconds per token."""
    n = probs.shape[0]
    m = 64
    while True:
        m = min(m, n)
        top = np.argpartition(probs, n - m)[n - m:]
        order = top[np.argsort(-probs[top], kind="stable")]
        cumulative = np.cumsum(probs[order])
        if cumulative[-1] >= top_p or m == n:
            return order[:min(int(np.searchsorted(cumulative, top_p)) + 1, m)]
        m *= 8


def generate(model, idx, max_new_tokens, temperature=1.0, top_k=None, top_p=None, seed=None, stop_token=None,
             progress=False, weights=None):
    """Sample up to `max_new_tokens` tokens after each prompt; see GPT.generate."""
    c = model.config
    prompts, as_list = _prompts(idx, c.vocab_size)
    _check_options(max_new_tokens, temperature, top_k, top_p, seed, stop_token, weights, c.vocab_size)
    B = len(prompts)
    new = np.zeros((B, max_new_tokens), dtype=np.int64)
    n_new = 0
    if max_new_tokens > 0:
        rngs = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(B)]
        window = min(c.block_size, max(len(p) for p in prompts) + max_new_tokens)
        done = np.zeros(B, dtype=bool)
        tokens = np.zeros(B, dtype=np.int64)
        with model.evaluating():
            sequences = Sequences(model, B, window, narrow_weights(model, weights))
            logits = sequences.prefill([p[-c.block_size:] for p in prompts])
            for step in tqdm(range(max_new_tokens), desc="generating", unit="tok", disable=None if progress else True,
                             leave=False):
                if step > 0:
                    logits = sequences.step(tokens)
                if not np.isfinite(logits).all():
                    raise FloatingPointError("the model's logits are not finite: its weights hold inf or NaN")
                tokens = sample_next(logits, temperature, top_k, top_p, rngs)
                if stop_token is not None:
                    tokens[done] = stop_token  # a sequence that has stopped only repeats its stop token
                    done |= tokens == stop_token
                new[:, step] = tokens
                n_new = step + 1
                if done.all():
                    break
    new = new[:, :n_new]
    if not as_list:
        return np.concatenate([np.asarray(prompts), new], axis=1)
    ends = [n_new if stop_token is None or not (row == stop_token).any() else int(np.argmax(row == stop_token)) + 1
            for row in new]
    return [np.concatenate([p, row[:end]]) for p, row, end in zip(prompts, new, ends)]


def _prompts(idx, vocab_size):
    """(list of 1-D int64 prompts, whether idx was a list): an array (B, T), or a list or tuple of
    1-D prompts of any lengths."""
    if isinstance(idx, (list, tuple)):
        if not idx:
            raise ValueError("idx is an empty list: give at least one prompt")
        prompts = []
        for i, p in enumerate(idx):
            p = np.asarray(p)
            if p.ndim != 1 or p.size == 0:
                raise ValueError(f"idx[{i}] must be a non-empty 1-D sequence of token ids, got shape {p.shape}")
            prompts.append(check_token_ids(f"idx[{i}]", p[None, :], vocab_size)[0])
        return prompts, True
    return list(check_token_ids("idx", idx, vocab_size)), False


def _check_options(max_new_tokens, temperature, top_k, top_p, seed, stop_token, weights, vocab_size):
    if not is_int(max_new_tokens) or not 0 <= max_new_tokens <= MAX_NEW_TOKENS:
        raise ValueError(f"max_new_tokens must be an integer in [0, {MAX_NEW_TOKENS}], got {max_new_tokens!r}")
    if not is_number(temperature) or temperature < 0:
        raise ValueError(f"temperature must be a finite number >= 0 (0 or below {GREEDY_BELOW}: greedy), "
                         f"got {temperature!r}")
    if top_k is not None and (not is_int(top_k) or top_k < 1):
        raise ValueError(f"top_k must be None or an integer >= 1, got {top_k!r}")
    if top_p is not None and (not is_number(top_p) or not 0 < top_p <= 1):
        raise ValueError(f"top_p must be None or a number in (0, 1], got {top_p!r}")
    if seed is not None and (not is_int(seed) or seed < 0):
        raise ValueError(f"seed must be None or an integer >= 0, got {seed!r}")
    if stop_token is not None and (not is_int(stop_token) or not 0 <= stop_token < vocab_size):
        raise ValueError(f"stop_token must be None or a token id in [0, {vocab_size}), got {stop_token!r}")
    if weights not in WEIGHTS:
        raise ValueError(f"weights must be one of {WEIGHTS}, got {weights!r}")
