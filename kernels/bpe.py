"""Byte-level BPE encoding and decoding over token tables held in arrays.

Encoding, piece by piece (kernels/pretokenize.py cuts the text into pieces):
- a piece of one byte is that byte's token;
- a piece whose bytes are a token that its own merges produce is that token: one hash lookup,
  which covers most pieces of ordinary text;
- any other piece starts as one token per byte, and then the adjacent pair of lowest merge rank
  is merged, the leftmost of equal ranks first, until no adjacent pair has a merge. That is
  GPT-2's rule: GPT-2 merges every occurrence of the best pair at once, left to right; here
  one occurrence at a time, which gives the same tokens because a merge list only ever pairs
  tokens that earlier merges made, so the pairs that a merge creates rank after it.
  The pairs wait in a binary heap of (rank, position), so a piece of m bytes costs
  O(m log m), even a long run of digits or spaces. The result is remembered for the rest of the
  spans encoded together (rare words repeat): the cache's keys are the piece's first occurrence
  in the text and its values the tokens already written to the output, so it stores no copy.

The tables, all built by transformer_jit/data/tokenizers/bpe.py:
    byte_id        (256,) int32, the token of each byte value
    pair_table     (P, 2) int64, pair table (kernels/hash_tables.py): pair_key(a, b) and the
                   merge rank of that pair, -1 free
    merge_out      (M,) int32, the token that merge r makes
    piece_slots    (Q,) int32, byte-string table of the tokens that the whole-piece lookup may
                   return (token ids, -1 free)
    token_bytes    (K,) uint8, every token's bytes one after another
    token_starts, token_lengths  (V,) int64, where each token's bytes are in token_bytes
"""
import numpy as np
from numba import prange

from ._jit import kernel, parallel_kernel
from .hash_tables import bytes_find, bytes_hash, bytes_table_grown, grown, pair_find, pair_key
from .heap import heap_pop, heap_push
from .pretokenize import piece_end

NO_MERGE = np.int64(1) << 31  # the rank of a pair that has no merge, after every real rank


@kernel
def _pair_rank(pair_table, a, b):
    row = pair_find(pair_table, pair_key(a, b))
    return pair_table[row, 1] if row >= 0 else NO_MERGE


@kernel
def _rank_pair(rank, heap_rank, heap_pos, size, i, tok, nxt, m, pair_table):
    """rank[i] = the merge rank of the pair that starts at position i (NO_MERGE if it has none or
    i is the last position); a pair with a merge goes on the heap. Returns the heap's size."""
    rank[i] = _pair_rank(pair_table, tok[i], tok[nxt[i]]) if nxt[i] < m else NO_MERGE
    if rank[i] != NO_MERGE:
        size = heap_push(heap_rank, heap_pos, size, rank[i], i)
    return size


@kernel
def _merge_piece(out, k, data, start, m, byte_id, pair_table, merge_out, scratch):
    """Write the tokens of the piece data[start:start + m] to out[k:]; returns the new end of out.

    scratch  (10 c,) int64, c >= m, in ten parts of c: tok, nxt, prv, rank: position i holds token
             tok[i] (-1 once merged into its left neighbour), links to the next and previous live
             positions, and rank[i], the merge rank of the pair that starts at i; then the heap of
             (rank, position) in parts 4-6 and 7-9: the m - 1 first pairs and two new pairs per
             merge fit in 3 m entries
    An entry whose rank no longer matches rank[i] is stale (a merge changed that pair): skipped.
    """
    c = len(scratch) // 10
    tok, nxt, prv, rank = scratch[:c], scratch[c:2 * c], scratch[2 * c:3 * c], scratch[3 * c:4 * c]
    heap_rank, heap_pos = scratch[4 * c:7 * c], scratch[7 * c:]
    for i in range(m):
        tok[i] = byte_id[data[start + i]]
        nxt[i] = i + 1
        prv[i] = i - 1
    size = 0
    for i in range(m):
        size = _rank_pair(rank, heap_rank, heap_pos, size, i, tok, nxt, m, pair_table)
    while size > 0:
        r, i, size = heap_pop(heap_rank, heap_pos, size)
        if tok[i] < 0 or rank[i] != r:
            continue
        j = nxt[i]
        tok[i] = merge_out[r]
        tok[j] = -1
        nxt[i] = nxt[j]
        if nxt[i] < m:
            prv[nxt[i]] = i
        # The pairs that start at i and at its left neighbour hold the new token.
        size = _rank_pair(rank, heap_rank, heap_pos, size, i, tok, nxt, m, pair_table)
        if prv[i] >= 0:
            size = _rank_pair(rank, heap_rank, heap_pos, size, prv[i], tok, nxt, m, pair_table)
    i = 0
    while i < m:
        out[k] = tok[i]
        k += 1
        i = nxt[i]
    return k


@kernel
def _encode_spans(counts, out, k, data, starts, ends, specials, first, last, classes, byte_id, pair_table, merge_out,
                  piece_slots, token_bytes, token_starts, token_lengths, max_piece_token):
    """Write the tokens of the spans first .. last - 1 (each followed by its special token if
    that is >= 0) one after another to out[k:]; counts[s] = the number of span s; returns the new
    end of out. Pieces longer than max_piece_token bytes skip the whole-piece lookup.

    The cache of merged pieces: cache_slots is a byte-string table over the pieces
    data[cache_start[e]:cache_start[e] + cache_length[e]], whose tokens are
    out[cache_out[e]:cache_out[e] + cache_count[e]]. It is made at the first piece that needs it.
    """
    scratch = np.empty(0, np.int64)
    n_cached = 0
    cache_slots = np.empty(0, np.int64)
    cache_start, cache_length, cache_out, cache_count = cache_slots, cache_slots, cache_slots, cache_slots
    for s in range(first, last):
        span_start = k
        i, end = starts[s], ends[s]
        while i < end:
            e = piece_end(data, i, end, classes)
            m = e - i
            if m == 1:
                out[k] = byte_id[data[i]]
                k += 1
                i = e
                continue
            h = bytes_hash(data, i, m)
            t = -1
            if m <= max_piece_token:
                t = bytes_find(piece_slots, token_starts, token_lengths, token_bytes, data, i, m, h)
            if t >= 0:
                out[k] = t
                k += 1
                i = e
                continue
            if n_cached == 0:
                cache_slots = np.full(64, -1, np.int64)
                cache_start, cache_length = np.empty(32, np.int64), np.empty(32, np.int64)
                cache_out, cache_count = np.empty(32, np.int64), np.empty(32, np.int64)
            c = bytes_find(cache_slots, cache_start, cache_length, data, data, i, m, h)
            if c >= 0:
                for j in range(cache_count[c]):
                    out[k + j] = out[cache_out[c] + j]
                k += cache_count[c]
                i = e
                continue
            if len(scratch) < 10 * m:
                scratch = np.empty(10 * max(m, 64), np.int64)
            piece_start = k
            k = _merge_piece(out, k, data, i, m, byte_id, pair_table, merge_out, scratch)
            if n_cached == len(cache_start):
                cache_start, cache_length = grown(cache_start), grown(cache_length)
                cache_out, cache_count = grown(cache_out), grown(cache_count)
                cache_slots = bytes_table_grown(cache_slots, cache_start, cache_length, data, n_cached)
                c = bytes_find(cache_slots, cache_start, cache_length, data, data, i, m, h)
            cache_slots[-c - 1] = n_cached
            cache_start[n_cached], cache_length[n_cached] = i, m
            cache_out[n_cached], cache_count[n_cached] = piece_start, k - piece_start
            n_cached += 1
            i = e
        if specials[s] >= 0:
            out[k] = specials[s]
            k += 1
        counts[s] = k - span_start
    return k


@kernel
def bpe_encode(counts, out, data, starts, ends, specials, classes, byte_id, pair_table, merge_out, piece_slots,
               token_bytes, token_starts, token_lengths, max_piece_token):
    """Encode the spans data[starts[s]:ends[s]], each followed by the token specials[s] if that is
    >= 0, one after another into out; returns the number of tokens written.

    counts     (S,) int64, written: the number of tokens of each span (its special included)
    out        (>= n,) uint16 or uint32, written; n = the total bytes of the spans plus the specials
    data       (bytes,) uint8, UTF-8 text
    starts, ends, specials  (S,) int64; spans are pre-tokenized separately (a special token
               between two spans is a piece boundary)
    The other arguments are the tables of the module docstring and the code point classes of
    kernels/pretokenize.py. A token never has fewer bytes than one, so n bounds the output.
    """
    return _encode_spans(counts, out, 0, data, starts, ends, specials, 0, len(starts), classes, byte_id, pair_table,
                         merge_out, piece_slots, token_bytes, token_starts, token_lengths, max_piece_token)


@parallel_kernel
def bpe_encode_parallel(counts, out, data, starts, ends, specials, blocks, classes, byte_id, pair_table, merge_out,
                        piece_slots, token_bytes, token_starts, token_lengths, max_piece_token):
    """bpe_encode with blocks of spans on all threads: block b, the spans blocks[b] ..
    blocks[b + 1] - 1, writes its tokens from out[starts[blocks[b]]], where its text starts;
    `compact_spans` then closes the gaps. A block's tokens fit before the next block's start,
    as no token has fewer bytes than one (the special tokens included).

    blocks  (B + 1,) int64, increasing from 0 to S
    """
    for b in prange(len(blocks) - 1):
        first = blocks[b]
        _encode_spans(counts, out, starts[first], data, starts, ends, specials, first, blocks[b + 1], classes,
                      byte_id, pair_table, merge_out, piece_slots, token_bytes, token_starts, token_lengths,
                      max_piece_token)


@kernel
def compact_spans(out, starts, counts, blocks):
    """Move the tokens of every block of bpe_encode_parallel to follow each other from out[0];
    returns the total. Blocks are in order and each moves left, so copying forward is safe."""
    k = 0
    for b in range(len(blocks) - 1):
        src = starts[blocks[b]]
        n = 0
        for s in range(blocks[b], blocks[b + 1]):
            n += counts[s]
        for j in range(n):
            out[k + j] = out[src + j]
        k += n
    return k


@kernel
def decoded_length(ids, token_lengths):
    """The number of bytes of the tokens `ids`, or -(i + 1) if ids[i] is the first id outside
    [0, len(token_lengths))."""
    n = 0
    v = len(token_lengths)
    for i in range(len(ids)):
        t = np.int64(ids[i])
        if t < 0 or t >= v:
            return -(i + 1)
        n += token_lengths[t]
    return n


@kernel
def bpe_decode(out, ids, token_bytes, token_starts, token_lengths):
    """out = the bytes of the tokens `ids`, one after another (out has decoded_length(ids) bytes)."""
    k = 0
    for i in range(len(ids)):
        t = ids[i]
        o = token_starts[t]
        for j in range(token_lengths[t]):
            out[k + j] = token_bytes[o + j]
        k += token_lengths[t]


@kernel
def build_pair_table(pair_table, merges):
    """Fill the pair table (all -1, at least 2 M rows): merge r of `merges` (M, 2) int64 joins the
    pair (merges[r, 0], merges[r, 1]); a repeated pair keeps its first rank."""
    for r in range(merges.shape[0]):
        key = pair_key(merges[r, 0], merges[r, 1])
        row = pair_find(pair_table, key)
        if row < 0:
            pair_table[-row - 1, 0] = key
            pair_table[-row - 1, 1] = r


@kernel
def build_piece_table(piece_slots, token_bytes, token_starts, token_lengths, tokens):
    """Put the byte strings of `tokens` (int64 ids) in the byte-string table piece_slots (all -1,
    at least 2 len(tokens) slots); a repeated string keeps its first token."""
    for t in tokens:
        h = bytes_hash(token_bytes, token_starts[t], token_lengths[t])
        found = bytes_find(piece_slots, token_starts, token_lengths, token_bytes, token_bytes, token_starts[t],
                           token_lengths[t], h)
        if found < 0:
            piece_slots[-found - 1] = t
