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

The arrays grow as training needs them, not to their worst case: before a merge, the kernel
checks that there is room for the new pairs, list entries and heap entries that it can make (two
per entry of the pair's occurrence list) and otherwise stops and asks for it (sizes[N_NEED]). The
caller then rebuilds the occurrence lists from the live positions (rebuild_occurrences: entries
that earlier merges made stale take most of the room) or grows the arrays. Each rising pair is
pushed on the heap once per merge, with its final count, not once per occurrence.

The state arrays, built by transformer_jit/data/tokenizers/bpe_train.py, with I an integer type
that holds any position (int32 for texts below 2 GiB):
    tok, nxt, prv, weight      (P,) I positions
    pair_table                 (H, 2) int64 pair table (kernels/hash_tables.py): pair_key(a, b) (-1
                               free) and the pair's index; H > 2 D
    pair_counts                (D,) int64 per pair: its count
    pair_first, pair_mark      (D,) I per pair: its first occurrence-list entry (-1 none), the last
                               merge that put it on the touched list (-1 none)
    touched                    (D,) int64 keys of the pairs whose count rose in this merge
    occ_pos, occ_next          (E,) I occurrence-list entries: a position, the next entry
    heap_count, heap_key       (K,) int64 the heap of (-count, pair key)
    store                      (S,) uint8 the bytes of every token, one after another
    tok_starts, tok_lengths    (V,) int64 where token t's bytes are in store
    tok_slots                  (W,) int64 byte-string table of the tokens (finds a repeat)
    sizes                      (8,) int64 pairs, entries, heap entries, tokens, merges, store bytes
                               used, room needed (0: none), touched pairs
"""
import numpy as np

from ._jit import kernel
from .hash_tables import bytes_find, bytes_hash, bytes_table_grown, grown, pair_find, pair_key
from .heap import heap_pop, heap_push
from .pretokenize import piece_end

N_PAIRS, N_OCC, N_HEAP, N_TOKENS, N_MERGES, N_STORE, N_NEED, N_TOUCHED = range(8)


@kernel
def count_pieces(data, starts, ends, classes, max_piece):
    """The distinct pieces of two bytes or more in the spans data[starts[s]:ends[s]] and how often
    each occurs: returns (word_starts, word_lengths, word_counts), (W,) int64 each, a word being
    data[word_starts[w]:word_starts[w] + word_lengths[w]], in order of first occurrence. A piece
    of one byte has no pair to merge, so it is left out. A piece longer than max_piece bytes (at
    least 4) counts as its chunks of at most max_piece bytes, cut before a character's first byte
    (_chunk_end), so no merge is learned across a cut."""
    word_starts, word_lengths, word_counts = (np.empty(1024, np.int64), np.empty(1024, np.int64),
                                              np.empty(1024, np.int64))
    slots = np.full(2048, -1, np.int64)
    n = 0
    for s in range(len(starts)):
        i = starts[s]
        piece = i  # the end of the piece that data[i] is in
        while i < ends[s]:
            if i == piece:
                piece = piece_end(data, i, ends[s], classes)
            e = _chunk_end(data, i, piece, max_piece)
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
def distinct_bytes(data):
    """How many of the 256 byte values occur in `data`."""
    seen = np.zeros(256, np.bool_)
    for i in range(len(data)):
        seen[data[i]] = True
    return np.count_nonzero(seen)


@kernel
def _chunk_end(data, start, end, max_piece):
    """end, or for a piece data[start:end] longer than max_piece bytes the end of its first chunk:
    the last character start at most max_piece bytes after `start` (UTF-8 continuation bytes are
    0b10xxxxxx, and a character has at most 4 bytes)."""
    if end - start <= max_piece:
        return end
    e = start + max_piece
    while (data[e] & 0xC0) == 0x80:
        e -= 1
    return e


@kernel
def _add_to_pair(a, b, delta, pos, stamp, pair_table, pair_counts, pair_first, pair_mark, touched, occ_pos,
                 occ_next, sizes):
    """count(a, b) += delta. A rise also lists position `pos` under the pair and, in merge `stamp`
    (>= 0), puts the pair on the touched list once; a fall needs no heap entry (module docstring)."""
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
        pair_mark[p] = -1
    pair_counts[p] += delta
    if delta > 0:
        e = sizes[N_OCC]
        sizes[N_OCC] += 1
        occ_pos[e] = pos
        occ_next[e] = pair_first[p]
        pair_first[p] = e
        if stamp >= 0 and pair_mark[p] != stamp:
            pair_mark[p] = stamp
            touched[sizes[N_TOUCHED]] = key
            sizes[N_TOUCHED] += 1


@kernel
def bpe_train_init(tok, nxt, prv, weight, pair_table, pair_counts, pair_first, pair_mark, touched, occ_pos,
                   occ_next, heap_count, heap_key, store, tok_starts, tok_lengths, tok_slots, sizes, data,
                   word_starts, word_lengths, word_counts, byte_order):
    """Lay the words out as positions of byte tokens, count every adjacent pair, and heap the counts.

    The state arrays (module docstring) are written; pair_table and tok_slots start all -1. They
    need room for P - W entries and for the distinct byte pairs (at most P, and at most the
    square of the number of distinct bytes).
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
            _add_to_pair(tok[p + j], tok[p + j + 1], word_counts[w], p + j, -1, pair_table, pair_counts,
                         pair_first, pair_mark, touched, occ_pos, occ_next, sizes)
        p += m
    for row in range(pair_table.shape[0]):
        if pair_table[row, 0] >= 0:
            sizes[N_HEAP] = heap_push(heap_count, heap_key, sizes[N_HEAP], -pair_counts[pair_table[row, 1]],
                                      pair_table[row, 0])


@kernel
def rebuild_occurrences(tok, nxt, pair_table, pair_first, occ_pos, occ_next, sizes):
    """List every pair's live occurrences afresh, dropping the stale entries: the lists then hold
    one entry per adjacent pair of live positions. Merges walk a list in any order with the same
    result (only (a, a) occurrences overlap, and those are merged from their run's left end)."""
    for p in range(sizes[N_PAIRS]):
        pair_first[p] = -1
    e = 0
    for x in range(len(tok)):
        if tok[x] >= 0 and nxt[x] >= 0:
            p = pair_table[pair_find(pair_table, pair_key(tok[x], tok[nxt[x]])), 1]
            occ_pos[e] = x
            occ_next[e] = pair_first[p]
            pair_first[p] = e
            e += 1
    sizes[N_OCC] = e


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
def _has_room(need, pair_table, pair_counts, occ_pos, heap_count, sizes):
    """Whether a merge that can make `need` new pairs, entries and heap entries fits the arrays."""
    pairs = sizes[N_PAIRS] + need
    return (pairs <= len(pair_counts) and 2 * pairs < pair_table.shape[0] and sizes[N_OCC] + need <= len(occ_pos)
            and sizes[N_HEAP] + need + 1 <= len(heap_count))


@kernel
def bpe_train_merges(merges, merge_out, n_steps, max_tokens, tok, nxt, prv, weight, pair_table, pair_counts,
                     pair_first, pair_mark, touched, occ_pos, occ_next, heap_count, heap_key, store, tok_starts,
                     tok_lengths, tok_slots, sizes):
    """Make up to n_steps merges, fewer if the tokens reach max_tokens, no pair is left, or the
    next merge needs more room (then sizes[N_NEED] says how much; module docstring); returns how
    many were made.

    merges     (M, 2) int64, merge_out (M,) int64: merge r joins (merges[r, 0], merges[r, 1]) into
               merge_out[r]; written from r = sizes[N_MERGES], which must leave room for n_steps
    store      must have room for n_steps more tokens of the longest word's length
    A merge adds no entry to its own pair's list (its new pairs hold the new token), so the list
    is walked while the merge updates the others.
    """
    done = 0
    sizes[N_NEED] = 0
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
        listed = 0
        e = pair_first[p]
        while e >= 0:
            listed += 1
            e = occ_next[e]
        if not _has_room(2 * listed, pair_table, pair_counts, occ_pos, heap_count, sizes):
            sizes[N_HEAP] = heap_push(heap_count, heap_key, sizes[N_HEAP], -pair_counts[p], key)
            sizes[N_NEED] = 2 * listed
            break
        a, b = key >> 32, key & 0xFFFFFFFF
        c = _token_of(a, b, store, tok_starts, tok_lengths, tok_slots, sizes)
        stamp = sizes[N_MERGES]
        sizes[N_TOUCHED] = 0
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
                    _add_to_pair(tok[left], a, -w, left, stamp, pair_table, pair_counts, pair_first, pair_mark,
                                 touched, occ_pos, occ_next, sizes)
                    _add_to_pair(tok[left], c, w, left, stamp, pair_table, pair_counts, pair_first, pair_mark,
                                 touched, occ_pos, occ_next, sizes)
                if right >= 0:
                    _add_to_pair(b, tok[right], -w, y, stamp, pair_table, pair_counts, pair_first, pair_mark,
                                 touched, occ_pos, occ_next, sizes)
                    _add_to_pair(c, tok[right], w, x, stamp, pair_table, pair_counts, pair_first, pair_mark,
                                 touched, occ_pos, occ_next, sizes)
                pair_counts[p] -= w
                tok[x] = c
                tok[y] = -1
                nxt[x] = right
                if right >= 0:
                    prv[right] = x
                x = right if a == b else -1
        pair_first[p] = -1
        for i in range(sizes[N_TOUCHED]):
            q = pair_table[pair_find(pair_table, touched[i]), 1]
            if pair_counts[q] > 0:
                sizes[N_HEAP] = heap_push(heap_count, heap_key, sizes[N_HEAP], -pair_counts[q], touched[i])
        r = sizes[N_MERGES]
        merges[r, 0] = a
        merges[r, 1] = b
        merge_out[r] = c
        sizes[N_MERGES] += 1
        done += 1
    return done
