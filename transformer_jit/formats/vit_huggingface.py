"""Hugging Face ViT directories (ViTForImageClassification): config.json, model.safetensors and
preprocessor_config.json, read and written.

The tensors map onto this package's vision transformer (models/vit.py) one for one, except:
    vit.embeddings.patch_embeddings.projection.weight  (C, CI, P, P), a stride-P convolution
        = patch_embed.weight (C, CI P P), the same numbers: the patches are flattened in that order
    vit.encoder.layer.{i}.attention.attention.{query, key, value}  three (C, C) Linear layers
        = encoder.layers.{i}.attn.c_attn (3C, C), stacked in that order, biases likewise
    vit.embeddings.cls_token (1, 1, C) and position_embeddings (1, 1 + NP, C)
        = cls_token (C,) and encoder.pos_embed.weight (1 + NP, C)
Every other weight is nn.Linear's or a layer norm's, stored as it is. A ViTModel's files (no
classifier: a feature extractor) and settings this model does not compute (no query/key/value
biases, another activation, multi-label heads) are refused by name. The pooler a ViTModel may
carry is not part of an image classifier and is ignored.
"""
import json
import math
import re
from pathlib import Path

import numpy as np

from ..util.atomic import atomic_write
from ..util.config import is_number, is_per_channel, per_channel_wanted
from ..util.json_file import read_json
from .gpt2_huggingface import FLOAT_CODES, model_directory, read_model_config, some_of
from .gpt2_layout import copy_finite
from .safetensors import SafetensorsFile, save_safetensors

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
PREPROCESSOR = "preprocessor_config.json"
DEFAULT_NORMALISATION = 0.5  # ViTImageProcessor's image_mean and image_std
CLASSIFIER = "classifier.weight"
LAYER_NAME = re.compile(r"vit\.encoder\.layer\.(\d{1,9})\.")
IGNORED = "vit.pooler."
# ViTConfig's fields by Hugging Face's names, and Hugging Face's defaults where config.json omits one.
FIELDS = {"hidden_size": "n_embd", "num_hidden_layers": "n_layer", "num_attention_heads": "n_head",
          "intermediate_size": "n_inner", "hidden_dropout_prob": "dropout",
          "attention_probs_dropout_prob": "attn_dropout", "layer_norm_eps": "layer_norm_eps",
          "image_size": "image_size", "patch_size": "patch_size", "num_channels": "num_channels"}
DEFAULTS = {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072,
            "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0, "layer_norm_eps": 1e-12,
            "image_size": 224, "patch_size": 16, "num_channels": 3}
SIZES = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "patch_size", "num_channels")
# hidden_act -> ViTConfig.gelu: "gelu" is the exact (erf) GELU, the other two its tanh approximation.
ACTIVATIONS = {"gelu": "erf", "gelu_new": "tanh", "gelu_pytorch_tanh": "tanh"}
HIDDEN_ACT = {"erf": "gelu", "tanh": "gelu_new"}
SINGLE_LABEL = (None, "single_label_classification")


class HuggingFaceViT:
    """A Hugging Face ViTForImageClassification directory, opened and checked.

        checkpoint = HuggingFaceViT(directory)
        checkpoint.fields              ViTConfig's fields, from config.json
        checkpoint.check_tensors()     every tensor's name, shape and dtype against those fields
        checkpoint.copy_into(params)   params: {this package's name: array to fill}

    config.json is read and the layer count checked on opening; check_tensors, once the fields have
    passed ViTConfig's checks and before memory for a model is asked for; copy_into then copies each
    tensor from the memory-mapped file.
    """

    def __init__(self, directory):
        self.path = directory = model_directory(directory, "ViTForImageClassification")
        self.fields = read_vit_config(directory / CONFIG)
        self.fields["image_mean"], self.fields["image_std"] = read_normalisation(directory / PREPROCESSOR,
                                                                                 self.fields["num_channels"])
        self.file = SafetensorsFile(directory / WEIGHTS)
        if CLASSIFIER not in self.file:
            raise ValueError(f"{self.file.path} has no {CLASSIFIER}: it is not an image classifier "
                             f"(ViTForImageClassification) but, say, a ViTModel feature extractor")
        layers = {int(m.group(1)) for m in map(LAYER_NAME.match, self.file.names) if m}
        if len(layers) != self.fields["n_layer"]:
            raise ValueError(f"{directory / CONFIG} says num_hidden_layers {self.fields['n_layer']}, but "
                             f"{WEIGHTS} holds tensors of {len(layers)} layers")

    def check_tensors(self):
        """Refuse missing, unexpected, mis-shaped and non-float tensors, each named."""
        expected = {key: shape for _, _, keys, shape in vit_layout(self.fields) for key in keys}
        present = [name for name in self.file.names if not name.startswith(IGNORED)]
        problems = []
        missing = [key for key in expected if key not in self.file]
        if missing:
            problems.append(f"missing tensors {some_of(missing)}")
        unexpected = [name for name in present if name not in expected]
        if unexpected:
            problems.append(f"unexpected tensors {some_of(unexpected)}")
        wrong = [f"{key} {self.file.shape(key)} (expected {shape})" for key, shape in expected.items()
                 if key in self.file and self.file.shape(key) != shape]
        if wrong:
            problems.append(f"shapes that do not match {CONFIG}: {some_of(wrong)}")
        not_float = [f"{key} ({self.file.dtype(key)})" for key in expected
                     if key in self.file and self.file.dtype(key) not in FLOAT_CODES]
        if not_float:
            problems.append(f"tensors that are not floating point {some_of(not_float)}")
        if problems:
            raise ValueError(f"{self.file.path}: " + "; ".join(problems))

    def copy_into(self, params):
        """Fill {this package's name: array} with the checkpoint's weights (checked by
        check_tensors), refusing non-finite values."""
        for ours, shape, keys, _ in vit_layout(self.fields):
            value = np.concatenate([self.file[key] for key in keys]).reshape(shape)
            copy_finite(params[ours], value, f"{self.file.path}: {', '.join(keys)}")


def vit_layout(fields):
    """[(this package's name, its shape, Hugging Face's names, their shape)] for a ViT of these
    ViTConfig fields. Several names (query, key, value) are stacked along the first axis into one
    tensor; otherwise the two hold the same numbers in another shape (a reshape, no transpose)."""
    C, L, CI, P = fields["n_embd"], fields["n_layer"], fields["num_channels"], fields["patch_size"]
    inner = fields["n_inner"] or 4 * C
    size = fields["image_size"]
    H, W = (size, size) if isinstance(size, int) else size
    NP = (H // P) * (W // P)
    layout = [("patch_embed.weight", (C, CI * P * P), ("vit.embeddings.patch_embeddings.projection.weight",),
               (C, CI, P, P)),
              ("patch_embed.bias", (C,), ("vit.embeddings.patch_embeddings.projection.bias",), (C,)),
              ("cls_token", (C,), ("vit.embeddings.cls_token",), (1, 1, C)),
              ("encoder.pos_embed.weight", (1 + NP, C), ("vit.embeddings.position_embeddings",), (1, 1 + NP, C))]
    for i in range(L):
        ours, theirs = f"encoder.layers.{i}.", f"vit.encoder.layer.{i}."
        linears = [("attn.c_attn", [f"attention.attention.{part}" for part in ("query", "key", "value")], C, C),
                   ("attn.c_proj", ["attention.output.dense"], C, C),
                   ("mlp.c_fc", ["intermediate.dense"], inner, C),
                   ("mlp.c_proj", ["output.dense"], C, inner)]
        for name, parts, out_features, in_features in linears:
            keys = tuple(theirs + part for part in parts)
            layout.append((f"{ours}{name}.weight", (len(keys) * out_features, in_features),
                           tuple(f"{k}.weight" for k in keys), (out_features, in_features)))
            layout.append((f"{ours}{name}.bias", (len(keys) * out_features,), tuple(f"{k}.bias" for k in keys),
                           (out_features,)))
        for name, part in (("attn_norm", "layernorm_before"), ("mlp_norm", "layernorm_after")):
            for p in ("weight", "bias"):
                layout.append((f"{ours}{name}.{p}", (C,), (f"{theirs}{part}.{p}",), (C,)))
    n_classes = fields["n_classes"]
    layout += [("encoder.norm.weight", (C,), ("vit.layernorm.weight",), (C,)),
               ("encoder.norm.bias", (C,), ("vit.layernorm.bias",), (C,)),
               ("classifier.weight", (n_classes, C), (CLASSIFIER,), (n_classes, C)),
               ("classifier.bias", (n_classes,), ("classifier.bias",), (n_classes,))]
    return layout


def read_vit_config(path):
    """ViTConfig's fields from a ViT config.json, refusing, by field name, every setting this
    package's vision transformer does not compute. (ViTConfig checks the values' ranges.)"""
    config = read_model_config(path, "vit", "ViT")

    def refuse(field, message):
        raise ValueError(f"{path}: {field} {message}")

    fields = {ours: config.get(theirs, DEFAULTS[theirs]) for theirs, ours in FIELDS.items()}
    for theirs in SIZES:
        value = fields[FIELDS[theirs]]
        if not (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
            refuse(theirs, f"must be a positive integer, got {value!r}")
    size = fields["image_size"]
    if not (_positive_int(size) or (isinstance(size, list) and len(size) == 2 and all(map(_positive_int, size)))):
        refuse("image_size", f"must be a positive integer or [height, width], got {size!r}")
    if fields["n_inner"] == 4 * fields["n_embd"]:
        fields["n_inner"] = 0  # ViTConfig's way of saying the usual width
    act = config.get("hidden_act", "gelu")
    if act not in ACTIVATIONS:
        refuse("hidden_act", f"is {act!r}; this ViT computes {' or '.join(map(repr, ACTIVATIONS))} only")
    fields["gelu"] = ACTIVATIONS[act]
    if config.get("qkv_bias", True) is not True:
        refuse("qkv_bias", "is false; this ViT's query, key and value projections have biases")
    if config.get("problem_type") not in SINGLE_LABEL:
        refuse("problem_type", f"is {config['problem_type']!r}; this ViT classifies with one label per image "
                               f"(single_label_classification)")
    fields["n_classes"], fields["label_names"] = _labels(config, refuse)
    return fields


def _labels(config, refuse):
    """(number of classes, their names or None) from id2label, or num_labels (Hugging Face's default 2)."""
    id2label = config.get("id2label")
    if id2label is None:
        n = config.get("num_labels", 2)
        if not _positive_int(n):
            refuse("num_labels", f"must be a positive integer, got {n!r}")
        return n, None
    if not (isinstance(id2label, dict) and sorted(id2label, key=str) == sorted(map(str, range(len(id2label))))
            and all(isinstance(v, str) for v in id2label.values())):
        refuse("id2label", "must map each class index 0, 1, ... to a name")
    names = [id2label[str(i)] for i in range(len(id2label))]
    return len(names), None if names == [f"LABEL_{i}" for i in range(len(names))] else names


def _positive_int(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def save_vit_pretrained(directory, params, config):
    """Write a Hugging Face ViT directory that transformers.ViTForImageClassification and
    ViTImageProcessor load.

    params: {this package's name: array}; config: ViTConfig's fields as a dict, with image_mean
    and image_std (a number per channel, or None for 0.5 each). Writes model.safetensors (float32),
    config.json and preprocessor_config.json, each atomically, creating the directory if needed.
    """
    directory = Path(directory)
    if config["attn_window"]:
        raise ValueError(f"cannot write {directory}: Hugging Face's ViT has no attention window "
                         f"(this model's attn_window is {config['attn_window']})")
    layout = vit_layout(config)
    names = {ours for ours, *_ in layout}
    if set(params) != names:
        raise ValueError(f"cannot write {directory}: the parameters are not this ViT's "
                         f"(missing {sorted(names - set(params))}, unexpected {sorted(set(params) - names)})")
    tensors = {}
    for ours, shape, keys, their_shape in layout:
        value = np.asarray(params[ours], dtype=np.float32)
        if value.shape != shape:
            raise ValueError(f"cannot write {directory}: {ours} is {value.shape}, expected {shape}")
        for key, part in zip(keys, np.split(value, len(keys))):
            tensors[key] = part.reshape(their_shape)
    directory.mkdir(parents=True, exist_ok=True)
    save_safetensors(directory / WEIGHTS, tensors, metadata={"format": "pt"})
    _write_json(directory / CONFIG, hf_vit_config(config))
    _write_json(directory / PREPROCESSOR, preprocessor_config(config))


def hf_vit_config(config):
    """ViTConfig's (transformers') fields for a model of these ViTConfig (this package's) fields."""
    names = config["label_names"] or [f"LABEL_{i}" for i in range(config["n_classes"])]
    hf = {"architectures": ["ViTForImageClassification"], "model_type": "vit",
          **{theirs: config[ours] for theirs, ours in FIELDS.items()},
          "intermediate_size": config["n_inner"] or 4 * config["n_embd"],
          "hidden_act": HIDDEN_ACT[config["gelu"]], "qkv_bias": True, "initializer_range": 0.02,
          "encoder_stride": config["patch_size"],
          "id2label": {str(i): name for i, name in enumerate(names)},
          "label2id": {name: i for i, name in enumerate(names)}}
    return hf


def preprocessor_config(config):
    """ViTImageProcessor's settings that give this model's pixels: resized to the model's size,
    divided by 255, then normalised with the config's image_mean and image_std."""
    size = config["image_size"]
    H, W = (size, size) if isinstance(size, int) else size
    channels = config["num_channels"]
    return {"image_processor_type": "ViTImageProcessor", "do_resize": True, "size": {"height": H, "width": W},
            "resample": 2, "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True,
            "image_mean": config.get("image_mean") or [DEFAULT_NORMALISATION] * channels,
            "image_std": config.get("image_std") or [DEFAULT_NORMALISATION] * channels}


def read_normalisation(path, channels):
    """(image_mean, image_std) from a preprocessor_config.json, each a number per channel, or None
    where the file has none or ViTImageProcessor's default (0.5, this package's too); settings that
    prepare pixels otherwise than dividing by 255 and normalising are refused by name."""
    if not path.exists():
        return None, None
    settings = read_json(path, "a preprocessor config")
    if not isinstance(settings, dict):
        raise ValueError(f"{path} must hold a JSON object, got {type(settings).__name__}")
    rescale, factor = settings.get("do_rescale", True), settings.get("rescale_factor", 1 / 255)
    if rescale is not True or not (type(factor) in (int, float) and math.isclose(factor, 1 / 255, rel_tol=1e-6)):
        raise ValueError(f"{path}: do_rescale and rescale_factor must divide the pixels by 255 (do_rescale "
                         f"{rescale!r}, rescale_factor {factor!r})")
    if settings.get("do_normalize", True) is not True:
        return [0.0] * channels, [1.0] * channels
    values = []
    for field in ("image_mean", "image_std"):
        value = settings.get(field, DEFAULT_NORMALISATION)
        value = [value] * channels if is_number(value) else value  # one number for every channel
        positive = field == "image_std"
        if not is_per_channel(value, channels, positive):
            raise ValueError(f"{path}: {field} must be {per_channel_wanted(channels, positive)}, got {value!r}")
        value = [float(v) for v in value]
        values.append(None if value == [DEFAULT_NORMALISATION] * channels else value)
    return tuple(values)


def _write_json(path, value):
    with atomic_write(path) as f:
        f.write((json.dumps(value, indent=2) + "\n").encode("utf-8"))
