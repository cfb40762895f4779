"""A vision transformer (ViT, Dosovitskiy et al. 2020): an image classified by a transformer encoder.

    pixels (B, CI, H, W) --cut into P x P patches, flattened, projected--> (B, NP, C)
    [class token; patches] + E_pos                                         (B, 1 + NP, C)
    encoder: n_layer pre-LN blocks, every patch attending to every patch, then LN
    logits = h[:, 0] W_clsᵀ + b_cls                                        (B, n_classes)
    loss   = mean over the batch of cross-entropy(softmax(logits), labels)

The patch projection is a linear layer over each patch's CI P P pixels: exactly a stride-P
convolution (nn/patches.py). The encoder is the stack behind every model of the package
(nn/stack.py), fed vectors instead of token ids. Pixels come as Hugging Face's `pixel_values`:
float32, channels first, each value v / 255 of channel c normalised as (v / 255 - mean[c]) / std[c],
the config's image_mean and image_std: 0.5 each unless given (IMAGE_MEAN, IMAGE_STD, as
ViTImageProcessor's defaults); a pretrained directory's preprocessor_config.json gives its own.
"""
import numpy as np

from ..formats.vit_huggingface import CONFIG, HuggingFaceViT, save_vit_pretrained
from ..nn.block import Style
from ..nn.classifier_head import ClassifierHead
from ..nn.model import Model
from ..nn.patches import ClassToken, PatchEmbedding, check_pixels
from ..nn.stack import TransformerEncoder
from ..util.config import ConfigError
from .configs import GELUS, ViTConfig

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
        self.head = ClassifierHead(self.store, "classifier", c.n_embd, c.n_classes)
        self.loss = self.head.loss
        self._build()

    @property
    def pixels_shape(self):
        """(CI, H, W) of one image."""
        return (self.config.num_channels, *self.config.height_width)

    def attention_layers(self):
        return self.encoder.attention_layers()

    def tokens_in(self, pixels):
        """B images make B (1 + NP) positions: the class token and the patches (not the pixels)."""
        return len(pixels) * (1 + self.config.n_patches)

    def activation_floats(self, batch_size):
        """Floats a training step keeps for batches of batch_size (train/memory.py): the encoder's
        over 1 + NP positions, and the patches."""
        NP = self.config.n_patches
        return self.encoder.activation_floats(batch_size * (1 + NP), 1 + NP) + \
            batch_size * NP * self.patch_embed.proj.in_features

    # -- forward and backward ----------------------------------------------------------------------
    def forward(self, pixels, labels=None):
        """pixels (B, CI, H, W) floats (normalised as the module docstring says); labels (B,) ints
        in [0, n_classes). Returns (logits (B, n_classes), mean cross-entropy or None)."""
        pixels = check_pixels(pixels, self.pixels_shape, self.dtype)
        ctx = self.context()
        x = self.patch_embed.forward(pixels, ctx)                          # (B, NP, C)
        h = self.encoder.forward(self.cls_token.forward(x, ctx), ctx)      # (B, 1 + NP, C)
        # The class token's final state, h[:, 0]: pooling over that one position.
        pool_mask = self.zeros("pool_mask", h.shape[:2], np.bool_)
        pool_mask[:, 0] = True
        return self.head.forward(h, pool_mask, labels, ctx)

    def backward(self):
        """Accumulate dloss/dparams into `grads` (call `zero_grad()` first, once per step)."""
        dh = self.head.backward("pixels")                                  # (B, 1 + NP, C)
        B, T, C = dh.shape
        dtokens = self.buffer("dtokens", (B, T, C), self.dtype)
        self.encoder.backward(dh, dtokens, accumulate=False)
        dpatches = self.buffer("dpatches", (B, T - 1, C), self.dtype)
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
        config.json and every tensor's name, shape and dtype are checked before memory for the
        model is asked for."""
        if np.dtype(dtype) not in (np.float32, np.float64):
            raise ValueError(f"dtype must be float32 or float64, got {np.dtype(dtype)}: the weights are floating point")
        checkpoint = HuggingFaceViT(directory)
        try:
            config = ViTConfig(**checkpoint.fields)
        except ConfigError as e:
            raise ValueError(f"{checkpoint.path / CONFIG}: {e}") from None
        checkpoint.check_tensors()
        model = cls.for_loading(config, dtype=dtype)
        checkpoint.copy_into({name: p.data for name, p in model.store.params.items()})  # in place, no copy
        return model

    def save_pretrained(self, directory):
        """Write a directory that transformers' ViTForImageClassification.from_pretrained loads
        (config.json, model.safetensors) and ViTImageProcessor.from_pretrained prepares images
        for as this model expects them (preprocessor_config.json)."""
        save_vit_pretrained(directory, self.state_dict(), self.config.to_dict())

