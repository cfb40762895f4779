"""The vision transformer's data: a generated task, scikit-learn's digits, or the user's images,
each as a train/val ImageDataset and the split scored at the end.

    task = image_task({"dataset": "marks", "n_train": 20000, "n_test": 1000, "seed": 0, ...}, mean=0.5, std=0.5)
    task.dataset.batch("train", 32, rng), task.test (LabelledImages), task.names

marks (generated, no download): 16 x 16 gray images holding two identical marks (a plus or an x,
3 x 3) on a noisy background; the class is how the second lies from the first: "horizontal" (the
same row, give or take one pixel, at least 4 columns apart), "vertical" (the same for columns) or
"diagonal" (at least 4 rows and 4 columns apart, as many rows as columns give or take one). The
marks are identical, so a model that adds up evidence pixel by pixel (a linear classifier) sees
only where marks tend to be, not how they lie from each other: the class is a relation between
two parts of the image, which attention between patches can read. "train" and "test" are
independent draws from unrelated random streams.

digits: scikit-learn's handwritten digits (1,797 8 x 8 images, 0-16 scaled to 0-255), through
the images extra. For digits and the user's files, the val split (stratified) is the one scored.
"""
from dataclasses import dataclass

import numpy as np

from ..util.extras import require
from .image_files import images_digest, read_images
from .images import ImageDataset, LabelledImages, fit_images, preprocessing
from .tasks import _check_args, _rng

MARKS_LABELS = ["horizontal", "vertical", "diagonal"]
MARKS_SIZE = 16
MARK_SHAPES = np.array([[[0, 1, 0], [1, 1, 1], [0, 1, 0]],    # plus
                        [[1, 0, 1], [0, 1, 0], [1, 0, 1]]],   # x
                       dtype=np.bool_)
IMAGE_DATASETS = ("marks", "digits")


@dataclass
class ImageTask:
    dataset: ImageDataset   # "train" and "val"
    test: LabelledImages    # scored at the end: the generated test split, else the val split
    names: list             # class i is names[i]


def mark_images(n, seed, split):
    """n LabelledImages of the marks task, the classes equally likely."""
    _check_args(n, seed, split)
    rng = _rng(seed, split, 2)
    S = MARKS_SIZE
    labels = rng.integers(0, len(MARKS_LABELS), size=n)
    images = rng.integers(0, 64, size=(n, S, S), dtype=np.int64)  # background noise
    for i, label in enumerate(labels):
        (y0, x0), (y1, x1) = _two_centres(rng, int(label))
        shape, ink = MARK_SHAPES[rng.integers(len(MARK_SHAPES))], rng.integers(160, 256)
        for y, x in ((y0, x0), (y1, x1)):
            patch = images[i, y - 1:y + 2, x - 1:x + 2]
            patch[shape] = ink
    images = images.astype(np.uint8)[..., None]
    return LabelledImages(images, labels.astype(np.int64), list(MARKS_LABELS), [f"#{i}" for i in range(n)])


def _two_centres(rng, label):
    """Centres (y, x) of two marks in the relation `label`, both inside the image (rejection)."""
    low, high = 1, MARKS_SIZE - 2  # a 3 x 3 mark fits around these centres
    while True:
        y0, x0 = rng.integers(low, high + 1, size=2)
        far, near = rng.integers(4, high - low + 1), rng.integers(-1, 2)
        sign = rng.choice([-1, 1], size=2)
        dy, dx = {0: (near, sign[1] * far), 1: (sign[0] * far, near),
                  2: (sign[0] * far, sign[1] * (far + near))}[label]
        if label == 2 and far + near < 4:
            continue
        y1, x1 = y0 + dy, x0 + dx
        if low <= y1 <= high and low <= x1 <= high:
            return (int(y0), int(x0)), (int(y1), int(x1))


def digit_images():
    """scikit-learn's digits as LabelledImages (1,797 images, 8 x 8 x 1)."""
    datasets = require("sklearn.datasets", "images", "--dataset digits")
    digits = datasets.load_digits()
    images = np.rint(digits.images * (255 / 16)).astype(np.uint8)[..., None]
    return LabelledImages(images, digits.target.astype(np.int64), [str(d) for d in range(10)],
                          [f"#{i}" for i in range(len(images))])


def image_task(spec, mean, std):
    """The ImageTask a run's data spec describes:

    dataset              "marks", "digits" or "" (the user's files)
    n_train, n_test      marks only: images generated for train + val, and for test
    path, val_path       the user's files (val_path "": hold out val_fraction of path, stratified)
    val_fraction, seed   the held-out share of each class and the draw of the split (and of marks)
    image_size, channels the model's: images are converted and resized to them (0: the data's own;
                         image_size N: N x N, or [H, W])
    augment              the largest random shift of a training image, in pixels (0: none)
    Pixels are prepared with the model's normalisation `mean` and `std` (images.preprocessing).
    """
    size, channels = image_shape(spec["image_size"]), spec["channels"]
    if spec["dataset"] == "marks":
        images = mark_images(spec["n_train"], spec["seed"], "train")
        test = mark_images(spec["n_test"], spec["seed"], "test")
    elif spec["dataset"] == "digits":
        images, test = digit_images(), None
    else:
        images, test = read_images(spec["path"], "--data", size, channels), None
        if images.labels is None:
            raise ValueError(f"--data {spec['path']} gives no labels: training needs an .npz with 'labels' or a "
                             f"directory of class subfolders")
    H, W, C = images.shape
    size, channels = size or (H, W), channels or C
    images = fit_images(images, size, channels, "--data")
    if spec["val_path"]:
        val = read_images(spec["val_path"], "--val-data", size, channels)
        val = LabelledImages(val.images, relabel(val, images.names, "--val-data"), images.names, val.sources)
        train = images
    else:
        train, val = images.split(spec["val_fraction"], spec["seed"], spec["path"] or spec["dataset"])
    dataset = ImageDataset(train, val, preprocessing(channels, mean, std), spec["augment"])
    test = val if test is None else fit_images(test, size, channels, "the test split")
    return ImageTask(dataset, test, images.names)


def image_shape(image_size):
    """(H, W) of a config's image_size (N: N x N, or [H, W]); None for 0, the data's own."""
    if not image_size:
        return None
    return (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)


def relabel(images, names, what):
    """The class numbers, in `names`, of the labels of `images` (matched by name)."""
    if images.labels is None:
        raise ValueError(f"{what} gives no labels: an .npz with 'labels' or a directory of class subfolders")
    index = {name: i for i, name in enumerate(names)}
    unknown = sorted(set(images.names[i] for i in set(images.labels.tolist())) - set(index))
    if unknown:
        raise ValueError(f"{what} has labels the model does not know: {unknown[:5]} (its classes: {names[:10]})")
    return np.array([index[images.names[i]] for i in images.labels.tolist()], dtype=np.int64)


def data_digests(spec):
    """{option: sha256} of the user's files a spec reads (none for the built-in datasets)."""
    return {option: images_digest(spec[key], option) for option, key in (("--data", "path"), ("--val-data", "val_path"))
            if spec[key]}
