"""A vision transformer's input layers: patch embedding and the class token.

    pixels (B, CI, H, W) --patches--> (B, NP, CI P P) --Linear--> (B, NP, C)     PatchEmbedding
    (B, NP, C) --[class token in front]--> (B, 1 + NP, C)                       ClassToken

The linear layer over flattened patches is a stride-P convolution with P x P kernels: its weight
(C, CI P P) is the convolution's (C, CI, P, P) flattened (kernels/patches.py cuts the patches in
that order).
"""
import numpy as np

from .. import kernels as K
from .layers import Layer, Linear
from .parameters import normal


class PatchEmbedding(Layer):
    """Each P x P patch of each channel, flattened and projected to n_embd: (B, CI, H, W) -> (B, NP, C)."""

    def __init__(self, store, name, num_channels, patch_size, n_embd, std=0.02):
        super().__init__()
        self.patch_size = patch_size
        self.proj = Linear(store, name, num_channels * patch_size * patch_size, n_embd, std=std)

    def forward(self, pixels, ctx):
        """pixels (B, CI, H, W), C-contiguous, the parameters' dtype, H and W multiples of P."""
        B, CI, H, W = pixels.shape
        P = self.patch_size
        NP = (H // P) * (W // P)
        patches = self.buffer("patches", (B, NP, CI * P * P), pixels.dtype)  # kept: Linear's backward reads it
        K.patches_forward(patches, pixels, P)
        return self.proj.forward(patches.reshape(B * NP, CI * P * P), ctx).reshape(B, NP, -1)

    def backward(self, dout, dinp=None, accumulate=True):
        """dout (B, NP, C). dinp: None (the pixels need no gradient, as in training) or (B, CI, H, W)."""
        B, NP, C = dout.shape
        if dinp is None:
            self.proj.backward(dout.reshape(B * NP, C), None)
            return
        dpatches = self.scratch("dpatches", (B, NP, self.proj.in_features), dout.dtype, zero=False)
        self.proj.backward(dout.reshape(B * NP, C), dpatches.reshape(B * NP, -1), accumulate=False)
        K.patches_backward(dinp, dpatches, self.patch_size, accumulate)


class ClassToken(Layer):
    """A learned vector put in front of every sequence; the classifier reads its final state.
    (B, NP, C) -> (B, 1 + NP, C)."""

    def __init__(self, store, name, n_embd, std=0.02):
        super().__init__()
        self.weight = store.add(name, (n_embd,), True, normal(std))

    def forward(self, x, ctx):
        B, NP, C = x.shape
        out = self.buffer("out", (B, 1 + NP, C), x.dtype)
        K.class_token_forward(out, self.weight.data, x)
        return out

    def backward(self, dout, dinp, accumulate=True):
        K.class_token_backward(self.weight.grad, dinp, dout, accumulate)


def check_pixels(pixels, shape, dtype):
    """Require a float array (B, CI, H, W) with (CI, H, W) = shape, finite; returns it C-contiguous
    in `dtype` (a copy only when needed)."""
    if not isinstance(pixels, np.ndarray) or pixels.dtype.kind != "f":
        kind = pixels.dtype.name if isinstance(pixels, np.ndarray) else type(pixels).__name__
        raise TypeError(f"pixels must be a float array (B, CI, H, W), got {kind}")
    if pixels.ndim != 4 or pixels.shape[1:] != tuple(shape) or pixels.shape[0] == 0:
        raise ValueError(f"pixels must have shape (B, {', '.join(map(str, shape))}) with B >= 1, got {pixels.shape}")
    pixels = np.ascontiguousarray(pixels, dtype=dtype)
    if not np.isfinite(pixels).all():
        raise ValueError("pixels hold NaN or infinite values")
    return pixels
