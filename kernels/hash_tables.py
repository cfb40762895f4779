"""Open-addressing hash tables over plain arrays, for the BPE kernels.

A table's length is a power of two, and lookups probe linearly from the key's hash. Tables are
kept at most half full, so a probe sequence is short on average. Two kinds of key:

- a pair of token ids (a, b), packed as the int64 a << 32 | b and hashed by Fibonacci hashing
  (the key times 2^64 / golden ratio, high bits kept). The table is (n, 2) int64: a row holds
  the key (-1 free) and its value side by side, so a lookup reads one cache line;
- a byte string, stored elsewhere as store[starts[s]:starts[s] + lengths[s]] and hashed with
  FNV-1a. The table holds the string's index s (-1 free); equal hashes are confirmed byte by
  byte, so no hash collision can give a wrong answer.
"""
import numpy as np

from ._jit import kernel

FIBONACCI = np.uint64(0x9E3779B97F4A7C15)
FNV_OFFSET = np.uint64(0xCBF29CE484222325)
FNV_PRIME = np.uint64(0x100000001B3)


def table_size(n):
    """The power of two of at least 2 n slots (at least 8), so that n keys fill at most half."""
    return max(8, 1 << int(2 * n - 1).bit_length())


@kernel
def pair_key(a, b):
    """The int64 key of the token pair (a, b), 0 <= a, b < 2^31; keys order pairs as (a, b) does."""
    return (np.int64(a) << 32) | np.int64(b)


@kernel
def pair_find(table, key):
    """Row of `key` in the pair table `table` (n, 2), or -(free row) - 1 where it would go."""
    mask = table.shape[0] - 1
    h = np.int64((np.uint64(key) * FIBONACCI) >> np.uint64(32)) & mask
    while True:
        k = table[h, 0]
        if k == key:
            return h
        if k == -1:
            return -h - 1
        h = (h + 1) & mask


@kernel
def pair_table_grown(table, n_rows):
    """A pair table of n_rows rows (a power of two, more than twice the keys) holding the rows of `table`."""
    bigger = np.full((n_rows, 2), -1, table.dtype)
    for row in range(table.shape[0]):
        if table[row, 0] >= 0:
            new = -pair_find(bigger, table[row, 0]) - 1
            bigger[new, 0] = table[row, 0]
            bigger[new, 1] = table[row, 1]
    return bigger


@kernel
def bytes_hash(data, start, length):
    """FNV-1a of data[start:start + length]: for each byte, h = (h xor byte) * FNV prime."""
    h = FNV_OFFSET
    for i in range(start, start + length):
        h = (h ^ np.uint64(data[i])) * FNV_PRIME
    return h


@kernel
def bytes_find(slots, starts, lengths, store, data, start, length, h):
    """Index s of the string store[starts[s]:starts[s] + lengths[s]] equal to data[start:start + length]
    in the table `slots` (int32 or int64 indices, -1 free), or -(free slot) - 1 where it would go;
    h = bytes_hash(data, start, length)."""
    mask = len(slots) - 1
    i = np.int64((h ^ (h >> np.uint64(32))) & np.uint64(mask))
    while True:
        s = slots[i]
        if s == -1:
            return -i - 1
        if lengths[s] == length:
            o = starts[s]
            same = True
            for j in range(length):
                if store[o + j] != data[start + j]:
                    same = False
                    break
            if same:
                return s
        i = (i + 1) & mask


@kernel
def bytes_table_grown(slots, starts, lengths, store, n):
    """A byte-string table of twice as many slots holding the strings 0..n-1 (distinct)."""
    bigger = np.full(2 * len(slots), -1, slots.dtype)
    for s in range(n):
        h = bytes_hash(store, starts[s], lengths[s])
        bigger[-bytes_find(bigger, starts, lengths, store, store, starts[s], lengths[s], h) - 1] = s
    return bigger


@kernel
def grown(a):
    """A copy of the 1-D array `a` with twice its length (at least 1); the new half is unset."""
    b = np.empty(max(1, 2 * len(a)), a.dtype)
    for i in range(len(a)):
        b[i] = a[i]
    return b
