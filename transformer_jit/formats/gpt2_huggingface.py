"""Hugging Face GPT-2 directories: config.json and model.safetensors, read and written.

Hugging Face names GPT-2's tensors as nanoGPT does, under `transformer.` in a GPT2LMHeadModel's
files and without it in a GPT2Model's (the published checkpoints), and stores the four
attention and MLP weights as Conv1D (in, out): the transpose of nn.Linear's (out, in) used here
(see gpt2_layout). They are transposed at load and at save, with shape checks; nothing else moves.

The published files also hold each layer's causal mask (`h.{i}.attn.bias`, `h.{i}.attn.masked_bias`):
buffers, not parameters, ignored. `lm_head.weight`, when present, must equal wte: the head is tied.
A PyTorch pickle (pytorch_model.bin) is refused, never unpickled: loading a pickle can run code.
"""
import json
import re
from pathlib import Path

import numpy as np

from ..util.atomic import atomic_write
from ..util.json_file import read_json
from .gpt2_layout import LAYER_NORM_EPSILON, LINEAR_WEIGHTS, check_params, copy_finite, gpt2_shapes, gpt2_sizes
from .safetensors import SafetensorsFile, save_safetensors

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
HEAD = "lm_head.weight"
LAYER_NAME = re.compile(r"(?:transformer\.)?h\.(\d{1,9})\.")  # a layer's tensors: h.{i}.*
# config.json's names for the sizes, by nanoGPT's name.
SIZE_FIELDS = {"vocab_size": "vocab_size", "block_size": "n_positions", "n_layer": "n_layer",
               "n_head": "n_head", "n_embd": "n_embd"}
# Fields that change GPT-2's computation, with Hugging Face's defaults (used when config.json omits
# one), and the values this package's GPT computes with. Both names are the tanh GELU.
TANH_GELU = ("gelu_new", "gelu_pytorch_tanh")
DEFAULTS = {"activation_function": "gelu_new", "layer_norm_epsilon": 1e-5, "n_inner": None,
            "scale_attn_weights": True, "scale_attn_by_inverse_layer_idx": False, "add_cross_attention": False,
            "tie_word_embeddings": True}
FLOAT_CODES = ("F32", "F16", "BF16", "F64")
GPT2_EOT = 50256  # <|endoftext|>, GPT-2's only special token, in its 50257-token vocabulary


class HuggingFaceGPT2:
    """A Hugging Face GPT-2 directory, opened and checked against its config.json.

        checkpoint = HuggingFaceGPT2(directory)
        checkpoint.path                the directory
        checkpoint.sizes               {vocab_size, block_size, n_layer, n_head, n_embd}
        checkpoint.copy_into(params)   params: {nanoGPT name: array to fill}

    Every check (config fields, tensor names, shapes, dtypes, the tied head) happens on opening,
    before a model is built; copy_into copies each tensor from the memory-mapped file straight into
    its destination, so loading needs no second copy of the model.
    """

    def __init__(self, directory):
        self.path = directory = model_directory(directory, "GPT2LMHeadModel")
        weights = directory / WEIGHTS
        self.sizes, tied = read_config(directory / CONFIG)
        self.file = SafetensorsFile(weights)
        self._check_layer_count()
        self.sources = self._match_tensors()
        self._check_head(tied)

    def copy_into(self, params):
        """Fill {nanoGPT name: array} (nn.Linear layout) with the checkpoint's weights."""
        check_params(params, self.sizes, f"loading {self.file.path}")
        for name, key in self.sources.items():
            value = self.file[key]
            copy_finite(params[name], value.T if name.endswith(LINEAR_WEIGHTS) else value, f"{self.file.path}: {key}")

    def _check_layer_count(self):
        """config.json's n_layer against the layers the file holds, before anything is made per
        layer: a crafted n_layer of a billion is refused here, not after a billion loop turns."""
        layers = {int(m.group(1)) for m in map(LAYER_NAME.match, self.file.names) if m}
        if len(layers) != self.sizes["n_layer"]:
            raise ValueError(f"{self.file.path.parent / CONFIG} says n_layer {self.sizes['n_layer']}, but "
                             f"{self.file.path.name} holds tensors of {len(layers)} layers")

    def _match_tensors(self):
        """{nanoGPT name: name in the file}, refusing missing, unexpected, duplicate, mis-shaped
        or non-float tensors, each named."""
        expected = gpt2_shapes(self.sizes)
        buffers = {f"h.{i}.attn.{b}" for i in range(self.sizes["n_layer"]) for b in ("bias", "masked_bias")}
        sources, unexpected, problems = {}, [], []
        for key in self.file.names:
            bare = key.removeprefix("transformer.")
            if bare in buffers or key == HEAD:
                continue
            name = "transformer." + bare
            if name not in expected:
                unexpected.append(key)
            elif name in sources:
                problems.append(f"{name} is stored twice, as {sources[name]!r} and {key!r}")
            else:
                sources[name] = key
        missing = [name.removeprefix("transformer.") for name in expected if name not in sources]
        if missing:
            problems.append(f"missing tensors {some_of(missing)}")
        if unexpected:
            problems.append(f"unexpected tensors {some_of(unexpected)}")
        sources = {name: sources[name] for name in expected if name in sources}  # in the model's order
        wrong = [f"{key} {self.file.shape(key)} (expected {_stored_shape(name, expected[name])})"
                 for name, key in sources.items() if self.file.shape(key) != _stored_shape(name, expected[name])]
        if wrong:
            problems.append(f"shapes that do not match {CONFIG} ({_describe(self.sizes)}): {some_of(wrong)}")
        not_float = [f"{key} ({self.file.dtype(key)})" for key in sources.values()
                     if self.file.dtype(key) not in FLOAT_CODES]
        if not_float:
            problems.append(f"tensors that are not floating point {some_of(not_float)}")
        if problems:
            raise ValueError(f"{self.file.path}: " + "; ".join(problems))
        return sources

    def _check_head(self, tied):
        """The head must be wte itself: a separate lm_head.weight must equal it, bit for bit."""
        if HEAD not in self.file:
            if not tied:
                raise ValueError(f"{self.file.path}: {CONFIG} sets tie_word_embeddings false but there is no "
                                 f"{HEAD}; this GPT ties its head to wte")
            return
        head, wte = self.file[HEAD], self.file[self.sources["transformer.wte.weight"]]
        if head.shape != wte.shape or not np.array_equal(head, wte):
            raise ValueError(f"{self.file.path}: {HEAD} differs from wte.weight; this GPT ties its head to wte "
                             "and cannot hold a separate one")


def read_config(path):
    """(sizes, whether the head is tied) from a GPT-2 config.json, refusing, by field name, every
    setting this package's GPT does not compute."""
    config = read_model_config(path, "gpt2", "GPT-2")

    def refuse(field, message):
        raise ValueError(f"{path}: {field} {message}")

    sizes = {}
    for ours, field in SIZE_FIELDS.items():
        if field not in config:
            refuse(field, "is missing")
        value = config[field]
        if not (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
            refuse(field, f"must be a positive integer, got {value!r}")
        sizes[ours] = value
    if sizes["n_embd"] % sizes["n_head"]:
        refuse("n_embd", f"({sizes['n_embd']}) must be a multiple of n_head ({sizes['n_head']})")
    setting = {field: config.get(field, default) for field, default in DEFAULTS.items()}
    if setting["activation_function"] not in TANH_GELU:
        refuse("activation_function", f"is {setting['activation_function']!r}; this GPT has the tanh GELU "
                                      f"only ({' or '.join(TANH_GELU)})")
    if setting["layer_norm_epsilon"] != LAYER_NORM_EPSILON:
        refuse("layer_norm_epsilon", f"is {setting['layer_norm_epsilon']!r}; this GPT's layer norms use "
                                     f"{LAYER_NORM_EPSILON}")
    if setting["n_inner"] not in (None, 4 * sizes["n_embd"]):
        refuse("n_inner", f"is {setting['n_inner']!r}; this GPT's MLP is 4 * n_embd = {4 * sizes['n_embd']} wide")
    for field in ("scale_attn_weights", "scale_attn_by_inverse_layer_idx", "add_cross_attention"):
        if setting[field] != DEFAULTS[field]:
            refuse(field, f"is {setting[field]!r}; this GPT computes only GPT-2's {DEFAULTS[field]!r}")
    return sizes, setting["tie_word_embeddings"] is not False


def read_model_config(path, model_type, family):
    """A Hugging Face config.json as a dict, refusing a missing file, anything but a JSON object
    and another model_type (absent: taken as model_type); `family` names the models in the error."""
    if not path.exists():
        raise FileNotFoundError(f"{path.parent} has no {CONFIG}")
    config = read_json(path, "model config")
    if not isinstance(config, dict):
        raise ValueError(f"{path} must hold a JSON object, got {type(config).__name__}")
    if config.get("model_type", model_type) != model_type:
        raise ValueError(f"{path}: model_type is {config['model_type']!r}; only {family} ({model_type!r}) "
                         f"checkpoints load here")
    return config


def save_gpt2_pretrained(directory, params, config):
    """Write a Hugging Face GPT-2 directory that transformers.GPT2LMHeadModel.from_pretrained loads.

    params: {nanoGPT name: array}; config: the model's config as a dict with nanoGPT's field names
    (the sizes, dropout, attn_dropout, bias, positional). Writes model.safetensors (float32, GPT2LMHeadModel's
    names, Conv1D layout, the tied head left out as transformers does) and config.json, each
    atomically, creating the directory if needed.
    """
    directory = Path(directory)
    what = f"Hugging Face GPT-2 directory {directory}"
    sizes = gpt2_sizes(config, what)
    check_params(params, sizes, what)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {name: (value.T if name.endswith(LINEAR_WEIGHTS) else value).astype(np.float32, copy=False)
               for name, value in params.items()}
    save_safetensors(directory / WEIGHTS, tensors, metadata={"format": "pt"})
    with atomic_write(directory / CONFIG) as f:
        f.write((json.dumps(hf_config(sizes, config.get("dropout", 0.0), config.get("attn_dropout", 0.0)), indent=2)
                 + "\n").encode("utf-8"))


def hf_config(sizes, dropout, attn_dropout):
    """GPT2Config's fields for a model of these sizes. `dropout` applies to the embeddings and to
    each residual branch, as resid_pdrop and embd_pdrop do; `attn_dropout` to the attention
    probabilities, as attn_pdrop does."""
    config = {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2",
              **{field: sizes[ours] for ours, field in SIZE_FIELDS.items()},
              **DEFAULTS, "resid_pdrop": dropout, "embd_pdrop": dropout, "attn_pdrop": attn_dropout,
              "initializer_range": 0.02}
    # transformers assumes GPT-2's end-of-text id when these are absent, wrong for other vocabularies.
    eot = GPT2_EOT if sizes["vocab_size"] == GPT2_EOT + 1 else None
    config.update(bos_token_id=eot, eos_token_id=eot)
    return config


def model_directory(directory, model_class):
    """`directory` as a Path, once it is a directory holding model.safetensors; otherwise the error
    that says what is there instead (a sharded checkpoint, pickles only, or nothing). model_class:
    the transformers class whose save_pretrained writes the file."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory} is not a directory (a Hugging Face model directory holds "
                                f"{CONFIG} and {WEIGHTS})")
    if (directory / WEIGHTS).exists():
        return directory
    pickles = sorted(p.name for p in directory.iterdir() if p.suffix in (".bin", ".pt", ".pth", ".ckpt"))
    if (directory / f"{WEIGHTS}.index.json").is_file():
        raise ValueError(f"{directory} holds a sharded checkpoint ({WEIGHTS}.index.json); only a single "
                         f"{WEIGHTS} is supported")
    if pickles:
        raise ValueError(f"{directory} has no {WEIGHTS}, only {pickles}: PyTorch pickles, which are never "
                         f"unpickled here (loading a pickle can run arbitrary code). Use the {WEIGHTS} file from "
                         f"the model's repository, or convert with transformers: "
                         f"{model_class}.from_pretrained(dir).save_pretrained(dir) writes {WEIGHTS}")
    raise FileNotFoundError(f"{directory} has no {WEIGHTS}")


def _stored_shape(name, shape):
    """A tensor's shape in the file: Conv1D weights are stored (in, out)."""
    return shape[::-1] if name.endswith(LINEAR_WEIGHTS) else shape


def _describe(sizes):
    return ", ".join(f"{SIZE_FIELDS[k]} {v}" for k, v in sizes.items())


def some_of(items, limit=6):
    """A list for an error message: the first `limit` items and how many more."""
    shown = ", ".join(items[:limit])
    return f"[{shown}" + (f", ... {len(items) - limit} more]" if len(items) > limit else "]")
