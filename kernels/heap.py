"""A binary min-heap over pairs of int64 keys (first, second), compared as tuples, in two arrays.

BPE encoding keeps (merge rank, position) in one: the best merge, leftmost among equals, comes
out first. BPE training keeps (-count, pair key): the most frequent pair, and among equally
frequent ones the smallest (left id, right id), comes out first.
"""
from ._jit import kernel


@kernel
def _less(a1, b1, a2, b2):
    return a1 < a2 or (a1 == a2 and b1 < b2)


@kernel
def heap_push(first, second, size, a, b):
    """Add (a, b) to the heap first[:size], second[:size]; returns the new size."""
    i = size
    while i > 0:
        parent = (i - 1) >> 1
        if not _less(a, b, first[parent], second[parent]):
            break
        first[i] = first[parent]
        second[i] = second[parent]
        i = parent
    first[i] = a
    second[i] = b
    return size + 1


@kernel
def heap_pop(first, second, size):
    """Remove the smallest pair from the heap (size > 0); returns (its first, its second, new size)."""
    top_a, top_b = first[0], second[0]
    size -= 1
    a, b = first[size], second[size]
    i = 0
    while True:
        child = 2 * i + 1
        if child >= size:
            break
        if child + 1 < size and _less(first[child + 1], second[child + 1], first[child], second[child]):
            child += 1
        if not _less(first[child], second[child], a, b):
            break
        first[i] = first[child]
        second[i] = second[child]
        i = child
    first[i] = a
    second[i] = b
    return top_a, top_b, size
