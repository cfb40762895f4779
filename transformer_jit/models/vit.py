"""A vision transformer (ViT, Dosovitskiy et al. 2020): an image classified by a transformer encoder.

    pixels (B, CI, H, W) --cut into P x P patches, flattened, projected--> (B, NP, C)
    [class token; patches] + E_pos                                         (B, 1 + NP, C)
    encoder: n_layer pre-LN blocks, every patch attending to every patch, then LN
    logits = h[:, 0] W_clsᵀ + b_cls                                        (B, n_classes)
    loss   = mean over the batch of cross-entropy(softmax(logits), labels)

The patch projection is a linear layer over each patch's CI P P pixels: exactly a stride-P
convolution (nn/patches.py). The encoder is the stack behind every model of the package
(nn/stack.py), fed vectors instead of token ids. Pixels come as Hugging Face's `pixel_values`:
float32, channels first, each value v / 255 normalised as (v / 255 - IMAGE_MEAN) / IMAGE_STD.
"""
import numpy as np

from .. import kernels as K
from ..formats.vit_huggingface import CONFIG, HuggingFaceViT, save_vit_pretrained
from ..nn.block import Style
from ..nn.checks import check_labels
from ..nn.layers import Linear
from ..nn.loss import CrossEntropy
from ..nn.model import Model
from ..nn.patches import ClassToken, PatchEmbedding, check_pixels
from ..nn.stack import TransformerEncoder
from ..util.config import ConfigError
from .configs import GELUS, ViTConfig

NO_IGNORE = -1  # every label counts in the classification loss
# How pixels are normalised, per channel (Hugging Face ViTImageProcessor's defaults): [0, 255] -> [-1, 1].
IMAGE_MEAN = 0.5
IMAGE_STD = 0.5
# State-dict names that read like the paper's parts, GPT-2's initial values (weights N(0, 0.02²)).
VIT = Style({"pos": "pos_embed", "layers": "layers", "norm": "norm", "ln_1": "attn_norm", "attn": "attn",
             "ln_2": "mlp_norm", "mlp": "mlp"}, init="gpt2", scaled_embeddings=False)


class VisionTransformer(Model):
    def __init__(self, config, seed=0, dtype=np.float32, allocate=True):
        if not isinstance(config, ViTConfig):
            raise TypeError(f"VisionTransformer needs a ViTConfig, got {type(config).__name__}")
        super().__init__(config, seed, dtype, allocate)
        c = config
        self.patch_embed = PatchEmbedding(self.store, "patch_embed", c.num_channels, c.patch_size, c.n_embd)
        self.cls_token = ClassToken(self.store, "cls_token", c.n_embd)
        self.encoder = TransformerEncoder(self.store, "encoder", None, 1 + c.n_patches, c.n_layer, c.n_head, c.n_embd,
                                          style=VIT, n_inner=c.n_inner, dropout=c.dropout, positional="learned",
                                          activation=GELUS[c.gelu], attn_dropout=c.attn_dropout,
                                          norm_eps=c.layer_norm_eps)
        self.classifier = Linear(self.store, "classifier", c.n_embd, c.n_classes)
        self.loss = CrossEntropy(NO_IGNORE, 0.0)
        self._build()
        self._labels = None

    @property
    def pixels_shape(self):
        """(CI, H, W) of one image."""
        return (self.config.num_channels, *self.config.height_width)

    def attention_layers(self):
        return self.encoder.attention_layers()

    def activation_floats(self, batch_size):
        """Floats a training step keeps for batches of batch_size (train/memory.py): the encoder's
        over 1 + NP positions, and the patches."""
        c = self.config
        T = 1 + c.n_patches
        return self.encoder.activation_floats(batch_size * T, T) + batch_size * c.n_patches * self.patch_embed.proj.in_features

    # -- forward and backward ----------------------------------------------------------------------
    def forward(self, pixels, labels=None):
        """pixels (B, CI, H, W) floats (normalised as the module docstring says); labels (B,) ints
        in [0, n_classes). Returns (logits (B, n_classes), mean cross-entropy or None)."""
        c = self.config
        pixels = check_pixels(pixels, self.pixels_shape, self.dtype)
        B = pixels.shape[0]
        ctx = self.context()
        x = self.patch_embed.forward(pixels, ctx)                          # (B, NP, C)
        h = self.encoder.forward(self.cls_token.forward(x, ctx), ctx)      # (B, 1 + NP, C)
        # The class token's final state, h[:, 0]: mean pooling over that one position.
        self._pool_mask = self.zeros("pool_mask", h.shape[:2], np.bool_)
        self._pool_mask[:, 0] = True
        pooled = self.buffer("pooled", (B, c.n_embd), self.dtype)
        K.mean_pool_forward(pooled, h, self._pool_mask)
        logits = self.classifier.forward(pooled, ctx)
        self._labels = None
        if labels is None:
            return logits, None
        self._labels = check_labels(labels, B, c.n_classes)
        return logits, self.loss.forward(logits, self._labels)

    def backward(self):
        """Accumulate dloss/dparams into `grads` (call `zero_grad()` first, once per step)."""
        if self._labels is None:
            raise RuntimeError("backward() needs a forward(pixels, labels) immediately before it")
        c = self.config
        B, T = self._pool_mask.shape
        dpooled = self.zeros("dpooled", (B, c.n_embd), self.dtype)
        self.classifier.backward(self.loss.backward(), dpooled)
        dh = self.zeros("dh", (B, T, c.n_embd), self.dtype)  # mean_pool_backward accumulates
        K.mean_pool_backward(dh, dpooled, self._pool_mask)
        dtokens = self.buffer("dtokens", (B, T, c.n_embd), self.dtype)
        self.encoder.backward(dh, dtokens, accumulate=False)
        dpatches = self.buffer("dpatches", (B, T - 1, c.n_embd), self.dtype)
        self.cls_token.backward(dtokens, dpatches, accumulate=False)
        self.patch_embed.backward(dpatches)  # the pixels need no gradient

    # -- inference ---------------------------------------------------------------------------------
    def predict(self, pixels):
        """The most likely class of each image, (B,) int64, dropout off."""
        with self.evaluating():
            logits, _ = self.forward(pixels)
        return np.argmax(logits, axis=1)

    # -- Hugging Face ------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, directory, dtype=np.float32):
        """A model with the weights of a Hugging Face ViTForImageClassification directory
        (config.json, model.safetensors), its label names from id2label (None if the defaults).
        Everything is checked before memory for the model is asked for."""
        if np.dtype(dtype) not in (np.float32, np.float64):
            raise ValueError(f"dtype must be float32 or float64, got {np.dtype(dtype)}: the weights are floating point")
        checkpoint = HuggingFaceViT(directory)
        try:
            config = ViTConfig(**checkpoint.fields)
        except ConfigError as e:
            raise ValueError(f"{checkpoint.path / CONFIG}: {e}") from None
        model = cls.for_loading(config, dtype=dtype)
        checkpoint.copy_into({name: p.data for name, p in model.store.params.items()})  # in place, no copy
        return model

    def save_pretrained(self, directory):
        """Write a directory that transformers' ViTForImageClassification.from_pretrained loads
        (config.json, model.safetensors) and ViTImageProcessor.from_pretrained prepares images
        for as this model expects them (preprocessor_config.json)."""
        save_vit_pretrained(directory, self.state_dict(), self.config.to_dict(), IMAGE_MEAN, IMAGE_STD)


def class_token_attention(model, pixels):
    """The class token's attention over the patches for one image, in every layer:
    (n_layer, NH, NP) float64, row-major over the grid of patches (reshape the last axis to
    (H / P, W / P) for a picture). pixels: (CI, H, W) or (1, CI, H, W). The class token's weight
    on itself is left out, so a row sums to 1 minus it."""
    pixels = np.asarray(pixels)
    if pixels.ndim == 3:
        pixels = pixels[None]
    if pixels.ndim != 4 or pixels.shape[0] != 1:
        raise ValueError(f"class_token_attention takes one image (CI, H, W), got shape {pixels.shape}")
    maps = model.attention_maps(pixels)
    return np.stack([probs[0, :, 0, 1:] for probs in maps.values()]).astype(np.float64)
