"""The vision transformer: its kernels against NumPy, its gradients against finite differences, its
files (state dicts, Hugging Face directories) and its training through the Trainer."""
import json

import numpy as np
import pytest

from gradcheck import assert_grad_close, check_model_gradients, numerical_grad
from transformer_jit.formats import load_safetensors, save_safetensors
from transformer_jit.formats.vit_huggingface import CONFIG, PREPROCESSOR, WEIGHTS, save_vit_pretrained
from transformer_jit.kernels import class_token_backward, class_token_forward, patches_backward, patches_forward
from transformer_jit.models import MODELS
from transformer_jit.models.configs import ViTConfig
from transformer_jit.models.attention_maps import class_token_attention
from transformer_jit.models.vit import VisionTransformer
from transformer_jit.nn.context import Context
from transformer_jit.nn.layers import LayerNorm
from transformer_jit.nn.parameters import ParameterStore
from transformer_jit.nn.patches import PatchEmbedding
from transformer_jit.train.trainer import TrainConfig, Trainer
from transformer_jit.util.config import ConfigError

TINY = dict(image_size=8, patch_size=4, n_classes=3, n_layer=1, n_head=2, n_embd=8)


def reference_patches(pixels, P):
    """(B, CI, H, W) -> (B, NP, CI P P): a stride-P convolution's view of the image, in NumPy."""
    B, CI, H, W = pixels.shape
    grid = pixels.reshape(B, CI, H // P, P, W // P, P).transpose(0, 2, 4, 1, 3, 5)
    return grid.reshape(B, (H // P) * (W // P), CI * P * P)


# -- kernels -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape,P", [((2, 3, 8, 12), 4), ((1, 1, 6, 4), 2)])
def test_patches_match_numpy_and_their_backward_puts_each_value_back(rng, shape, P):
    pixels = rng.standard_normal(shape)
    NP, CPP = (shape[2] // P) * (shape[3] // P), shape[1] * P * P
    out = np.full((shape[0], NP, CPP), np.nan)
    patches_forward(out, pixels, P)
    np.testing.assert_array_equal(out, reference_patches(pixels, P))
    interpreted = np.full_like(out, np.nan)
    patches_forward.py_func(interpreted, pixels, P)
    np.testing.assert_array_equal(interpreted, out)
    # The forward is a permutation, so its backward is the inverse permutation.
    dout = rng.standard_normal(out.shape)
    written = np.full_like(pixels, np.nan)  # never read without accumulate
    patches_backward(written, dout, P, False)
    np.testing.assert_array_equal(reference_patches(written, P), dout)
    start = rng.standard_normal(shape)
    added = start.copy()
    patches_backward(added, dout, P, True)
    np.testing.assert_array_equal(added, start + written)


def test_class_token_kernels_match_numpy(rng):
    x, cls = rng.standard_normal((3, 4, 5)), rng.standard_normal(5)
    out = np.full((3, 5, 5), np.nan)
    class_token_forward(out, cls, x)
    np.testing.assert_array_equal(out, np.concatenate([np.broadcast_to(cls, (3, 1, 5)), x], axis=1))
    dout, dcls0 = rng.standard_normal(out.shape), rng.standard_normal(5)
    dcls, dx = dcls0.copy(), np.full_like(x, np.nan)
    class_token_backward(dcls, dx, dout, False)
    np.testing.assert_allclose(dcls, dcls0 + dout[:, 0].sum(axis=0), rtol=1e-14)
    np.testing.assert_array_equal(dx, dout[:, 1:])
    class_token_backward(dcls, dx, dout, True)
    np.testing.assert_array_equal(dx, 2 * dout[:, 1:])


# -- the model -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("channels,layers", [(1, 2), (3, 1)])
def test_whole_vit_gradients_match_finite_differences(rng, channels, layers):
    """Every parameter, with dropout on the patches, residual branches and attention probabilities."""
    config = ViTConfig(**{**TINY, "n_layer": layers}, num_channels=channels, dropout=0.1, attn_dropout=0.1)
    model = VisionTransformer(config, seed=1, dtype=np.float64)
    pixels = rng.standard_normal((2, channels, 8, 8))
    check_model_gradients(model, (pixels, np.array([0, 2])), min_tensors=len(model.state_dict()))


def test_patch_embedding_gives_the_pixels_gradient(rng):
    store = ParameterStore()
    layer = PatchEmbedding(store, "patch_embed", 3, 2, 5)
    store.build(np.float64, rng)
    pixels, R = rng.standard_normal((2, 3, 4, 6)), rng.standard_normal((2, 6, 5))
    ctx = Context(False, 0, 0, 0)

    def loss():
        return float(np.sum(layer.forward(pixels, ctx) * R))

    loss()
    dpixels = np.zeros_like(pixels)
    layer.backward(R, dpixels)
    assert_grad_close("pixels", dpixels, numerical_grad(loss, pixels))


def test_gelu_form_is_chosen_per_model(rng):
    """The same weights give other logits with the tanh GELU: the config's choice reaches the MLPs."""
    exact = VisionTransformer(ViTConfig(**TINY), seed=0, dtype=np.float64)
    approx = VisionTransformer(ViTConfig(**TINY, gelu="tanh"), seed=0, dtype=np.float64)
    exact.params[:] = approx.params[:] = rng.standard_normal(exact.params.size)
    pixels = rng.standard_normal((2, 3, 8, 8))
    gap = np.abs(exact.forward(pixels)[0] - approx.forward(pixels)[0]).max()
    assert 1e-6 < gap < 0.1, gap


def test_layer_norm_eps_reaches_every_layer_norm():
    model = VisionTransformer(ViTConfig(**{**TINY, "n_layer": 2}, layer_norm_eps=1e-3))
    eps = [layer.eps for layer in model.modules() if isinstance(layer, LayerNorm)]
    assert eps == [1e-3] * 5  # two per block and the final one


def test_float32_model_computes_in_float32(rng):
    model = VisionTransformer(ViTConfig(**TINY))
    logits, loss = model.forward(rng.standard_normal((2, 3, 8, 8)), np.array([1, 2]))  # float64 pixels converted
    assert logits.dtype == np.float32 and np.isfinite(loss)


def test_rectangular_images_and_registry(rng):
    config = ViTConfig(**{**TINY, "image_size": [4, 12]}, num_channels=1)
    model = MODELS["vit"].model_class(MODELS["vit"].config_class.from_dict(config.to_dict()))
    assert model.state_dict()["encoder.pos_embed.weight"].shape == (1 + 3, 8)
    assert model.predict(rng.standard_normal((5, 1, 4, 12)).astype(np.float32)).shape == (5,)


def test_state_dict_round_trip_and_names(rng):
    a = VisionTransformer(ViTConfig(**TINY), seed=0)
    b = VisionTransformer(ViTConfig(**TINY), seed=1)
    pixels = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    assert not np.array_equal(a.forward(pixels)[0], b.forward(pixels)[0])
    b.load_state_dict(a.state_dict())
    np.testing.assert_array_equal(a.forward(pixels)[0], b.forward(pixels)[0])
    assert list(a.state_dict())[:4] == ["patch_embed.weight", "patch_embed.bias", "cls_token",
                                        "encoder.pos_embed.weight"]
    assert "encoder.layers.0.attn.c_attn.weight" in a.state_dict() and "classifier.bias" in a.state_dict()


@pytest.mark.parametrize("bad,message", [
    (np.zeros((2, 3, 8, 8), np.int64), "pixels must be a float array"),
    (np.zeros((2, 1, 8, 8)), r"pixels must have shape \(B, 3, 8, 8\)"),
    (np.zeros((3, 8, 8)), "pixels must have shape"),
    (np.full((1, 3, 8, 8), np.nan), "NaN or infinite"),
])
def test_bad_pixels_are_refused(bad, message):
    with pytest.raises((TypeError, ValueError), match=message):
        VisionTransformer(ViTConfig(**TINY)).forward(bad)


@pytest.mark.parametrize("change,field", [
    (dict(image_size=10), "image_size"), (dict(image_size=[8, 8, 8]), "image_size"),
    (dict(num_channels=2), "num_channels"), (dict(gelu="relu"), "gelu"), (dict(attn_window=4), "attn_window"),
    (dict(label_names=["a", "a", "b"]), "label_names"), (dict(layer_norm_eps=0.0), "layer_norm_eps"),
    (dict(n_classes=1), "n_classes"),
])
def test_bad_configs_name_their_field(change, field):
    with pytest.raises(ConfigError, match=f"ViTConfig.{field} "):
        ViTConfig(**{**TINY, **change})


def test_class_token_attention_maps(rng):
    model = VisionTransformer(ViTConfig(**{**TINY, "n_layer": 2}), dtype=np.float64)
    pixels = rng.standard_normal((3, 8, 8))
    maps = class_token_attention(model, pixels)
    assert maps.shape == (2, 2, 4)  # (n_layer, NH, NP)
    probs = next(model.attention_layers())[1].probs  # the last forward's, layer 0: (1, NH, 5, 5)
    np.testing.assert_array_equal(maps[0], probs[0, :, 0, 1:])
    assert np.all(maps > 0) and np.all(maps.sum(axis=-1) < 1)  # the class token's weight on itself is left out
    with pytest.raises(ValueError, match="one image"):
        class_token_attention(model, rng.standard_normal((2, 3, 8, 8)))


# -- Hugging Face directories ------------------------------------------------------------------------

def test_save_and_load_pretrained_round_trip(tmp_path, rng):
    config = ViTConfig(**{**TINY, "image_size": [8, 4]}, num_channels=1, gelu="tanh", label_names=["x", "y", "z"],
                       layer_norm_eps=1e-6)
    model = VisionTransformer(config, seed=4)
    model.save_pretrained(tmp_path)
    loaded = VisionTransformer.from_pretrained(tmp_path)
    assert loaded.config == config
    pixels = rng.standard_normal((2, 1, 8, 4)).astype(np.float32)
    np.testing.assert_array_equal(loaded.forward(pixels)[0], model.forward(pixels)[0])
    hf = json.loads((tmp_path / CONFIG).read_text())
    assert (hf["hidden_act"], hf["intermediate_size"], hf["image_size"], hf["id2label"]) == \
        ("gelu_new", 32, [8, 4], {"0": "x", "1": "y", "2": "z"})
    prep = json.loads((tmp_path / PREPROCESSOR).read_text())
    assert (prep["size"], prep["rescale_factor"], prep["image_mean"], prep["image_std"]) == \
        ({"height": 8, "width": 4}, 1 / 255, [0.5], [0.5])


@pytest.mark.parametrize("settings, mean, std", [
    ({}, None, None),  # ViTImageProcessor's defaults, 0.5: the package's own
    ({"image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225]},
     [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),  # ImageNet's, as DeiT and others use
    ({"image_mean": 0.3, "image_std": 0.6}, [0.3] * 3, [0.6] * 3),
    ({"do_normalize": False}, [0.0] * 3, [1.0] * 3),
])
def test_a_pretrained_directorys_normalisation_is_read_kept_and_written(tmp_path, settings, mean, std):
    VisionTransformer(ViTConfig(**TINY)).save_pretrained(tmp_path)
    prep = json.loads((tmp_path / PREPROCESSOR).read_text())
    del prep["image_mean"], prep["image_std"]
    (tmp_path / PREPROCESSOR).write_text(json.dumps({**prep, **settings}))
    model = VisionTransformer.from_pretrained(tmp_path)
    assert (model.config.image_mean, model.config.image_std) == (mean, std)
    expected = (mean or [0.5] * 3, std or [0.5] * 3)
    assert model.config.normalisation == expected
    model.save_pretrained(tmp_path / "again")
    written = json.loads((tmp_path / "again" / PREPROCESSOR).read_text())
    assert (written["image_mean"], written["image_std"]) == expected


@pytest.mark.parametrize("settings, message", [
    ({"rescale_factor": 1.0}, "do_rescale and rescale_factor must divide the pixels by 255"),
    ({"do_rescale": False}, "do_rescale and rescale_factor must divide the pixels by 255"),
    ({"rescale_factor": "1/255"}, "do_rescale and rescale_factor must divide the pixels by 255"),
    ({"image_std": [0.5, 0.0, 0.5]}, r"image_std must be 3 finite numbers \(one per channel\), each > 0"),
    ({"image_mean": [0.5, 0.5]}, r"image_mean must be 3 finite numbers"),
    ({"image_mean": "imagenet"}, r"image_mean must be 3 finite numbers"),
])
def test_a_preprocessor_config_this_vit_cannot_follow_is_refused_by_name(tmp_path, settings, message):
    VisionTransformer(ViTConfig(**TINY)).save_pretrained(tmp_path)
    prep = json.loads((tmp_path / PREPROCESSOR).read_text())
    (tmp_path / PREPROCESSOR).write_text(json.dumps({**prep, **settings}))
    with pytest.raises(ValueError, match=f"preprocessor_config.json: {message}"):
        VisionTransformer.from_pretrained(tmp_path)


@pytest.mark.parametrize("field, value", [("image_mean", [0.5, 0.5]), ("image_std", [0.5, -1, 0.5]),
                                          ("image_mean", [float("nan")] * 3)])
def test_a_config_with_bad_normalisation_names_the_field(field, value):
    with pytest.raises(ConfigError, match=field):
        ViTConfig(**TINY, **{field: value})


def write_hf_directory(directory, **config_changes):
    """A valid tiny ViTForImageClassification directory, then config.json edited."""
    VisionTransformer(ViTConfig(**TINY)).save_pretrained(directory)
    path = directory / CONFIG
    path.write_text(json.dumps({**json.loads(path.read_text()), **config_changes}))
    return directory


@pytest.mark.parametrize("changes,message", [
    (dict(qkv_bias=False), "qkv_bias is false"),
    (dict(hidden_act="relu"), "hidden_act is 'relu'"),
    (dict(model_type="bert"), "model_type is 'bert'"),
    (dict(num_hidden_layers=1_000_000_000), "num_hidden_layers 1000000000, but model.safetensors holds tensors of 1"),
    (dict(problem_type="multi_label_classification"), "problem_type"),
    (dict(hidden_size=12), "shapes that do not match"),
    (dict(patch_size=3), "ViTConfig.image_size must be positive multiples of patch_size"),
    (dict(id2label={"0": "a", "5": "b"}), "id2label must map"),
])
def test_unsupported_hugging_face_configs_are_refused(tmp_path, changes, message):
    directory = write_hf_directory(tmp_path, **changes)
    with pytest.raises(ValueError, match=message) as caught:
        VisionTransformer.from_pretrained(directory)
    assert str(directory) in str(caught.value)


def test_hugging_face_files_without_a_classifier_or_weights_are_refused(tmp_path):
    write_hf_directory(tmp_path)
    tensors = load_safetensors(tmp_path / WEIGHTS)
    save_safetensors(tmp_path / WEIGHTS, {k: v for k, v in tensors.items() if not k.startswith("classifier.")})
    with pytest.raises(ValueError, match="has no classifier.weight: it is not an image classifier"):
        VisionTransformer.from_pretrained(tmp_path)
    (tmp_path / WEIGHTS).unlink()
    with pytest.raises(FileNotFoundError, match="has no model.safetensors"):
        VisionTransformer.from_pretrained(tmp_path)


def test_hugging_face_weights_that_are_not_finite_are_refused(tmp_path):
    write_hf_directory(tmp_path)
    tensors = load_safetensors(tmp_path / WEIGHTS)
    tensors["vit.layernorm.bias"] = np.full_like(tensors["vit.layernorm.bias"], np.inf)
    save_safetensors(tmp_path / WEIGHTS, tensors)
    with pytest.raises(ValueError, match="vit.layernorm.bias holds non-finite values"):
        VisionTransformer.from_pretrained(tmp_path)


def test_export_refuses_an_attention_window(tmp_path):
    model = VisionTransformer(ViTConfig(**TINY))
    with pytest.raises(ValueError, match="Hugging Face's ViT has no attention window"):
        save_vit_pretrained(tmp_path, model.state_dict(), {**model.config.to_dict(), "attn_window": 2})
    assert not (tmp_path / WEIGHTS).exists()


# -- training ------------------------------------------------------------------------------------------

class BrightQuadrant:
    """Which quadrant of a noisy 8 x 8 grey image is bright: classes 0..3. Each quadrant is a patch,
    so the answer is where the bright patch is, which only the position embeddings tell."""

    def batch(self, split, batch_size, rng):
        labels = rng.integers(0, 4, batch_size)
        pixels = rng.normal(0.0, 0.3, (batch_size, 1, 8, 8))
        for i, label in enumerate(labels):
            y, x = divmod(int(label), 2)
            pixels[i, 0, 4 * y:4 * y + 4, 4 * x:4 * x + 4] += 2.0
        return pixels.astype(np.float32), labels


def test_trainer_drives_the_vit_to_learn(tmp_path):
    model = VisionTransformer(ViTConfig(**{**TINY, "n_classes": 4, "n_embd": 16}, num_channels=1), seed=0)
    train = TrainConfig(batch_size=32, max_iters=100, lr=1e-2, warmup_iters=5, eval_interval=100, eval_iters=2,
                        out_dir=str(tmp_path), weight_decay=0.0)
    trainer = Trainer(model, BrightQuadrant(), train, kind="vit", log=lambda msg: None)
    start = trainer.evaluate()["val"]
    final = trainer.fit()["val_loss"]
    assert final < 0.1 * start, (start, final)
    pixels, labels = BrightQuadrant().batch("val", 200, np.random.default_rng(5))
    assert np.mean(model.predict(pixels) == labels) > 0.95
    assert (tmp_path / "best.npz").exists()


def test_training_counts_a_vits_positions_not_its_pixels(tmp_path):
    model = VisionTransformer(ViTConfig(**{**TINY, "n_classes": 4}, num_channels=1), seed=0)
    pixels = np.zeros((6, 1, 8, 8), np.float32)
    assert model.tokens_in(pixels) == 6 * (1 + 4)  # the class token and 4 patches of 4 x 4, not 6 x 64 pixels
    asked = []
    model.tokens_in = lambda inputs: asked.append(inputs.shape) or 1
    train = TrainConfig(batch_size=8, max_iters=1, eval_interval=1, eval_iters=1, out_dir=str(tmp_path))
    Trainer(model, BrightQuadrant(), train, kind="vit", log=lambda msg: None).fit()
    assert asked == [(8, 1, 8, 8)]


def test_a_resumed_vit_run_continues_exactly(tmp_path):
    """With dropout on: the checkpoint carries the weights, the optimizer and the masks' forward count."""
    def trainer(out_dir, model_seed=0, max_iters=12):
        model = VisionTransformer(ViTConfig(**{**TINY, "n_classes": 4}, num_channels=1, dropout=0.1,
                                            attn_dropout=0.1), seed=model_seed)
        train = TrainConfig(batch_size=8, max_iters=max_iters, lr=3e-3, warmup_iters=2, eval_interval=4, eval_iters=1,
                            out_dir=str(out_dir))
        return Trainer(model, BrightQuadrant(), train, kind="vit", log=lambda msg: None)

    straight = trainer(tmp_path / "straight")
    straight.fit()
    trainer(tmp_path / "resumed").fit(until=8)
    resumed = trainer(tmp_path / "resumed", model_seed=99)
    resumed.restore(tmp_path / "resumed" / "last.npz")
    resumed.fit()
    np.testing.assert_array_equal(resumed.model.params, straight.model.params)
