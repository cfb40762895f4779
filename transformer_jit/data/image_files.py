"""The user's images read into LabelledImages: an .npz of arrays, a directory of class subfolders
(torchvision's ImageFolder convention), a directory of image files, or one image file.

    images = read_images("digits.npz", "--data")              'images' (N, H, W) or (N, H, W, C) uint8,
                                                               'labels' (N,) integers, 'label_names' optional
    images = read_images("photos/", "--data", (32, 32))        photos/cat/1.png, photos/dog/2.jpg, ...
    digest = images_digest("photos/", "--data")                sha256 over what read_images reads

An .npz is read with allow_pickle=False, so it never runs code. Its labels keep their own numbers
when `label_names` names them (label i is label_names[i]); otherwise the distinct values are the
classes, in numeric order, named by their values. A folder's classes are its subfolders in sorted
order. PNG and JPEG files are read with Pillow (the images extra), converted to grayscale or RGB.
"""
import hashlib
import zipfile
from pathlib import Path

import numpy as np

from ..util.extras import require
from ..util.npz import check_npz_members
from ..util.regular_file import check_readable_file, open_regular_file
from .images import LabelledImages, fit_images

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
ZIP_MAGIC = b"PK\x03\x04"
GRAY_MODES = ("1", "L", "LA", "I", "I;16", "F")  # Pillow modes read as one channel


def read_images(path, what, size=None, channels=0):
    """LabelledImages of `path` (labels None where the files give none), of size (H, W) with
    `channels` channels (None, 0: the images' own)."""
    path = Path(path)
    if path.is_dir():
        images = _read_folder(path, what, size)
    else:
        check_readable_file(path, what)
        images = (_read_image_files([path], what, size) if path.suffix.lower() in IMAGE_SUFFIXES
                  else _read_npz(path, what))
    H, W, C = images.shape
    return fit_images(images, size or (H, W), channels or C, f"{what} {path}")


def images_digest(path, what):
    """sha256 of the file, or of a folder's image files (their paths and contents, in order)."""
    path = Path(path)
    files = [path] if not path.is_dir() else [f for _, f in _folder_files(path, what)]
    digest = hashlib.sha256()
    for file in files:
        digest.update(str(file.relative_to(path) if path.is_dir() else file.name).encode("utf-8"))
        with open_regular_file(file, what) as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


# -- .npz ----------------------------------------------------------------------------------------
def _read_npz(path, what):
    where = f"{what} {path}"
    with open_regular_file(path, what) as f:
        if f.read(len(ZIP_MAGIC)) != ZIP_MAGIC:
            raise ValueError(f"{where} is not an .npz (a zip archive of arrays, as numpy.savez writes) nor a PNG or "
                             f"JPEG file")
        f.seek(0)
        try:
            check_npz_members(f, compressed=True)
            with np.load(f, allow_pickle=False) as archive:
                held = archive.files
                arrays = {name: archive[name] for name in ("images", "labels", "label_names") if name in held}
        except ValueError as e:
            if "allow_pickle" not in str(e):
                raise ValueError(f"{where} is a damaged .npz ({' '.join(str(e).split())})") from None
            raise ValueError(f"{where} holds arrays of Python objects, which are never unpickled: save 'images' as "
                             f"uint8 and 'labels' as integers") from None
        except (zipfile.BadZipFile, OSError, EOFError) as e:
            raise ValueError(f"{where} is a damaged .npz ({' '.join(str(e).split())})") from None
    if "images" not in arrays:
        raise ValueError(f"{where} has no 'images' array (it holds {held})")
    images = arrays["images"]
    if images.dtype != np.uint8:
        raise ValueError(f"{where}: 'images' must be uint8 (0-255), got {images.dtype}")
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[3] not in (1, 3):
        raise ValueError(f"{where}: 'images' must be (N, H, W) or (N, H, W, C) with C 1 or 3, got shape "
                         f"{arrays['images'].shape}")
    if 0 in images.shape:
        raise ValueError(f"{where} holds no images: 'images' has shape {arrays['images'].shape}")
    labels, names = _npz_labels(arrays, len(images), where)
    return LabelledImages(np.ascontiguousarray(images), labels, names, [f"#{i}" for i in range(len(images))])


def _npz_labels(arrays, n, where):
    """(labels as class numbers, class names), or (None, None) without 'labels'."""
    if "labels" not in arrays:
        if "label_names" in arrays:
            raise ValueError(f"{where} has 'label_names' but no 'labels'")
        return None, None
    labels = arrays["labels"]
    if labels.dtype.kind not in "iu" or labels.shape != (n,):
        raise ValueError(f"{where}: 'labels' must be {n} integers (one per image), got {labels.dtype} "
                         f"{labels.shape}")
    labels = labels.astype(np.int64)
    if "label_names" not in arrays:
        values = sorted(set(labels.tolist()))
        index = {value: i for i, value in enumerate(values)}
        return np.array([index[v] for v in labels.tolist()], dtype=np.int64), [str(v) for v in values]
    names = arrays["label_names"]
    if names.dtype.kind != "U" or names.ndim != 1 or len(set(names.tolist())) != len(names) or "" in names:
        raise ValueError(f"{where}: 'label_names' must be distinct, non-empty strings (1-D), got {names.dtype} "
                         f"{names.shape}")
    bad = labels[(labels < 0) | (labels >= len(names))]
    if bad.size:
        raise ValueError(f"{where}: label {int(bad[0])} has no name: 'label_names' names labels 0 to "
                         f"{len(names) - 1}")
    return labels, names.tolist()


# -- image files ---------------------------------------------------------------------------------
def _read_folder(path, what, size):
    """Class subfolders (labelled, in sorted order), or image files directly inside (unlabelled)."""
    found = _folder_files(path, what)
    classes = sorted({name for name, _ in found if name is not None})
    images = _read_image_files([file for _, file in found], what, size)
    if not classes:
        return images
    index = {name: i for i, name in enumerate(classes)}
    images.labels = np.array([index[name] for name, _ in found], dtype=np.int64)
    images.names = classes
    return images


def _folder_files(path, what):
    """[(class name or None, file)]: PNG and JPEG files in each class subfolder, or directly inside."""
    entries = sorted(p for p in path.iterdir() if not p.name.startswith("."))
    subfolders = [p for p in entries if p.is_dir()]
    if not subfolders:
        files = [(None, p) for p in entries if p.suffix.lower() in IMAGE_SUFFIXES]
        if not files:
            raise ValueError(f"{what} {path} holds no class subfolders and no PNG or JPEG files")
        return files
    found = []
    for folder in subfolders:
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
        if not files:
            raise ValueError(f"{what} {path}: class folder {folder.name!r} holds no PNG or JPEG files")
        found += [(folder.name, file) for file in files]
    return found


def _read_image_files(files, what, size):
    """Unlabelled LabelledImages of the files, each grayscale or RGB (RGB if any is in colour),
    resized to size (H, W) unless size is None (then all must have the same size)."""
    pil = require("PIL.Image", "images", f"reading the PNG and JPEG files of {what}")
    arrays = []
    for file in files:
        with open_regular_file(file, f"image file of {what}") as f:
            try:
                with pil.open(f) as image:
                    image = image.convert("L" if image.mode in GRAY_MODES else "RGB")
                    if size:
                        image = image.resize(size[::-1], pil.BILINEAR)
                    arrays.append(np.asarray(image, dtype=np.uint8).reshape(image.height, image.width, -1))
            except (OSError, ValueError, pil.DecompressionBombError) as e:
                raise ValueError(f"{file} is not an image Pillow can read ({' '.join(str(e).split())})") from None
        if arrays[-1].shape[:2] != arrays[0].shape[:2]:
            raise ValueError(f"{what}: {files[0]} is {_size(arrays[0])} but {file} is {_size(arrays[-1])}: give "
                             f"--image-size N to resize them all to N x N")
    channels = max(a.shape[2] for a in arrays)
    images = np.stack([np.repeat(a, channels // a.shape[2], axis=2) for a in arrays])
    return LabelledImages(images, None, None, [str(file) for file in files])


def _size(array):
    return f"{array.shape[1]} x {array.shape[0]}"
