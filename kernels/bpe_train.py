"""Learning byte-level BPE merges: count the distinct pieces of a corpus, then merge pairs.

Training repeats: take the adjacent pair of tokens that occurs most often in the corpus (ties:
the smallest (left id, right id)), give it a token, and replace its occurrences, left to right
within each piece. Recounting every pair after every merge costs the whole corpus per merge, so
the counts are kept up to date instead; a merge touches only the places where its pair occurs:

- every distinct piece is a linked list of positions (tok, nxt, prv), weighted by how often the
  piece occurs (weight); a merged position's right half is marked dead (tok -1);
- each pair has a count and a list of the positions where it was seen (occ_*); a merge walks
  that list, skips the entries that earlier merges made stale, and at each real occurrence
  l a b r becomes l c r: the counts of (l, a), (a, b) and (b, r) fall, those of (l, c) and (c, r)
  rise and list the new positions;
- a heap of (-count, pair key) finds the best pair. A count that rises pushes an entry; one that
  falls leaves an entry that is too high, which is pushed again with the true count when it
  comes out on top. An entry is believed only if its count is the pair's count now.

Sizes, for P positions: each merged occurrence removes a position and creates at most two pair
occurrences, so pairs, occurrence-list entries and heap entries each number at most 3 P.

The state arrays, built by transformer_jit/data/tokenizers/bpe_train.py:
    tok, nxt, prv, weight      (P,) int64 positions
    pair_table                 (H, 2) int64 pair table (kernels/hash_tables.py): pair_key(a, b) (-1
                               free) and the pair's index
    pair_counts, pair_first    (3P,) int64 per pair: its count, its first occurrence-list entry (-1 none)
    occ_pos, occ_next          (3P,) int64 occurrence-list entries: a position, the next entry
    heap_count, heap_key       (3P,) int64 the heap of (-count, pair key)
    store                      (K,) uint8 the bytes of every token, one after another
    tok_starts, tok_lengths    (V,) int64 where token t's bytes are in store
    tok_slots                  (W,) int64 byte-string table of the tokens (finds a repeat)
    sizes                      (6,) int64 pairs, entries, heap entries, tokens, merges, store bytes used
"""
import numpy as np

from ._jit import kernel
from .hash_tables import bytes_find, bytes_hash, bytes_table_grown, grown, pair_find, pair_key
from .heap import heap_pop, heap_push
from .pretokenize import piece_end

N_PAIRS, N_OCC, N_HEAP, N_TOKENS, N_MERGES, N_STORE = 0, 1, 2, 3, 4, 5


@kernel
def count_pieces(data, starts, ends, classes):
    """The distinct pieces of two bytes or more in the spans data[starts[s]:ends[s]] and how often
    each occurs: returns (word_starts, word_lengths, word_counts), (W,) int64 each, a word being
    data[word_starts[w]:word_starts[w] + word_lengths[w]], in order of first occurrence. A piece
    of one byte has no pair to merge, so it is left out."""
    word_starts, word_lengths, word_counts = (np.empty(1024, np.int64), np.empty(1024, np.int64),
                                              np.empty(1024, np.int64))
    slots = np.full(2048, -1, np.int64)
    n = 0
    for s in range(len(starts)):
        i = starts[s]
        while i < ends[s]:
            e = piece_end(data, i, ends[s], classes)
            if e - i >= 2:
                h = bytes_hash(data, i, e - i)
                w = bytes_find(slots, word_starts, word_lengths, data, data, i, e - i, h)
                if w >= 0:
                    word_counts[w] += 1
                else:
                    if n == len(word_starts):
                        word_starts, word_lengths = grown(word_starts), grown(word_lengths)
                        word_counts = grown(word_counts)
                        slots = bytes_table_grown(slots, word_starts, word_lengths, data, n)
                        w = bytes_find(slots, word_starts, word_lengths, data, data, i, e - i, h)
                    slots[-w - 1] = n
                    word_starts[n] = i
                    word_lengths[n] = e - i
                    word_counts[n] = 1
                    n += 1
            i = e
    return word_starts[:n].copy(), word_lengths[:n].copy(), word_counts[:n].copy()


@kernel
def _add_to_pair(a, b, delta, pos, push, pair_table, pair_counts, pair_first, occ_pos, occ_next,
                 heap_count, heap_key, sizes):
    """count(a, b) += delta. A rise also lists position `pos` under the pair and, if `push`, puts
    the new count on the heap; a fall needs no heap entry (see the module docstring)."""
    key = pair_key(a, b)
    row = pair_find(pair_table, key)
    if row >= 0:
        p = pair_table[row, 1]
    else:
        p = sizes[N_PAIRS]
        sizes[N_PAIRS] += 1
        pair_table[-row - 1, 0] = key
        pair_table[-row - 1, 1] = p
        pair_counts[p] = 0
        pair_first[p] = -1
    pair_counts[p] += delta
    if delta > 0:
        e = sizes[N_OCC]
        sizes[N_OCC] += 1
        occ_pos[e] = pos
        occ_next[e] = pair_first[p]
        pair_first[p] = e
        if push:
            sizes[N_HEAP] = heap_push(heap_count, heap_key, sizes[N_HEAP], -pair_counts[p], key)


@kernel
def bpe_train_init(tok, nxt, prv, weight, pair_table, pair_counts, pair_first, occ_pos, occ_next,
                   heap_count, heap_key, store, tok_starts, tok_lengths, tok_slots, sizes, data, word_starts,
                   word_lengths, word_counts, byte_order):
    """Lay the words out as positions of byte tokens, count every adjacent pair, and heap the counts.

    The state arrays (module docstring) are written; pair_table and tok_slots start all -1.
    word_*      (W,) int64, from count_pieces; P = word_lengths.sum()
    byte_order  (256,) the byte of each of the first 256 token ids (they are single bytes)
    """
    for t in range(256):
        store[t] = byte_order[t]
        tok_starts[t] = t
        tok_lengths[t] = 1
        tok_slots[-bytes_find(tok_slots, tok_starts, tok_lengths, store, store, t, 1, bytes_hash(store, t, 1)) - 1] = t
    sizes[N_TOKENS] = 256
    sizes[N_STORE] = 256
    byte_id = np.empty(256, np.int64)
    for t in range(256):
        byte_id[byte_order[t]] = t
    p = 0
    for w in range(len(word_starts)):
        m = word_lengths[w]
        for j in range(m):
            tok[p + j] = byte_id[data[word_starts[w] + j]]
            nxt[p + j] = p + j + 1 if j + 1 < m else -1
            prv[p + j] = p + j - 1 if j > 0 else -1
            weight[p + j] = word_counts[w]
        for j in range(m - 1):
            _add_to_pair(tok[p + j], tok[p + j + 1], word_counts[w], p + j, False, pair_table,
                         pair_counts, pair_first, occ_pos, occ_next, heap_count, heap_key, sizes)
        p += m
    for row in range(pair_table.shape[0]):
        if pair_table[row, 0] >= 0:
            sizes[N_HEAP] = heap_push(heap_count, heap_key, sizes[N_HEAP], -pair_counts[pair_table[row, 1]],
                                      pair_table[row, 0])


@kernel
def _token_of(a, b, store, tok_starts, tok_lengths, tok_slots, sizes):
    """The token whose bytes are those of a then b: an existing one with those bytes (two merges
    can spell the same string), or a new one."""
    la, lb, u = tok_lengths[a], tok_lengths[b], sizes[N_STORE]
    for j in range(la):
        store[u + j] = store[tok_starts[a] + j]
    for j in range(lb):
        store[u + la + j] = store[tok_starts[b] + j]
    found = bytes_find(tok_slots, tok_starts, tok_lengths, store, store, u, la + lb, bytes_hash(store, u, la + lb))
    if found >= 0:
        return found
    c = sizes[N_TOKENS]
    tok_slots[-found - 1] = c
    tok_starts[c] = u
    tok_lengths[c] = la + lb
    sizes[N_TOKENS] += 1
    sizes[N_STORE] += la + lb
    return c


@kernel
def bpe_train_merges(merges, merge_out, n_steps, max_tokens, tok, nxt, prv, weight, pair_table,
                     pair_counts, pair_first, occ_pos, occ_next, heap_count, heap_key, store, tok_starts, tok_lengths,
                     tok_slots, sizes):
    """Make up to n_steps merges, fewer if the tokens reach max_tokens or no pair is left; returns
    how many were made.

    merges     (M, 2) int64, merge_out (M,) int64: merge r joins (merges[r, 0], merges[r, 1]) into
               merge_out[r]; written from r = sizes[N_MERGES], which must leave room for n_steps
    store      must have room for n_steps more tokens of the longest word's length
    A merge adds no entry to its own pair's list (its new pairs hold the new token), so the list
    is walked while the merge updates the others.
    """
    done = 0
    while done < n_steps and sizes[N_TOKENS] < max_tokens:
        p = -1
        key = np.int64(0)
        while sizes[N_HEAP] > 0:
            neg_count, key, sizes[N_HEAP] = heap_pop(heap_count, heap_key, sizes[N_HEAP])
            q = pair_table[pair_find(pair_table, key), 1]
            if -neg_count == pair_counts[q]:
                p = q
                break
            if pair_counts[q] > 0:
                sizes[N_HEAP] = heap_push(heap_count, heap_key, sizes[N_HEAP], -pair_counts[q], key)
        if p < 0:
            break
        a, b = key >> 32, key & 0xFFFFFFFF
        c = _token_of(a, b, store, tok_starts, tok_lengths, tok_slots, sizes)
        e = pair_first[p]
        while e >= 0:
            x = occ_pos[e]
            e = occ_next[e]
            if tok[x] != a:
                continue  # stale: an earlier merge changed this place
            if a == b:
                # (a, a) overlaps itself in a run of a: merge the run's pairs from its left end.
                while prv[x] >= 0 and tok[prv[x]] == a:
                    x = prv[x]
            while x >= 0 and tok[x] == a and nxt[x] >= 0 and tok[nxt[x]] == b:
                y = nxt[x]
                w, left, right = weight[x], prv[x], nxt[y]
                if left >= 0:
                    _add_to_pair(tok[left], a, -w, left, True, pair_table, pair_counts, pair_first, occ_pos,
                                 occ_next, heap_count, heap_key, sizes)
                    _add_to_pair(tok[left], c, w, left, True, pair_table, pair_counts, pair_first, occ_pos,
                                 occ_next, heap_count, heap_key, sizes)
                if right >= 0:
                    _add_to_pair(b, tok[right], -w, y, True, pair_table, pair_counts, pair_first, occ_pos,
                                 occ_next, heap_count, heap_key, sizes)
                    _add_to_pair(c, tok[right], w, x, True, pair_table, pair_counts, pair_first, occ_pos,
                                 occ_next, heap_count, heap_key, sizes)
                pair_counts[p] -= w
                tok[x] = c
                tok[y] = -1
                nxt[x] = right
                if right >= 0:
                    prv[right] = x
                x = right if a == b else -1
        pair_first[p] = -1
        r = sizes[N_MERGES]
        merges[r, 0] = a
        merges[r, 1] = b
        merge_out[r] = c
        sizes[N_MERGES] += 1
        done += 1
    return done
