"""safetensors files with NumPy alone: read through np.memmap, written atomically.

The format, as the `safetensors` library writes it:

    8 bytes    N, the header's length, a little-endian uint64
    N bytes    a JSON object, padded with spaces:
                 {name: {"dtype": "F32", "shape": [3, 4], "data_offsets": [begin, end]}, ...,
                  "__metadata__": {str: str}}          (the metadata is optional)
    the rest   the data buffer: each tensor's elements, little-endian, C order, at
               [begin, end) counted from the buffer's first byte

A file is accepted only when every tensor's byte range is exactly its shape's size and the ranges
tile the buffer: no overlap, no hole, nothing after the last one (the reference library refuses
holes too). All of that is checked from the header before a byte of data is read, so a damaged
file is refused with its name and the tensor's, and nothing is read out of bounds.
"""
import json
import math
import os
from pathlib import Path

import numpy as np

from ..util.atomic import atomic_write
from ..util.json_file import parse_json
from ..util.regular_file import open_regular_file

# How each dtype code is stored. BF16 is stored as the high half of a float32's bits; NumPy has
# no bfloat16, so it is read as uint16 and widened (see widen_bfloat16).
STORAGE = {
    "F64": np.dtype("<f8"), "F32": np.dtype("<f4"), "F16": np.dtype("<f2"), "BF16": np.dtype("<u2"),
    "I64": np.dtype("<i8"), "I32": np.dtype("<i4"), "I16": np.dtype("<i2"), "I8": np.dtype("i1"),
    "U64": np.dtype("<u8"), "U32": np.dtype("<u4"), "U16": np.dtype("<u2"), "U8": np.dtype("u1"),
    "BOOL": np.dtype("?"),
}
# Codes the format defines that NumPy cannot represent: refused by name rather than as unknown.
UNSUPPORTED = ("F4", "F6_E2M3", "F6_E3M2", "F8_E5M2", "F8_E4M3", "F8_E8M0", "F8_E4M3FNUZ", "F8_E5M2FNUZ", "C64")
# What each NumPy dtype is written as (every code but BF16, which NumPy cannot hold).
CODES = {STORAGE[code].newbyteorder("="): code for code in STORAGE if code != "BF16"}
# The order in which the reference library lays tensors out: by this rank (its dtype enum, item
# sizes decreasing, so every tensor starts at a multiple of its item size), then by name.
WRITE_RANK = {code: rank for rank, code in enumerate(
    ("U64", "I64", "F64", "F32", "U32", "I32", "BF16", "F16", "U16", "I16", "I8", "U8", "BOOL"))}
# The reference library's limit on the header's length, 100 MB.
MAX_HEADER = 100_000_000
METADATA = "__metadata__"


class SafetensorsFile:
    """A validated safetensors file, memory-mapped: nothing is read until a tensor is asked for.

        f = SafetensorsFile(path)
        f.names                        tensor names, sorted
        f.metadata                     the "__metadata__" dict ({} if none)
        f.dtype(name), f.shape(name)   the stored dtype code ("F32", ...) and shape
        f[name]                        the tensor as an ndarray (see __getitem__)
    """

    def __init__(self, path):
        self.path = Path(path)
        with open_regular_file(self.path, "safetensors file") as f:
            size = os.fstat(f.fileno()).st_size
            start = f.read(8)
            if len(start) < 8:
                self._fail(f"the file is {size} bytes, shorter than its 8-byte header length")
            n = int.from_bytes(start, "little")
            if n > MAX_HEADER:
                self._fail(f"header length {n} exceeds the limit of {MAX_HEADER} bytes")
            if 8 + n > size:
                self._fail(f"header length {n} runs past the end of the file ({size} bytes)")
            header = self._parse_header(f.read(n))
            self.metadata = self._check_metadata(header.pop(METADATA, {}))
            self.buffer_size = size - 8 - n
            self._entries = {name: self._check_entry(name, entry) for name, entry in sorted(header.items())}
            self._check_tiling()
            if self.buffer_size == 0:
                self._buffer = np.empty(0, np.uint8)  # mmap cannot map zero bytes
            else:  # the map outlives the file object: it holds the file itself
                self._buffer = np.memmap(f, dtype=np.uint8, mode="r", offset=8 + n,
                                         shape=(self.buffer_size,)).view(np.ndarray)

    @property
    def names(self):
        return list(self._entries)

    def dtype(self, name):
        return self._entry(name)[0]

    def shape(self, name):
        return self._entry(name)[1]

    def __contains__(self, name):
        return name in self._entries

    def __getitem__(self, name):
        """The tensor `name`: F32 (and the other types NumPy has) as a read-only view of the file,
        copied only when its bytes are not aligned to its item size; F16 and BF16 widened to a new
        float32 array (exactly: every F16 and BF16 value is a float32 value)."""
        code, shape, begin, end = self._entry(name)
        storage = STORAGE[code]
        raw = self._buffer[begin:end]
        if raw.ctypes.data % storage.itemsize:
            raw = raw.copy()  # a fresh allocation is aligned
        return _to_array(raw.view(storage).reshape(shape), code)

    def _entry(self, name):
        if name not in self._entries:
            raise KeyError(f"{self.path}: no tensor {name!r}")
        return self._entries[name]

    # -- validation ----------------------------------------------------------------------------------
    def _fail(self, message):
        raise ValueError(f"{self.path}: {message}")

    def _parse_header(self, blob):
        twice = set()

        def note_duplicates(pairs):
            keys = [k for k, _ in pairs]
            twice.update(k for k in keys if keys.count(k) > 1)
            return dict(pairs)

        header = parse_json(blob, f"{self.path}: the header", note_duplicates)
        if twice:
            self._fail(f"header names {sorted(twice)} twice")
        if not isinstance(header, dict):
            self._fail(f"header must be a JSON object, got {type(header).__name__}")
        return header

    def _check_metadata(self, metadata):
        if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
            self._fail(f"{METADATA} must be an object of strings, got {metadata!r}")
        return metadata

    def _check_entry(self, name, entry):
        """(dtype code, shape, begin, end) of one header entry, each part checked."""
        def fail(message):
            self._fail(f"tensor {name!r}: {message}")

        if not isinstance(entry, dict):
            fail(f"entry must be an object, got {entry!r}")
        missing = [k for k in ("dtype", "shape", "data_offsets") if k not in entry]
        if missing:
            fail(f"entry lacks {missing}")
        code, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if code in UNSUPPORTED:
            fail(f"dtype {code} has no NumPy equivalent")
        if not isinstance(code, str) or code not in STORAGE:
            fail(f"unknown dtype {code!r} (known: {sorted(STORAGE)})")
        if not isinstance(shape, list) or not all(_is_int(d) and d >= 0 for d in shape):
            fail(f"shape must be a list of non-negative integers, got {shape!r}")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_int(o) for o in offsets)
                and 0 <= offsets[0] <= offsets[1]):
            fail(f"data_offsets must be two integers 0 <= begin <= end, got {offsets!r}")
        begin, end = offsets
        if end > self.buffer_size:
            fail(f"data_offsets {offsets} run past the end of the data buffer ({self.buffer_size} bytes)")
        nbytes = math.prod(shape) * STORAGE[code].itemsize
        if end - begin != nbytes:
            fail(f"data_offsets {offsets} span {end - begin} bytes, but {code} {shape} needs {nbytes}")
        return code, tuple(shape), begin, end

    def _check_tiling(self):
        """The tensors, in order of their offsets, must cover the buffer exactly once."""
        at, previous = 0, None
        for name, (_, _, begin, end) in sorted(self._entries.items(), key=lambda item: item[1][2:]):
            if begin < at:
                self._fail(f"tensor {name!r} at bytes [{begin}, {end}) overlaps tensor {previous!r}, "
                           f"which ends at {at}")
            if begin > at:
                self._fail(f"bytes [{at}, {begin}) of the data buffer belong to no tensor (a hole before {name!r})")
            at, previous = end, name
        if at != self.buffer_size:
            self._fail(f"bytes [{at}, {self.buffer_size}) of the data buffer belong to no tensor (after the last)")


def load_safetensors(path):
    """{name: ndarray} of every tensor in a safetensors file (see SafetensorsFile.__getitem__)."""
    f = SafetensorsFile(path)
    return {name: f[name] for name in f.names}


def save_safetensors(path, tensors, metadata=None):
    """Write {name: array} as a safetensors file, atomically; `metadata` is an optional {str: str}.

    Arrays need not be contiguous (each is made so while it is written, one at a time). The layout
    is the reference library's (WRITE_RANK, compact JSON padded with spaces to a multiple of 8
    bytes), so the same tensors give the same bytes.
    """
    path = Path(path)
    arrays = {}
    for name, a in tensors.items():
        if not isinstance(name, str) or name == METADATA:
            raise ValueError(f"{path}: tensor names must be strings other than {METADATA!r}, got {name!r}")
        a = np.asarray(a)
        if a.dtype.newbyteorder("=") not in CODES:
            raise TypeError(f"{path}: tensor {name!r} has dtype {a.dtype}, which safetensors cannot store")
        arrays[name] = a
    metadata = {} if metadata is None else metadata
    if not (isinstance(metadata, dict)
            and all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items())):
        raise ValueError(f"{path}: metadata must be a dict of strings, got {metadata!r}")
    codes = {name: CODES[a.dtype.newbyteorder("=")] for name, a in arrays.items()}
    order = sorted(arrays, key=lambda name: (WRITE_RANK[codes[name]], name))
    header = {METADATA: metadata} if metadata else {}
    at = 0
    for name in order:
        nbytes = arrays[name].nbytes
        header[name] = {"dtype": codes[name], "shape": list(arrays[name].shape), "data_offsets": [at, at + nbytes]}
        at += nbytes
    blob = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    blob += b" " * (-len(blob) % 8)
    with atomic_write(path) as f:
        f.write(len(blob).to_bytes(8, "little"))
        f.write(blob)
        for name in order:
            a = arrays[name]
            f.write(np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<")).data)


def _to_array(stored, code):
    """float32 from F16 and BF16 storage; any other code's view as it is."""
    if code == "F16":
        return stored.astype(np.float32)
    if code == "BF16":
        return widen_bfloat16(stored)
    return stored


def widen_bfloat16(bits):
    """float32 values of bfloat16 numbers given as their uint16 bit patterns (any shape).

    bfloat16 is the top 16 bits of a float32 (sign, 8-bit exponent, 7 fraction bits): put them
    back in the high half and the value is exact."""
    return (bits.astype(np.uint32) << np.uint32(16)).view(np.float32)


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)
