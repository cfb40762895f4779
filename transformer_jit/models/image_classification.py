"""Running a vision transformer over images: the pixels prepared as the model was trained on
them, in batches, dropout off.

    preprocessing = vit_preprocessing(model.config)      rescale 1/255, then the model's mean and std
    predictions = classify_images(model, images)         images (N, H, W, C) uint8 -> (N,) int64 classes
"""
import numpy as np

from ..data.images import prepare_pixels, preprocessing
from ..data.sequences import in_batches


def vit_preprocessing(config):
    """How a ViT of this config wants its pixels: preprocessor_config.json's numbers."""
    return preprocessing(config.num_channels, *config.normalisation)


def classify_images(model, images, batch_size=256, progress=False):
    """The predicted class of each image, (N,) int64. images: (N, H, W, C) uint8 of the model's size."""
    if len(images) == 0:
        raise ValueError("nothing to classify: no images")
    prep = vit_preprocessing(model.config)
    predictions = [model.predict(prepare_pixels(chunk, prep))
                   for chunk in in_batches(images, batch_size, "classifying", progress)]
    return np.concatenate(predictions)
