"""GPT-2 checkpoints of other projects: Hugging Face directories and llm.c files, loaded and saved.

A tiny random GPT-2 is written by the tests themselves in each project's layout (Hugging Face's
with the reference `safetensors` library, llm.c's from its file description) and must load to
the weights it was written from and to the logits of a NumPy GPT-2; saving then loading is
bit-exact; damaged files are refused by name. With transformers and torch installed (bench
extra), transformers loads what is saved here, and what it saves loads here, to the same logits.
"""
import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from reference_gpt2 import reference_logits
from transformer_jit import GPT, GPTConfig

st = pytest.importorskip("safetensors.numpy", reason="the reference library safetensors (test extra) is not installed")

TINY = dict(vocab_size=50, block_size=8, n_layer=2, n_head=2, n_embd=16)
CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
LLMC_MAGIC = 20240326


def random_weights(rng, config):
    """nanoGPT names and layouts, float32, larger than GPT-2's init so every weight matters."""
    return {name: rng.normal(0, 0.3, value.shape).astype(np.float32)
            for name, value in GPT(config).state_dict().items()}


def hf_config(config, **changes):
    """config.json as the published gpt2 repository has it (sizes replaced)."""
    c = {"activation_function": "gelu_new", "architectures": ["GPT2LMHeadModel"], "attn_pdrop": 0.1,
         "bos_token_id": 50256, "embd_pdrop": 0.1, "eos_token_id": 50256, "initializer_range": 0.02,
         "layer_norm_epsilon": 1e-05, "model_type": "gpt2", "n_ctx": config.block_size, "n_embd": config.n_embd,
         "n_head": config.n_head, "n_layer": config.n_layer, "n_positions": config.block_size, "resid_pdrop": 0.1,
         "summary_activation": None, "summary_first_dropout": 0.1, "summary_proj_to_labels": True,
         "summary_type": "cls_index", "summary_use_proj": True, "vocab_size": config.vocab_size}
    c.update(changes)
    return {k: v for k, v in c.items() if v is not DELETE}


DELETE = object()


def hf_tensors(weights, config, prefix="", head=False, dtype=np.float32):
    """Hugging Face's names and layouts: Conv1D weights (in, out), the causal-mask buffers of the
    published checkpoints, and optionally the tied head."""
    T = config.block_size
    tensors = {}
    for name, value in weights.items():
        bare = name.removeprefix("transformer.")
        tensors[prefix + bare] = (value.T if name.endswith(CONV1D) else value).astype(dtype)
    for i in range(config.n_layer):
        tensors[f"{prefix}h.{i}.attn.bias"] = np.tril(np.ones((T, T), np.float32))[None, None].astype(dtype)
        tensors[f"{prefix}h.{i}.attn.masked_bias"] = np.array(-1e4, dtype)
    if head:
        tensors["lm_head.weight"] = weights["transformer.wte.weight"].astype(dtype)
    return tensors


def write_hf(directory, config_json, tensors):
    """config_json: a dict, or the file's text as it is."""
    directory.mkdir(exist_ok=True)
    (directory / "config.json").write_text(config_json if isinstance(config_json, str) else json.dumps(config_json))
    st.save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, directory / "model.safetensors")
    return directory


def assert_loaded(model, weights, config, rng):
    """The model holds exactly `weights`, and its logits are GPT-2's."""
    assert model.config == config
    loaded = model.state_dict()
    assert sorted(loaded) == sorted(weights)
    for name, value in weights.items():
        np.testing.assert_array_equal(loaded[name], value, err_msg=name)
    idx = rng.integers(0, config.vocab_size, (2, config.block_size))
    expected = reference_logits({k: v.astype(np.float64) for k, v in weights.items()}, config, idx)
    np.testing.assert_allclose(model.forward(idx)[0], expected, rtol=1e-5, atol=1e-5)


# -- Hugging Face -----------------------------------------------------------------------------------
@pytest.mark.parametrize("prefix, head", [("", False), ("transformer.", True)], ids=["GPT2Model-names", "LMHead-names"])
def test_a_hugging_face_directory_loads_to_its_weights_and_gpt2_logits(tmp_path, rng, prefix, head):
    config = GPTConfig(**TINY)
    weights = random_weights(rng, config)
    directory = write_hf(tmp_path / "gpt2", hf_config(config), hf_tensors(weights, config, prefix, head))
    assert_loaded(GPT.from_pretrained(directory), weights, config, rng)


def test_float16_weights_load_as_float32(tmp_path, rng):
    config = GPTConfig(**TINY)
    weights = random_weights(rng, config)
    directory = write_hf(tmp_path / "gpt2", hf_config(config), hf_tensors(weights, config, dtype=np.float16))
    model = GPT.from_pretrained(directory)
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, weights[name].astype(np.float16).astype(np.float32), err_msg=name)


def test_save_pretrained_then_from_pretrained_is_bit_exact(tmp_path, rng):
    config = GPTConfig(**TINY, dropout=0.1)
    model = GPT(config, seed=3)
    model.save_pretrained(tmp_path / "out")
    loaded = GPT.from_pretrained(tmp_path / "out", dropout=0.1)
    assert loaded.config == config
    np.testing.assert_array_equal(loaded.params, model.params)
    # The files are Hugging Face's: GPT2LMHeadModel's names, Conv1D layouts, no separate head.
    tensors = st.load_file(tmp_path / "out" / "model.safetensors")
    assert set(tensors) == set(model.state_dict())
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(tensors[name], value.T if name.endswith(CONV1D) else value)
    saved = json.loads((tmp_path / "out" / "config.json").read_text())
    assert saved["model_type"] == "gpt2" and saved["architectures"] == ["GPT2LMHeadModel"]
    assert (saved["n_positions"], saved["n_embd"], saved["activation_function"]) == (8, 16, "gelu_new")
    assert (saved["resid_pdrop"], saved["embd_pdrop"]) == (0.1, 0.1) and saved["bos_token_id"] is None


def test_save_pretrained_of_a_gpt2_vocabulary_names_the_end_of_text_token(tmp_path):
    GPT(GPTConfig(**{**TINY, "vocab_size": 50257, "n_embd": 8})).save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["bos_token_id"] == saved["eos_token_id"] == 50256


@pytest.mark.parametrize("changes, message", [
    (dict(bias=False), "bias=True"),
    (dict(positional="sinusoidal"), "positional='learned'"),
])
def test_saving_refuses_what_gpt2_cannot_represent(tmp_path, changes, message):
    model = GPT(GPTConfig(**TINY, **changes))
    with pytest.raises(ValueError, match=message):
        model.save_pretrained(tmp_path / "hf")
    with pytest.raises(ValueError, match=message):
        model.save_llmc(tmp_path / "model.bin")
    assert not any(tmp_path.iterdir())


def pickle_that_touches(marker):
    """A PyTorch-style .bin whose unpickling would create `marker`: proof that it is never loaded."""
    class Payload:
        def __reduce__(self):
            return Path.touch, (marker,)
    return pickle.dumps(Payload())


# (case, changes to config.json or its whole text, change to the tensors, words the error must contain)
BAD_DIRECTORIES = [
    ("config.json not JSON", "{n_layer: 2", None, ["config.json", "not valid JSON"]),
    ("config.json a list", "[1, 2]", None, ["config.json", "JSON object"]),
    ("a size missing", dict(n_embd=DELETE), None, ["n_embd is missing"]),
    ("a size not an integer", dict(n_layer="2"), None, ["n_layer", "positive integer"]),
    ("a size zero", dict(n_head=0), None, ["n_head", "positive integer"]),
    ("another model", dict(model_type="gpt_neo"), None, ["model_type", "gpt_neo"]),
    ("another activation", dict(activation_function="relu"), None, ["activation_function", "relu"]),
    ("another epsilon", dict(layer_norm_epsilon=1e-6), None, ["layer_norm_epsilon", "1e-06"]),
    ("another MLP width", dict(n_inner=32), None, ["n_inner", "32"]),
    ("unscaled attention", dict(scale_attn_weights=False), None, ["scale_attn_weights"]),
    ("untied without a head", dict(tie_word_embeddings=False), None, ["tie_word_embeddings", "lm_head"]),
    ("config wider than the weights", dict(n_embd=32), None,
     ["do not match config.json", "wte.weight (50, 16) (expected (50, 32))"]),
    ("config deeper than the weights", dict(n_layer=3), None, ["config.json says n_layer 3", "tensors of 2 layers"]),
    ("a tensor missing", {}, lambda t: t.pop("ln_f.bias"), ["missing tensors [ln_f.bias]"]),
    ("an extra tensor", {}, lambda t: t.update({"h.0.attn.extra": np.zeros(3, np.float32)}),
     ["unexpected tensors [h.0.attn.extra]"]),
    ("a weight not transposed", {}, lambda t: t.update({"h.1.mlp.c_fc.weight": t["h.1.mlp.c_fc.weight"].T}),
     ["h.1.mlp.c_fc.weight (64, 16) (expected (16, 64))"]),
    ("a head that is not wte", {}, lambda t: t.update({"lm_head.weight": t["wte.weight"] + 1}),
     ["lm_head.weight differs from wte.weight"]),
    ("a tensor stored twice", {}, lambda t: t.update({"transformer.wpe.weight": t["wpe.weight"]}),
     ["transformer.wpe.weight", "twice"]),
    ("an integer tensor", {}, lambda t: t.update({"ln_f.bias": np.zeros(16, np.int64)}),
     ["not floating point", "ln_f.bias (I64)"]),
    ("a NaN", {}, lambda t: t.update({"h.0.ln_2.weight": np.full(16, np.nan, np.float32)}),
     ["h.0.ln_2.weight", "non-finite"]),
]


@pytest.mark.parametrize("case, config_change, tensor_change, words", BAD_DIRECTORIES,
                         ids=[b[0] for b in BAD_DIRECTORIES])
def test_bad_hugging_face_directories_are_refused_by_name(tmp_path, rng, case, config_change, tensor_change, words):
    config = GPTConfig(**TINY)
    tensors = hf_tensors(random_weights(rng, config), config)
    if tensor_change is not None:
        tensor_change(tensors)
    config_json = hf_config(config, **config_change) if isinstance(config_change, dict) else config_change
    directory = write_hf(tmp_path / "gpt2", config_json, tensors)
    with pytest.raises(ValueError) as e:
        GPT.from_pretrained(directory)
    for word in words:
        assert word in str(e.value), (word, str(e.value))


def test_a_pickle_is_refused_and_never_unpickled(tmp_path):
    config = GPTConfig(**TINY)
    directory = tmp_path / "gpt2"
    directory.mkdir()
    (directory / "config.json").write_text(json.dumps(hf_config(config)))
    marker = tmp_path / "unpickled"
    (directory / "pytorch_model.bin").write_bytes(pickle_that_touches(marker))
    with pytest.raises(ValueError) as e:
        GPT.from_pretrained(directory)
    assert "pytorch_model.bin" in str(e.value) and "model.safetensors" in str(e.value) and "pickle" in str(e.value)
    assert not marker.exists()


def test_missing_files_are_named(tmp_path, rng):
    config = GPTConfig(**TINY)
    directory = write_hf(tmp_path / "gpt2", hf_config(config), hf_tensors(random_weights(rng, config), config))
    (directory / "config.json").unlink()
    with pytest.raises(FileNotFoundError, match="has no config.json"):
        GPT.from_pretrained(directory)
    (directory / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="has no model.safetensors"):
        GPT.from_pretrained(directory)
    with pytest.raises(FileNotFoundError, match="not a directory"):
        GPT.from_pretrained(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="llm.c checkpoint not found"):
        GPT.from_llmc(tmp_path / "nowhere.bin")


# -- llm.c ------------------------------------------------------------------------------------------
# llm.c's parameter tensors in file order (train_gpt2.py write_tensors), by their suffix in nanoGPT's
# names; per-layer ones hold every layer's slice in turn.
LLMC_ORDER = ["wte.weight", "wpe.weight", "ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias",
              "attn.c_proj.weight", "attn.c_proj.bias", "ln_2.weight", "ln_2.bias", "mlp.c_fc.weight", "mlp.c_fc.bias",
              "mlp.c_proj.weight", "mlp.c_proj.bias", "ln_f.weight", "ln_f.bias"]


def llmc_bytes(weights, config, version=3, padded_vocab=128):
    """An llm.c checkpoint written from its description: version 3 float32, 5 bfloat16 (the top
    halves of the float32 bits)."""
    header = np.zeros(256, "<i4")
    header[:8] = [LLMC_MAGIC, version, config.block_size, config.vocab_size, config.n_layer, config.n_head,
                  config.n_embd, padded_vocab]
    parts = []
    for suffix in LLMC_ORDER:
        if suffix in ("wte.weight", "wpe.weight", "ln_f.weight", "ln_f.bias"):
            value = weights[f"transformer.{suffix}"]
            if suffix == "wte.weight":
                value = np.concatenate([value, np.zeros((padded_vocab - config.vocab_size, config.n_embd), np.float32)])
            parts.append(value)
        else:
            parts += [weights[f"transformer.h.{i}.{suffix}"] for i in range(config.n_layer)]
    data = np.concatenate([p.reshape(-1) for p in parts]).astype("<f4")
    if version == 5:
        data = (data.view("<u4") >> 16).astype("<u2")
    return header.tobytes() + data.tobytes()


def test_an_llmc_file_loads_to_its_weights_and_gpt2_logits(tmp_path, rng):
    config = GPTConfig(**TINY)
    weights = random_weights(rng, config)
    (tmp_path / "gpt2.bin").write_bytes(llmc_bytes(weights, config))
    assert_loaded(GPT.from_llmc(tmp_path / "gpt2.bin"), weights, config, rng)


def test_a_bfloat16_llmc_file_loads_as_float32(tmp_path, rng):
    config = GPTConfig(**TINY)
    weights = random_weights(rng, config)
    # Values with zero low halves are exact in bfloat16.
    weights = {k: (v.view(np.uint32) & np.uint32(0xFFFF0000)).view(np.float32) for k, v in weights.items()}
    (tmp_path / "gpt2.bin").write_bytes(llmc_bytes(weights, config, version=5))
    assert_loaded(GPT.from_llmc(tmp_path / "gpt2.bin"), weights, config, rng)


def test_save_llmc_writes_llmcs_file_and_loads_back_bit_exact(tmp_path, rng):
    config = GPTConfig(**TINY)
    model = GPT(config, seed=5)
    model.save_llmc(tmp_path / "model.bin")
    # Byte for byte what llm.c's own layout gives: padded vocabulary 128, padding rows zero.
    assert (tmp_path / "model.bin").read_bytes() == llmc_bytes(model.state_dict(), config)
    loaded = GPT.from_llmc(tmp_path / "model.bin")
    assert loaded.config == config
    np.testing.assert_array_equal(loaded.params, model.params)


def test_hugging_face_to_llmc_and_back_keeps_every_bit(tmp_path, rng):
    config = GPTConfig(**TINY)
    model = GPT(config, seed=7)
    model.save_pretrained(tmp_path / "hf")
    GPT.from_pretrained(tmp_path / "hf").save_llmc(tmp_path / "model.bin")
    np.testing.assert_array_equal(GPT.from_llmc(tmp_path / "model.bin").params, model.params)


def damage_header(index, value):
    def change(data):
        header = np.frombuffer(data[:1024], "<i4").copy()
        header[index] = value
        return header.tobytes() + data[1024:]
    return change


def with_nan(data):
    values = np.frombuffer(data, np.uint8).copy()
    values[1024 + 4 * 100:1024 + 4 * 101] = np.frombuffer(np.float32(np.nan).tobytes(), np.uint8)
    return values.tobytes()


BAD_LLMC = [
    ("shorter than the header", lambda d: d[:1000], ["1000 bytes", "header"]),
    ("wrong magic", damage_header(0, 20240327), ["magic number 20240327"]),
    ("old version", damage_header(1, 2), ["version 2"]),
    ("truncated", lambda d: d[:-4], ["truncated"]),
    ("extra bytes", lambda d: d + bytes(4), ["bytes, but its header"]),
    ("header larger than the data", damage_header(6, 32), ["n_embd 32", "truncated"]),
    ("padded vocabulary too small", damage_header(7, 10), ["padded_vocab_size 10"]),
    ("heads do not divide channels", damage_header(5, 3), ["n_embd 16", "n_head 3"]),
    ("no layers", damage_header(4, 0), ["n_layer 0"]),
    ("a NaN", with_nan, ["transformer.wte.weight", "non-finite"]),
]


@pytest.mark.parametrize("case, damage, words", BAD_LLMC, ids=[b[0] for b in BAD_LLMC])
def test_bad_llmc_files_are_refused_by_name(tmp_path, rng, case, damage, words):
    config = GPTConfig(**TINY)
    path = tmp_path / "gpt2.bin"
    path.write_bytes(damage(llmc_bytes(random_weights(rng, config), config)))
    with pytest.raises(ValueError) as e:
        GPT.from_llmc(path)
    for word in [str(path), *words]:
        assert word in str(e.value), (word, str(e.value))


# -- against transformers -------------------------------------------------------------------------
@pytest.fixture
def transformers_gpt2():
    pytest.importorskip("torch", reason="torch (bench extra) is not installed")
    transformers = pytest.importorskip("transformers", reason="transformers (bench extra) is not installed")
    return transformers


def hf_logits(hf_model, idx):
    import torch

    with torch.no_grad():
        return hf_model(torch.as_tensor(idx)).logits.numpy()


@pytest.mark.interop
def test_transformers_loads_what_is_saved_here_to_the_same_logits(tmp_path, rng, transformers_gpt2):
    config = GPTConfig(**TINY)
    model = GPT(config)
    model.load_state_dict(random_weights(rng, config))
    model.save_pretrained(tmp_path / "ours")
    theirs = transformers_gpt2.GPT2LMHeadModel.from_pretrained(tmp_path / "ours").eval()
    idx = rng.integers(0, config.vocab_size, (2, config.block_size))
    np.testing.assert_allclose(hf_logits(theirs, idx), model.forward(idx)[0], rtol=1e-5, atol=1e-5)


@pytest.mark.interop
def test_what_transformers_saves_loads_here_to_the_same_logits(tmp_path, rng, transformers_gpt2):
    import torch

    hf_config_ = transformers_gpt2.GPT2Config(vocab_size=50, n_positions=8, n_embd=16, n_layer=2, n_head=2,
                                              bos_token_id=0, eos_token_id=0)
    theirs = transformers_gpt2.GPT2LMHeadModel(hf_config_).eval()
    for p in theirs.parameters():  # not GPT-2's init: zero biases and unit gains would hide a mix-up
        p.data.copy_(torch.as_tensor(rng.normal(0, 0.3, tuple(p.shape)), dtype=torch.float32))
    theirs.save_pretrained(tmp_path / "theirs")
    ours = GPT.from_pretrained(tmp_path / "theirs")
    idx = rng.integers(0, 50, (2, 8))
    np.testing.assert_allclose(ours.forward(idx)[0], hf_logits(theirs, idx), rtol=1e-5, atol=1e-5)
