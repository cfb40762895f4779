"""llm.c's GPT-2 checkpoints (`gpt2_124M.bin`): a header of 256 little-endian int32, then every
parameter, flat.

    header[0] 20240326 (magic)     header[1] version: 3 float32, 5 bfloat16
    header[2] max_seq_len          header[3] vocab_size V       header[4] n_layer L
    header[5] n_head               header[6] n_embd C           header[7] padded_vocab_size Vp

Then 16 tensors, in this order, each per-layer one as the L layers' slices stacked (L, ...):

    wte (Vp, C)  wpe (max_seq_len, C)  ln1w (L, C)  ln1b (L, C)  qkvw (L, 3C, C)  qkvb (L, 3C)
    attprojw (L, C, C)  attprojb (L, C)  ln2w (L, C)  ln2b (L, C)  fcw (L, 4C, C)  fcb (L, 4C)
    fcprojw (L, C, 4C)  fcprojb (L, C)  lnfw (C,)  lnfb (C,)

as llm.c's train_gpt2.py writes them (write_tensors) and train_gpt2.c reads them
(fill_in_parameter_sizes). Weights are nn.Linear's (out, in): nothing is transposed. wte's rows
V..Vp are padding (llm.c rounds the vocabulary up to a multiple of 128 for its kernels): dropped
on load, written as zeros.
"""
import math
import os
from pathlib import Path

import numpy as np

from ..util.atomic import atomic_write
from ..util.regular_file import open_regular_file
from .gpt2_layout import check_params, copy_finite, gpt2_shapes, gpt2_sizes
from .safetensors import widen_bfloat16

MAGIC = 20240326
HEADER_INTS = 256
HEADER_BYTES = 4 * HEADER_INTS
FLOAT32, BFLOAT16 = 3, 5
STORAGE = {FLOAT32: np.dtype("<f4"), BFLOAT16: np.dtype("<u2")}  # bfloat16 as its bit patterns
VOCAB_MULTIPLE = 128
# llm.c's tensors in file order, by nanoGPT name; "{i}" marks one stacked slice per layer.
ORDER = ("transformer.wte.weight", "transformer.wpe.weight",
         "transformer.h.{i}.ln_1.weight", "transformer.h.{i}.ln_1.bias",
         "transformer.h.{i}.attn.c_attn.weight", "transformer.h.{i}.attn.c_attn.bias",
         "transformer.h.{i}.attn.c_proj.weight", "transformer.h.{i}.attn.c_proj.bias",
         "transformer.h.{i}.ln_2.weight", "transformer.h.{i}.ln_2.bias",
         "transformer.h.{i}.mlp.c_fc.weight", "transformer.h.{i}.mlp.c_fc.bias",
         "transformer.h.{i}.mlp.c_proj.weight", "transformer.h.{i}.mlp.c_proj.bias",
         "transformer.ln_f.weight", "transformer.ln_f.bias")
WTE = ORDER[0]
HEADER_SIZES = ("block_size", "vocab_size", "n_layer", "n_head", "n_embd")  # header[2:7]


class LlmcGPT2:
    """An llm.c GPT-2 checkpoint, opened and checked (header and file size), memory-mapped.

        checkpoint = LlmcGPT2(path)
        checkpoint.sizes               {vocab_size, block_size, n_layer, n_head, n_embd}
        checkpoint.copy_into(params)   params: {nanoGPT name: array to fill}
    """

    def __init__(self, path):
        self.path = Path(path)
        with open_regular_file(self.path, "llm.c checkpoint") as f:
            size = os.fstat(f.fileno()).st_size
            if size < HEADER_BYTES:
                self._fail(f"the file is {size} bytes, shorter than llm.c's {HEADER_BYTES}-byte header")
            header = [int(v) for v in np.frombuffer(f.read(32), dtype="<i4")]
            if header[0] != MAGIC:
                self._fail(f"magic number {header[0]}, not llm.c's GPT-2 checkpoint magic {MAGIC}")
            if header[1] not in STORAGE:
                self._fail(f"version {header[1]}; readable are {FLOAT32} (float32) and {BFLOAT16} (bfloat16)")
            self.version = header[1]
            self.sizes = dict(zip(HEADER_SIZES, header[2:7]))
            self.padded_vocab_size = header[7]
            bad = [f"{k} {v}" for k, v in self.sizes.items() if v < 1]
            if bad:
                self._fail(f"header sizes must be positive, got {', '.join(bad)}")
            if self.padded_vocab_size < self.sizes["vocab_size"]:
                self._fail(f"padded_vocab_size {self.padded_vocab_size} is smaller than vocab_size "
                           f"{self.sizes['vocab_size']}")
            if self.sizes["n_embd"] % self.sizes["n_head"]:
                self._fail(f"n_embd {self.sizes['n_embd']} is not a multiple of n_head {self.sizes['n_head']}")
            self.layout = file_layout(self.sizes, self.padded_vocab_size)
            storage = STORAGE[self.version]
            count = sum(n * math.prod(shape) for _, n, shape in self.layout)
            expected = HEADER_BYTES + count * storage.itemsize
            if size != expected:
                self._fail(f"the file is {size} bytes, but its header (version {self.version}, {self._describe()}) "
                           f"implies {expected}" + (": truncated" if size < expected else ""))
            # The map outlives the file object: it holds the file itself.
            self._data = np.memmap(f, dtype=storage, mode="r", offset=HEADER_BYTES, shape=(count,)).view(np.ndarray)

    def copy_into(self, params):
        """Fill {nanoGPT name: array} (nn.Linear layout) with the checkpoint's weights."""
        check_params(params, self.sizes, f"loading {self.path}")
        at = 0
        for template, n, shape in self.layout:
            size = n * math.prod(shape)
            block = self._data[at:at + size]
            block = (widen_bfloat16(block) if self.version == BFLOAT16 else block).reshape((n, *shape))
            at += size
            if template == WTE:
                block = block[:, :self.sizes["vocab_size"]]  # padding rows dropped
            for i in range(n):
                name = template.format(i=i)
                copy_finite(params[name], block[i], f"{self.path}: {name}")

    def _fail(self, message):
        raise ValueError(f"{self.path}: {message}")

    def _describe(self):
        return ", ".join(f"{k} {v}" for k, v in self.sizes.items()) + f", padded_vocab_size {self.padded_vocab_size}"


def file_layout(sizes, padded_vocab_size):
    """[(nanoGPT name or "{i}" template, how many stacked, shape of one)] in llm.c's file order."""
    shapes = gpt2_shapes({**sizes, "n_layer": 1})
    layout = []
    for template in ORDER:
        per_layer = "{i}" in template
        shape = shapes[template.format(i=0)]
        if template == WTE:
            shape = (padded_vocab_size, shape[1])
        layout.append((template, sizes["n_layer"] if per_layer else 1, shape))
    return layout


def padded_vocab(vocab_size):
    """llm.c's padded_vocab_size: vocab_size rounded up to a multiple of 128."""
    return -(-vocab_size // VOCAB_MULTIPLE) * VOCAB_MULTIPLE


def save_llmc(path, params, config):
    """Write params ({nanoGPT name: array}) and the model's config (a dict with nanoGPT's field
    names) as an llm.c version-3 (float32) checkpoint, atomically."""
    path = Path(path)
    what = f"llm.c checkpoint {path}"
    sizes = gpt2_sizes(config, what)
    check_params(params, sizes, what)
    Vp = padded_vocab(sizes["vocab_size"])
    header = np.zeros(HEADER_INTS, dtype="<i4")
    header[:8] = [MAGIC, FLOAT32, *(sizes[k] for k in HEADER_SIZES), Vp]
    with atomic_write(path) as f:
        f.write(header.data)
        for template, n, shape in file_layout(sizes, Vp):
            for i in range(n):
                f.write(np.ascontiguousarray(params[template.format(i=i)], dtype="<f4").data)
            if template == WTE:
                f.write(bytes(4 * (Vp - sizes["vocab_size"]) * shape[1]))  # zero padding rows
