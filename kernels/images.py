"""Image batches: uint8 images to the float pixels a vision model reads, shifted if asked.

    out[b, c, y, x] = images[idx[b], y - dy[b], x - dx[b], c] * scale[c] + offset[c]     (B, C, H, W)
    a pixel shifted in from outside the image counts as 0, so it becomes offset[c]

With scale = 1 / (255 std) and offset = -mean / std, out = (pixel / 255 - mean) / std: Hugging
Face's rescale-then-normalize. One pass gathers the batch, moves channels first (NHWC -> NCHW,
the layout of `pixel_values`), shifts (the augmentation: a random crop of the image padded by
the largest shift) and normalises. No gradient flows into data, so there is no backward.
"""
from numba import prange

from ._jit import parallel_kernel


@parallel_kernel
def pixels_from_images(out, images, idx, shifts, scale, offset):
    """Write the normalised, shifted pixels of images[idx] into out (overwrites out).

    out     (B, C, H, W)  float, written
    images  (N, H, W, C)  uint8
    idx     (B,)          int64, which image each row of the batch is
    shifts  (B, 2)        int64, (dy, dx): the image moves down by dy and right by dx
    scale, offset (C,)    out's dtype
    Parallel over the batch: each thread writes only its own images.
    """
    B, C, H, W = out.shape
    dt = out.dtype.type
    for b in prange(B):
        n, dy, dx = idx[b], shifts[b, 0], shifts[b, 1]
        # the rows and columns that a source pixel lands on; the rest is padding
        y0, y1 = max(0, dy), min(H, H + dy)
        x0, x1 = max(0, dx), min(W, W + dx)
        for c in range(C):
            s, o = scale[c], offset[c]
            for y in range(H):
                for x in range(W):
                    out[b, c, y, x] = o
            for y in range(y0, y1):
                for x in range(x0, x1):
                    out[b, c, y, x] = dt(images[n, y - dy, x - dx, c]) * s + o
