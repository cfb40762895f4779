"""A vision transformer's input: the image cut into patches, and the class token put in front.

Shapes, besides the legend of kernels/__init__.py: CI image channels (1 or 3), H and W the image's
height and width, P the patch side (dividing H and W), NP = (H / P)(W / P) patches, CPP = CI P P
numbers per patch.

Cutting into patches is a reordering: patch n = gy (W / P) + gx (row-major over the grid of
patches) holds pixels[b, ci, gy P + i, gx P + j] at column ci P P + i P + j, the order in which a
stride-P convolution's weight (C, CI, P, P) flattens to (C, CPP). So a linear layer over the
patches with that flattened weight is exactly the convolution, as ViT's patch embedding is.
"""
from numba import prange

from ._jit import parallel_kernel


@parallel_kernel
def patches_forward(out, pixels, patch):
    """out[b, n, :] = the pixels of patch n of image b, flattened (overwrites out).

    out    (B, NP, CPP)   written
    pixels (B, CI, H, W)  H and W multiples of `patch`
    patch  P
    out and pixels C-contiguous, one float dtype. Parallel over images and patches.
    """
    B, CI, H, W = pixels.shape
    gw = W // patch
    n_patches = (H // patch) * gw
    for bn in prange(B * n_patches):
        b, n = bn // n_patches, bn % n_patches
        y0, x0 = (n // gw) * patch, (n % gw) * patch
        col = 0
        for ci in range(CI):
            for i in range(patch):
                for j in range(patch):
                    out[b, n, col] = pixels[b, ci, y0 + i, x0 + j]
                    col += 1


@parallel_kernel
def patches_backward(dpixels, dout, patch, accumulate):
    """dpixels += dout put back in place, or = when not `accumulate`.

    dpixels (B, CI, H, W)
    dout    (B, NP, CPP)  upstream gradient
    patch   P
    Forward: out[b, n, col] = pixels[b, ci, y, x], one output per pixel (the patches do not
    overlap), so the Jacobian is a permutation and dL/dpixels[b, ci, y, x] = dL/dout[b, n, col]:
    no two patches write one pixel, and the images and patches run in parallel.
    """
    B, CI, H, W = dpixels.shape
    gw = W // patch
    n_patches = (H // patch) * gw
    for bn in prange(B * n_patches):
        b, n = bn // n_patches, bn % n_patches
        y0, x0 = (n // gw) * patch, (n % gw) * patch
        col = 0
        for ci in range(CI):
            for i in range(patch):
                for j in range(patch):
                    g = dout[b, n, col]
                    dpixels[b, ci, y0 + i, x0 + j] = dpixels[b, ci, y0 + i, x0 + j] + g if accumulate else g
                    col += 1


@parallel_kernel
def class_token_forward(out, cls, x):
    """out[b, 0] = cls, out[b, 1 + n] = x[b, n]: the learned class token in front of each sequence.

    out (B, 1 + NP, C)  written
    cls (C,)
    x   (B, NP, C)
    All C-contiguous, one float dtype. Parallel over the batch.
    """
    B, NP, C = x.shape
    for b in prange(B):
        for c in range(C):
            out[b, 0, c] = cls[c]
        for n in range(NP):
            for c in range(C):
                out[b, 1 + n, c] = x[b, n, c]


@parallel_kernel
def class_token_backward(dcls, dx, dout, accumulate):
    """dcls += sum over b of dout[b, 0]; dx += dout[:, 1:], or = when not `accumulate`.

    dcls (C,)          accumulates: the one token is used by every sequence, so its gradient is
                       the sum of theirs
    dx   (B, NP, C)
    dout (B, 1 + NP, C) upstream gradient
    Parallel over channels for dcls (each thread sums its channels over the batch, in batch
    order, the same at every thread count), then over the batch for dx.
    """
    B, NP, C = dx.shape
    for c in prange(C):
        total = dcls[c]
        for b in range(B):
            total += dout[b, 0, c]
        dcls[c] = total
    for b in prange(B):
        for n in range(NP):
            for c in range(C):
                g = dout[b, 1 + n, c]
                dx[b, n, c] = dx[b, n, c] + g if accumulate else g
