"""Learning byte-level BPE merges from a corpus: what BPETokenizer.train runs.

1. The text is cut at special tokens (their text is never learned from) and into GPT-2's
   pieces; the distinct pieces are counted (kernels/bpe_train.py's count_pieces). A piece longer
   than MAX_PIECE_BYTES (text with no white space: DNA, long runs of one character, some CJK
   lines) counts as its chunks of at most MAX_PIECE_BYTES bytes, each cut before a character's
   first byte: no merge is learned across a cut, so no token is longer than a chunk, and the
   identical chunks of a repetitive piece are counted once. Ordinary text has no such piece and
   learns exactly what it would without the cut; encoding is not affected (it never cuts).
2. Starting from the 256 bytes (ids 0-255 in GPT-2's order), the most frequent adjacent pair
   becomes a new token, again and again, until there are vocab_size tokens, special tokens
   included (they take the last ids, as GPT-2's <|endoftext|> does). vocab_size is at most
   MAX_VOCAB_SIZE. A text that runs out of pairs first gives a smaller vocabulary, with a warning.

Ties are broken deterministically: of the pairs with the highest count, the one with the smallest
(left id, right id) wins, which is also the rule of Hugging Face's `tokenizers` trainer. Within a
piece a pair's occurrences are replaced left to right ("aaa" -> "aa a"). When a merge spells a
string that an earlier merge already made (possible, though rare), it reuses that token, so the
merge list may be a little longer than the token list. The merge loop runs in kernels, in chunks
of steps, with a progress bar between chunks. Memory grows with the distinct pieces' bytes (not
the text's, for ordinary text), at most about 50 bytes per byte of text: see the README.
"""
import warnings

import numpy as np
from tqdm import tqdm

from ...kernels.bpe_train import (N_HEAP, N_MERGES, N_NEED, N_OCC, N_PAIRS, N_STORE, N_TOKENS, bpe_train_init,
                                  bpe_train_merges, count_pieces, distinct_bytes, rebuild_occurrences)
from ...kernels.hash_tables import pair_table_grown, table_size
from .bpe_text import EOT, check_text, special_spans, utf8
from .byte_unicode import BYTE_ORDER
from .unicode_classes import code_point_classes

STEPS_PER_CALL = 64  # merges per kernel call; the progress bar moves between calls
MAX_VOCAB_SIZE = 1 << 20  # tokens, special tokens included: the most any trainer or command makes
MAX_PIECE_BYTES = 256  # longer pieces are learned from as chunks of at most this many bytes


def check_vocab_size(vocab_size, n_special=1, name="vocab_size"):
    """vocab_size as an int, if a vocabulary of that many tokens can be trained with n_special
    special tokens: 256 bytes + the special tokens at least, MAX_VOCAB_SIZE at most."""
    if not isinstance(vocab_size, (int, np.integer)) or isinstance(vocab_size, (bool, np.bool_)):
        raise TypeError(f"{name} must be an int, not {type(vocab_size).__name__}")
    low = 256 + n_special
    if not low <= vocab_size <= MAX_VOCAB_SIZE:
        raise ValueError(f"{name} must be at least {low} (the 256 bytes + {n_special} special "
                         f"token{'s' * (n_special != 1)}) and at most {MAX_VOCAB_SIZE:,}, got {vocab_size}")
    return int(vocab_size)


def learn_bpe(text, vocab_size, special_tokens=(EOT,), progress=True):
    """(tokens, merges, special_tokens) learned from `text`: token bytes by id, merges as (left id,
    right id) in rank order, special tokens {text: id}."""
    check_text(text)
    specials = _check_special_names(special_tokens)
    check_vocab_size(vocab_size, len(specials))
    max_tokens = int(vocab_size) - len(specials)
    data = utf8(text)
    starts, ends, _ = special_spans(data, {s: 0 for s in specials})
    text_bytes = np.frombuffer(data, np.uint8)
    word_starts, word_lengths, word_counts = count_pieces(text_bytes, starts, ends, code_point_classes(),
                                                           MAX_PIECE_BYTES)
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
    """The arrays of kernels/bpe_train.py for one training run, and the merge step that grows them
    as the merges need: they start at the size the pieces need and grow only when a merge asks."""

    def __init__(self, data, word_starts, word_lengths, word_counts, max_tokens):
        P = int(word_lengths.sum())
        index = np.int32 if len(data) < 1 << 31 else np.int64  # holds every position and count of a piece
        self.longest = int(word_lengths.max()) if len(word_lengths) else 1
        self.tok, self.nxt, self.prv, self.weight = (np.empty(P, index) for _ in range(4))
        n_pairs = min(P, distinct_bytes(data) ** 2) + 1  # at least the distinct pairs of bytes
        self.pair_table = np.full((table_size(n_pairs), 2), -1, np.int64)
        self.pair_counts, self.touched = np.empty(n_pairs, np.int64), np.empty(n_pairs, np.int64)
        self.pair_first, self.pair_mark = np.empty(n_pairs, index), np.empty(n_pairs, index)
        self.occ_pos, self.occ_next = np.empty(P + P // 2 + 1, index), np.empty(P + P // 2 + 1, index)
        self.heap_count, self.heap_key = np.empty(n_pairs, np.int64), np.empty(n_pairs, np.int64)
        self.store = np.empty(256 + STEPS_PER_CALL * self.longest, np.uint8)
        self.tok_starts, self.tok_lengths = np.empty(max_tokens, np.int64), np.empty(max_tokens, np.int64)
        self.tok_slots = np.full(table_size(max_tokens), -1, np.int64)
        self.merges, self.merge_out = np.empty((max_tokens, 2), np.int64), np.empty(max_tokens, np.int64)
        self.sizes = np.zeros(8, np.int64)
        bpe_train_init(self.tok, self.nxt, self.prv, self.weight, self.pair_table, self.pair_counts,
                       self.pair_first, self.pair_mark, self.touched, self.occ_pos, self.occ_next, self.heap_count,
                       self.heap_key, self.store, self.tok_starts, self.tok_lengths, self.tok_slots, self.sizes,
                       data, word_starts, word_lengths, word_counts, np.array(BYTE_ORDER, np.uint8))

    def merge(self, steps, max_tokens):
        """Up to `steps` merges (kernels/bpe_train.py's bpe_train_merges), making room for them as
        they need; returns how many (0: no pair is left)."""
        need = self.sizes[N_STORE] + steps * self.longest
        if need > len(self.store):
            self.store = _grown(self.store, max(need, 2 * len(self.store)))
        while True:
            done = bpe_train_merges(self.merges, self.merge_out, steps, max_tokens, self.tok, self.nxt, self.prv,
                                    self.weight, self.pair_table, self.pair_counts, self.pair_first, self.pair_mark,
                                    self.touched, self.occ_pos, self.occ_next, self.heap_count, self.heap_key,
                                    self.store, self.tok_starts, self.tok_lengths, self.tok_slots, self.sizes)
            if done > 0 or self.sizes[N_NEED] == 0:
                return done
            self._make_room(int(self.sizes[N_NEED]))

    def _make_room(self, need):
        """Room for `need` more pairs, occurrence-list entries and heap entries. The lists are
        rebuilt without their stale entries first, and grown only if that leaves them over three
        quarters full; every array grows by half its size at least, so growing is rare."""
        n_pairs, n_occ, n_heap = (int(self.sizes[i]) for i in (N_PAIRS, N_OCC, N_HEAP))
        if n_occ + need > len(self.occ_pos):
            rebuild_occurrences(self.tok, self.nxt, self.pair_table, self.pair_first, self.occ_pos, self.occ_next,
                                self.sizes)
            n_occ = int(self.sizes[N_OCC])
            if 4 * (n_occ + need) > 3 * len(self.occ_pos):
                size = max(n_occ + need, len(self.occ_pos) * 3 // 2)
                self.occ_pos, self.occ_next = _grown(self.occ_pos, size), _grown(self.occ_next, size)
        if n_pairs + need > len(self.pair_counts):
            size = max(n_pairs + need, len(self.pair_counts) * 3 // 2)
            self.pair_counts, self.touched = _grown(self.pair_counts, size), _grown(self.touched, size)
            self.pair_first, self.pair_mark = _grown(self.pair_first, size), _grown(self.pair_mark, size)
        if 2 * (n_pairs + need) >= len(self.pair_table):
            self.pair_table = pair_table_grown(self.pair_table, table_size(len(self.pair_counts) + 1))
        if n_heap + need + 1 > len(self.heap_count):
            size = max(n_heap + need + 1, len(self.heap_count) * 3 // 2)
            self.heap_count, self.heap_key = _grown(self.heap_count, size), _grown(self.heap_key, size)


def _grown(array, size):
    """`array` copied into the start of a new array of `size` elements."""
    bigger = np.empty(size, array.dtype)
    bigger[:len(array)] = array
    return bigger
