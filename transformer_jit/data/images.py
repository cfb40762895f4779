"""Labelled images: uint8 pictures and their classes, train and val splits, and batches of float
pixels prepared as a vision transformer reads them.

    images = LabelledImages(pixels_u8, labels, names)           (N, H, W, C) uint8, (N,) int64
    train, val = images.split(0.3, seed=0)                      stratified: each class gives val its share
    data = ImageDataset(train, val, preprocessing, augment=2)   what the Trainer draws batches from
    pixels, labels = data.batch("train", 32, rng)               (B, C, H, W) float32, (B,) int64
    pixels = prepare_pixels(images.images, preprocessing)       every image, in order, never shifted

Pixels are prepared as Hugging Face's ViTImageProcessor does, from the same three numbers its
preprocessor_config.json holds:

    pixel = (value * rescale_factor - image_mean[c]) / image_std[c],   rescale_factor = 1 / 255

Augmentation (augment = A > 0) shifts each training image by (dy, dx), each drawn uniformly from
[-A, A] with the batch's own random generator, filling with black: a random crop of the image
padded by A pixels. The Trainer saves that generator, so a resumed run draws the same shifts.
"""
from dataclasses import dataclass

import numpy as np

from .. import kernels as K
from ..util.extras import require
from .file_tasks import stratified_split
from .sequences import _check_split, _sample

GRAYSCALE_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R 601 luma, as Pillow's convert("L")


def preprocessing(channels, mean, std):
    """{"image_mean", "image_std", "rescale_factor"} (preprocessor_config.json's names): the pixels
    divided by 255, then normalised with mean and std, each a number per channel or one for all."""
    def per_channel(v):
        return [float(x) for x in v] if isinstance(v, (list, tuple)) else [float(v)] * channels
    return {"image_mean": per_channel(mean), "image_std": per_channel(std), "rescale_factor": 1 / 255}


@dataclass
class LabelledImages:
    """images (N, H, W, C) uint8; labels (N,) int64 class numbers, or None for images to classify;
    names[i] is class i's name; sources[i] says where image i came from (a file, an index)."""
    images: np.ndarray
    labels: np.ndarray
    names: list
    sources: list

    def __post_init__(self):
        if self.images.ndim != 4 or self.images.dtype != np.uint8:
            raise ValueError(f"images must be uint8 (N, H, W, C), got {self.images.dtype} {self.images.shape}")
        if self.labels is not None and self.labels.shape != (len(self.images),):
            raise ValueError(f"{len(self.images)} images but labels of shape {self.labels.shape}")

    def __len__(self):
        return len(self.images)

    @property
    def shape(self):
        """(H, W, C) of every image."""
        return self.images.shape[1:]

    def take(self, idx):
        idx = np.asarray(idx, dtype=np.int64)
        return LabelledImages(self.images[idx], None if self.labels is None else self.labels[idx], self.names,
                              [self.sources[i] for i in idx])

    def split(self, fraction, seed, what="--data"):
        """(train, val): each class gives val round(fraction * its count) images, at least one when it
        has two or more (the draw seeded by `seed`); both keep the images' order."""
        rows = [(i, (None, int(label))) for i, label in enumerate(self.labels)]
        train, val = stratified_split(rows, fraction, seed, what)
        return self.take([i for i, _ in train]), self.take([i for i, _ in val])


def fit_images(images, size, channels, what):
    """LabelledImages with images of size = (H, W) pixels and `channels` channels: grayscale
    repeated into RGB, RGB to luma; resized (bilinear, through Pillow) only when the size differs."""
    x = images.images
    if x.shape[3] != channels:
        if channels == 3:
            x = np.repeat(x, 3, axis=3)
        else:
            luma = x.astype(np.float64) @ np.array(GRAYSCALE_WEIGHTS)
            x = np.clip(np.rint(luma), 0, 255).astype(np.uint8)[..., None]
    if x.shape[1:3] != tuple(size):
        x = np.stack([resize(image, size, what) for image in x])
    return LabelledImages(np.ascontiguousarray(x), images.labels, images.names, images.sources)


def resize(image, size, what):
    """One (H, W, C) uint8 image resized to size = (H', W'), bilinear (Pillow, the images extra)."""
    pil = require("PIL.Image", "images", f"resizing the images of {what}")
    mode = "L" if image.shape[2] == 1 else "RGB"
    resized = pil.fromarray(image[..., 0] if mode == "L" else image, mode).resize(size[::-1], pil.BILINEAR)
    return np.asarray(resized, dtype=np.uint8).reshape(*size, image.shape[2])


def prepare_pixels(images, preprocessing, idx=None, shifts=None, dtype=np.float32):
    """(B, C, H, W) pixels of images[idx] (default: all, in order), shifted by shifts (B, 2) if given."""
    N, H, W, C = images.shape
    idx = np.arange(N, dtype=np.int64) if idx is None else np.ascontiguousarray(idx, dtype=np.int64)
    if shifts is None:
        shifts = np.zeros((len(idx), 2), dtype=np.int64)
    std = np.asarray(preprocessing["image_std"], dtype=np.float64)
    mean = np.asarray(preprocessing["image_mean"], dtype=np.float64)
    scale = (preprocessing["rescale_factor"] / std).astype(dtype)
    offset = (-mean / std).astype(dtype)
    out = np.zeros((len(idx), C, H, W), dtype=dtype)  # finite even where a recorded call writes nothing
    K.pixels_from_images(out, np.ascontiguousarray(images), idx, np.ascontiguousarray(shifts, dtype=np.int64),
                         scale, offset)
    return out


class ImageDataset:
    """The "train" and "val" splits of labelled images, as the Trainer draws batches from them."""

    def __init__(self, train, val, preprocessing, augment=0):
        if train.shape != val.shape:
            raise ValueError(f"training images are {train.shape}, validation images {val.shape}")
        self._splits = {"train": train, "val": val}
        self.preprocessing, self.augment = preprocessing, augment

    def batch(self, split, batch_size, rng):
        """(pixels (B, C, H, W) float32, labels (B,) int64) of batch_size images drawn with `rng`
        (with replacement); training images shifted when augmenting."""
        _check_split(split, self._splits)
        images = self._splits[split]
        idx = _sample(len(images), split, batch_size, rng)
        shifts = None
        if self.augment and split == "train":
            shifts = rng.integers(-self.augment, self.augment + 1, size=(len(idx), 2))
        return prepare_pixels(images.images, self.preprocessing, idx, shifts), images.labels[idx]

    def examples(self, split):
        """The LabelledImages of a split: for evaluation."""
        _check_split(split, self._splits)
        return self._splits[split]

    def __len__(self):
        return sum(len(images) for images in self._splits.values())
