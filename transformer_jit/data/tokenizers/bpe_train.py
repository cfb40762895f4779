"""Learning byte-level BPE merges from a corpus: what BPETokenizer.train runs.

1. The text is cut at special tokens (their text is never learned from) and into GPT-2's
   pieces; the distinct pieces are counted (kernels/bpe_train.py's count_pieces).
2. Starting from the 256 bytes (ids 0-255 in GPT-2's order), the most frequent adjacent pair
   becomes a new token, again and again, until there are vocab_size tokens, special tokens
   included (they take the last ids, as GPT-2's <|endoftext|> does).

Ties are broken deterministically: of the pairs with the highest count, the one with the smallest
(left id, right id) wins, which is also the rule of Hugging Face's `tokenizers` trainer. Within a
piece a pair's occurrences are replaced left to right ("aaa" -> "aa a"). When a merge spells a
string that an earlier merge already made (possible, though rare), it reuses that token, so the
merge list may be a little longer than the token list. The merge loop runs in kernels, in chunks
of steps, with a progress bar between chunks.
"""
import warnings

import numpy as np
from tqdm import tqdm

from ...kernels.bpe_train import N_MERGES, N_STORE, N_TOKENS, bpe_train_init, bpe_train_merges, count_pieces
from ...kernels.hash_tables import table_size
from .bpe_text import EOT, check_text, special_spans, utf8
from .byte_unicode import BYTE_ORDER
from .unicode_classes import code_point_classes

STEPS_PER_CALL = 64  # merges per kernel call; the progress bar moves between calls


def learn_bpe(text, vocab_size, special_tokens=(EOT,), progress=True):
    """(tokens, merges, special_tokens) learned from `text`: token bytes by id, merges as (left id,
    right id) in rank order, special tokens {text: id}."""
    check_text(text)
    specials = _check_special_names(special_tokens)
    if not isinstance(vocab_size, (int, np.integer)) or isinstance(vocab_size, bool):
        raise TypeError(f"vocab_size must be an int, not {type(vocab_size).__name__}")
    if not 256 + len(specials) <= vocab_size < 1 << 31:
        raise ValueError(f"vocab_size must be at least 256 (the bytes) + {len(specials)} (the special tokens) = "
                         f"{256 + len(specials)}, and below 2^31; got {vocab_size}")
    max_tokens = int(vocab_size) - len(specials)
    data = utf8(text)
    starts, ends, _ = special_spans(data, {s: 0 for s in specials})
    text_bytes = np.frombuffer(data, np.uint8)
    word_starts, word_lengths, word_counts = count_pieces(text_bytes, starts, ends, code_point_classes())
    state = _State(text_bytes, word_starts, word_lengths, word_counts, max_tokens)
    with tqdm(total=max_tokens - 256, desc="BPE merges", unit="token", disable=None if progress else True) as bar:
        while state.sizes[N_TOKENS] < max_tokens:
            before = state.sizes[N_TOKENS]
            if state.merge(STEPS_PER_CALL, max_tokens) == 0:
                break
            bar.update(int(state.sizes[N_TOKENS] - before))
    n_tokens = int(state.sizes[N_TOKENS])
    if n_tokens < max_tokens:
        warnings.warn(f"the text has no pair left to merge after {state.sizes[N_MERGES]} merges: the vocabulary has "
                      f"{n_tokens + len(specials)} tokens, not {vocab_size}", stacklevel=3)
    store, starts, lengths = state.store, state.tok_starts, state.tok_lengths
    tokens = [store[starts[t]:starts[t] + lengths[t]].tobytes() for t in range(n_tokens)]
    tokens += [s.encode("utf-8") for s in specials]
    merges = state.merges[:state.sizes[N_MERGES]].tolist()
    return tokens, merges, {s: n_tokens + i for i, s in enumerate(specials)}


def _check_special_names(special_tokens):
    if isinstance(special_tokens, str):
        raise TypeError(f"special_tokens must be a sequence of strings, not the string {special_tokens!r}")
    specials = list(special_tokens)
    if not all(isinstance(s, str) and s for s in specials):
        raise TypeError(f"special tokens must be non-empty strings, got {specials!r}")
    if len(set(specials)) != len(specials):
        raise ValueError(f"special tokens must be distinct, got {specials!r}")
    return specials


class _State:
    """The arrays of kernels/bpe_train.py for one training run, and the merge step that grows the
    ones whose final size is not known in advance (the merge list and the token bytes)."""

    def __init__(self, data, word_starts, word_lengths, word_counts, max_tokens):
        P = int(word_lengths.sum())
        cap = 3 * P + 1  # pairs, occurrence-list entries, heap entries: see kernels/bpe_train.py
        self.longest = int(word_lengths.max()) if len(word_lengths) else 1
        self.tok, self.nxt, self.prv, self.weight = (np.empty(P, np.int64) for _ in range(4))
        self.pair_table = np.full((table_size(cap), 2), -1, np.int64)
        self.pair_counts, self.pair_first, self.occ_pos, self.occ_next = (np.empty(cap, np.int64) for _ in range(4))
        self.heap_count, self.heap_key = np.empty(cap, np.int64), np.empty(cap, np.int64)
        self.store = np.empty(256 + 64 * self.longest, np.uint8)
        self.tok_starts, self.tok_lengths = np.empty(max_tokens, np.int64), np.empty(max_tokens, np.int64)
        self.tok_slots = np.full(table_size(max_tokens), -1, np.int64)
        self.merges, self.merge_out = np.empty((max_tokens, 2), np.int64), np.empty(max_tokens, np.int64)
        self.sizes = np.zeros(6, np.int64)
        bpe_train_init(self.tok, self.nxt, self.prv, self.weight, self.pair_table,
                       self.pair_counts, self.pair_first, self.occ_pos, self.occ_next, self.heap_count, self.heap_key,
                       self.store, self.tok_starts, self.tok_lengths, self.tok_slots, self.sizes, data, word_starts,
                       word_lengths, word_counts, np.array(BYTE_ORDER, np.uint8))

    def merge(self, steps, max_tokens):
        """Up to `steps` merges (kernels/bpe_train.py's bpe_train_merges); returns how many."""
        need = self.sizes[N_STORE] + steps * self.longest
        if need > len(self.store):
            self.store = np.concatenate((self.store, np.empty(max(need, 2 * len(self.store)) - len(self.store),
                                                              np.uint8)))
        if self.sizes[N_MERGES] + steps > len(self.merges):
            self.merges = np.concatenate((self.merges, np.empty_like(self.merges)))
            self.merge_out = np.concatenate((self.merge_out, np.empty_like(self.merge_out)))
        return bpe_train_merges(self.merges, self.merge_out, steps, max_tokens, self.tok, self.nxt, self.prv,
                                self.weight, self.pair_table, self.pair_counts,
                                self.pair_first, self.occ_pos, self.occ_next, self.heap_count, self.heap_key,
                                self.store, self.tok_starts, self.tok_lengths, self.tok_slots, self.sizes)
