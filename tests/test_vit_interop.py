"""The vision transformer against transformers' ViTForImageClassification: the same logits from the
same files, both ways, and pixels prepared by ViTImageProcessor as this model expects them."""
import numpy as np
import pytest

from transformer_jit.data.images import prepare_pixels
from transformer_jit.models.configs import IMAGE_MEAN, IMAGE_STD, ViTConfig
from transformer_jit.models.image_classification import vit_preprocessing
from transformer_jit.models.attention_maps import class_token_attention
from transformer_jit.models.vit import VisionTransformer

torch = pytest.importorskip("torch", reason="torch (bench extra) is not installed")
transformers = pytest.importorskip("transformers", reason="transformers (bench extra) is not installed")

pytestmark = pytest.mark.interop


def hf_forward(model, pixels, **options):
    with torch.no_grad():
        return model(pixel_values=torch.from_numpy(pixels), **options)


@pytest.mark.parametrize("channels,hidden_act,image_size", [(3, "gelu", [8, 12]), (1, "gelu_new", 8)])
def test_what_transformers_saves_loads_here_to_the_same_logits(tmp_path, rng, channels, hidden_act, image_size):
    config = transformers.ViTConfig(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=24,
                                    image_size=image_size, patch_size=4, num_channels=channels, num_labels=3,
                                    hidden_act=hidden_act, attn_implementation="eager")
    theirs = transformers.ViTForImageClassification(config).eval()
    for p in theirs.parameters():  # not ViT's init: zero biases and unit gains would hide a mix-up
        p.data.copy_(torch.as_tensor(rng.normal(0, 0.3, tuple(p.shape)), dtype=torch.float32))
    theirs.save_pretrained(tmp_path)
    ours = VisionTransformer.from_pretrained(tmp_path)
    H, W = ours.config.height_width
    pixels = rng.standard_normal((2, channels, H, W)).astype(np.float32)
    expected = hf_forward(theirs, pixels, output_attentions=True)
    np.testing.assert_allclose(ours.forward(pixels)[0], expected.logits.numpy(), rtol=1e-5, atol=1e-5)
    # the class token's attention over the patches, layer by layer
    maps = class_token_attention(ours, pixels[0])
    np.testing.assert_allclose(maps, np.stack([a[0, :, 0, 1:].numpy() for a in expected.attentions]), atol=1e-6)


def test_transformers_loads_what_is_saved_here_to_the_same_logits(tmp_path, rng):
    config = ViTConfig(image_size=8, patch_size=4, num_channels=3, n_classes=4, n_layer=2, n_head=2, n_embd=16,
                       label_names=["cat", "dog", "eel", "fox"])
    ours = VisionTransformer(config, seed=3)
    ours.params[:] = rng.normal(0, 0.3, ours.params.size)
    ours.save_pretrained(tmp_path)
    theirs = transformers.ViTForImageClassification.from_pretrained(tmp_path).eval()
    pixels = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    np.testing.assert_allclose(hf_forward(theirs, pixels).logits.numpy(), ours.forward(pixels)[0], rtol=1e-5, atol=1e-5)
    assert theirs.config.id2label == {0: "cat", 1: "dog", 2: "eel", 3: "fox"}


@pytest.mark.parametrize("channels, mean, std", [(3, None, None), (1, None, None),
                                                 (3, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
def test_transformers_image_processor_prepares_pixels_as_this_model_expects(tmp_path, rng, channels, mean, std):
    VisionTransformer(ViTConfig(image_size=8, patch_size=4, num_channels=channels, n_classes=2, n_layer=1, n_head=2,
                                n_embd=8, image_mean=mean, image_std=std)).save_pretrained(tmp_path)
    processor = transformers.ViTImageProcessor.from_pretrained(tmp_path)
    image = rng.integers(0, 256, (8, 8, channels), dtype=np.uint8)  # a grey image too has its channel axis
    pixels = processor(images=image, return_tensors="np")["pixel_values"]
    mean, std = (np.array(v or [default] * channels)[:, None, None] for v, default in ((mean, IMAGE_MEAN),
                                                                                       (std, IMAGE_STD)))
    np.testing.assert_allclose(pixels[0], (image.transpose(2, 0, 1) / 255 - mean) / std, atol=1e-5)
    loaded = VisionTransformer.from_pretrained(tmp_path)
    ours = prepare_pixels(image[None], vit_preprocessing(loaded.config))
    np.testing.assert_allclose(ours, pixels, atol=1e-5)
    larger = rng.integers(0, 256, (20, 16, channels), dtype=np.uint8)
    assert processor(images=larger, return_tensors="np")["pixel_values"].shape == (1, channels, 8, 8)  # resized
