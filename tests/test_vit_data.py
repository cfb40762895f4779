"""The vision transformer's data: the pixel kernel, the user's .npz files and image folders, the
stratified split, augmentation, the generated marks task and scikit-learn's digits."""
import sys

import numpy as np
import pytest

from transformer_jit import kernels as K
from transformer_jit.data.image_files import images_digest, read_images
from transformer_jit.data.image_tasks import MARKS_LABELS, digit_images, image_task, mark_images
from transformer_jit.data.images import ImageDataset, LabelledImages, prepare_pixels, preprocessing
from transformer_jit.util.extras import MissingExtra

PREP = {"image_mean": [0.5, 0.25, 0.1], "image_std": [0.5, 2.0, 0.2], "rescale_factor": 1 / 255}


def reference_pixels(images, prep, idx, shifts):
    """The kernel's formula in NumPy: pad, crop at the shift, then (v / 255 - mean) / std."""
    N, H, W, C = images.shape
    a = max(np.abs(shifts).max(), 0)
    padded = np.pad(images.astype(np.float64), ((0, 0), (a, a), (a, a), (0, 0)))
    out = np.empty((len(idx), C, H, W))
    for b, (n, (dy, dx)) in enumerate(zip(idx, shifts)):
        crop = padded[n, a - dy:a - dy + H, a - dx:a - dx + W]  # the image moved down dy, right dx
        out[b] = ((crop * prep["rescale_factor"] - prep["image_mean"]) / prep["image_std"]).transpose(2, 0, 1)
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pixels_are_gathered_shifted_and_normalised_as_the_reference(rng, dtype):
    images = rng.integers(0, 256, size=(5, 6, 7, 3), dtype=np.uint8)
    idx = np.array([4, 0, 0, 2], dtype=np.int64)
    shifts = np.array([[0, 0], [2, -1], [-3, 3], [1, 0]], dtype=np.int64)
    got = prepare_pixels(images, PREP, idx, shifts, dtype=dtype)
    assert got.dtype == dtype and got.shape == (4, 3, 6, 7)
    np.testing.assert_allclose(got, reference_pixels(images, PREP, idx, shifts), rtol=1e-6, atol=1e-6)
    # the same loops, interpreted (compiled, a multiply-add may round once where Python rounds twice)
    again = np.empty_like(got)
    scale = (PREP["rescale_factor"] / np.array(PREP["image_std"])).astype(dtype)
    offset = (-np.array(PREP["image_mean"]) / np.array(PREP["image_std"])).astype(dtype)
    K.pixels_from_images.py_func(again, images, idx, shifts, scale, offset)
    np.testing.assert_allclose(again, got, rtol=1e-6, atol=1e-6)


def test_no_shift_gives_every_image_in_order(rng):
    images = rng.integers(0, 256, size=(3, 4, 4, 1), dtype=np.uint8)
    got = prepare_pixels(images, preprocessing(1, 0.5, 0.5))
    np.testing.assert_allclose(got, (images.transpose(0, 3, 1, 2) / 255 - 0.5) / 0.5, atol=1e-6)


# -- .npz ----------------------------------------------------------------------------------------
def test_npz_images_with_named_labels_keep_their_numbers(tmp_path, rng):
    images = rng.integers(0, 256, size=(6, 5, 5), dtype=np.uint8)
    np.savez(tmp_path / "d.npz", images=images, labels=np.array([2, 0, 1, 2, 0, 1]),
             label_names=np.array(["cat", "dog", "eel"]))
    got = read_images(tmp_path / "d.npz", "--data")
    assert got.images.shape == (6, 5, 5, 1) and got.names == ["cat", "dog", "eel"]
    np.testing.assert_array_equal(got.images[..., 0], images)
    assert got.labels.tolist() == [2, 0, 1, 2, 0, 1] and got.sources[:2] == ["#0", "#1"]


def test_npz_labels_without_names_are_classes_in_numeric_order(tmp_path, rng):
    np.savez(tmp_path / "d.npz", images=rng.integers(0, 256, size=(4, 2, 2, 3), dtype=np.uint8),
             labels=np.array([10, 7, 10, 2]))
    got = read_images(tmp_path / "d.npz", "--data")
    assert got.names == ["2", "7", "10"] and got.labels.tolist() == [2, 1, 2, 0] and got.shape == (2, 2, 3)
    unlabelled = tmp_path / "u.npz"
    np.savez(unlabelled, images=np.zeros((2, 3, 3), dtype=np.uint8))
    assert read_images(unlabelled, "--data").labels is None


def test_npz_channels_are_converted_to_what_the_model_reads(tmp_path):
    rgb = np.zeros((1, 2, 2, 3), dtype=np.uint8)
    rgb[..., 0] = 200  # pure red: luma 0.299 * 200
    np.savez(tmp_path / "d.npz", images=rgb, labels=np.array([0]))
    assert read_images(tmp_path / "d.npz", "--data", channels=1).images[0, 0, 0, 0] == round(0.299 * 200)
    np.savez(tmp_path / "g.npz", images=np.full((1, 2, 2), 7, dtype=np.uint8), labels=np.array([0]))
    assert (read_images(tmp_path / "g.npz", "--data", channels=3).images == 7).all()


BAD_NPZ = [
    ({"labels": np.zeros(2, np.int64)}, "has no 'images' array"),
    ({"images": np.zeros((2, 3, 3), np.float32), "labels": np.zeros(2, np.int64)}, "'images' must be uint8"),
    ({"images": np.zeros((2, 3), np.uint8)}, "must be (N, H, W) or (N, H, W, C)"),
    ({"images": np.zeros((2, 3, 3, 4), np.uint8)}, "with C 1 or 3"),
    ({"images": np.zeros((0, 3, 3), np.uint8)}, "holds no images"),
    ({"images": np.zeros((2, 3, 3), np.uint8), "labels": np.zeros(3, np.int64)}, "'labels' must be 2 integers"),
    ({"images": np.zeros((2, 3, 3), np.uint8), "labels": np.zeros(2)}, "'labels' must be 2 integers"),
    ({"images": np.zeros((2, 3, 3), np.uint8), "labels": np.array([0, 2]), "label_names": np.array(["a", "b"])},
     "label 2 has no name"),
    ({"images": np.zeros((2, 3, 3), np.uint8), "labels": np.array([0, 1]), "label_names": np.array(["a", "a"])},
     "'label_names' must be distinct"),
    ({"images": np.zeros((2, 3, 3), np.uint8), "label_names": np.array(["a"])}, "has 'label_names' but no 'labels'"),
]


@pytest.mark.parametrize("arrays, message", BAD_NPZ, ids=[m for _, m in BAD_NPZ])
def test_a_malformed_npz_is_refused_by_name(tmp_path, arrays, message):
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ValueError, match="^--data .*bad.npz") as e:
        read_images(tmp_path / "bad.npz", "--data")
    assert message in str(e.value)


def test_files_that_are_not_npz_archives_are_refused_without_unpickling(tmp_path):
    np.save(tmp_path / "one.npy", np.zeros(3))
    (tmp_path / "text.npz").write_text("not a zip")
    np.savez(tmp_path / "objects.npz", images=np.array([{"x": 1}], dtype=object))
    (tmp_path / "cut.npz").write_bytes((tmp_path / "objects.npz").read_bytes()[:60])
    for name, message in (("one.npy", "is not an .npz (a zip archive of arrays"), ("text.npz", "is not an .npz ("),
                          ("objects.npz", "holds arrays of Python objects, which are never unpickled"),
                          ("cut.npz", "is a damaged .npz")):
        with pytest.raises(ValueError, match=f"^--data .*{name} ") as e:
            read_images(tmp_path / name, "--data")
        assert message in str(e.value)


# -- image folders ---------------------------------------------------------------------------------
def write_png(path, array):
    pil = pytest.importorskip("PIL.Image")
    path.parent.mkdir(parents=True, exist_ok=True)
    pil.fromarray(array).save(path)


def test_a_folder_of_class_subfolders_is_read_resized_and_labelled(tmp_path, rng):
    write_png(tmp_path / "imgs" / "dog" / "a.png", rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8))
    write_png(tmp_path / "imgs" / "cat" / "b.png", np.full((6, 10), 128, dtype=np.uint8))  # gray, another size
    write_png(tmp_path / "imgs" / "cat" / "c.PNG", np.zeros((8, 8), dtype=np.uint8))
    (tmp_path / "imgs" / "cat" / "notes.txt").write_text("ignored")
    got = read_images(tmp_path / "imgs", "--data", size=(4, 4))
    assert got.names == ["cat", "dog"] and got.labels.tolist() == [0, 0, 1]
    assert got.images.shape == (3, 4, 4, 3)  # RGB: one of them is in colour
    assert (got.images[0] == 128).all() and got.sources[0].endswith("cat/b.png")
    with pytest.raises(ValueError, match="b.png is 10 x 6 but .*c.PNG is 8 x 8: give --image-size"):
        read_images(tmp_path / "imgs", "--data")
    digest = images_digest(tmp_path / "imgs", "--data")
    write_png(tmp_path / "imgs" / "cat" / "c.PNG", np.ones((8, 8), dtype=np.uint8))
    assert images_digest(tmp_path / "imgs", "--data") != digest


def test_image_files_without_classes_are_read_unlabelled(tmp_path):
    write_png(tmp_path / "loose" / "x.png", np.zeros((4, 4), dtype=np.uint8))
    write_png(tmp_path / "loose" / "y.png", np.full((4, 4), 255, dtype=np.uint8))
    got = read_images(tmp_path / "loose", "--data")
    assert got.labels is None and got.images.shape == (2, 4, 4, 1) and got.images[1].min() == 255
    one = read_images(tmp_path / "loose" / "y.png", "--data", channels=3)
    assert one.images.shape == (1, 4, 4, 3) and one.sources == [str(tmp_path / "loose" / "y.png")]


def test_bad_folders_are_refused_by_name(tmp_path):
    write_png(tmp_path / "ok" / "a" / "x.png", np.zeros((4, 4), dtype=np.uint8))
    (tmp_path / "ok" / "b").mkdir()
    with pytest.raises(ValueError, match="class folder 'b' holds no PNG or JPEG files"):
        read_images(tmp_path / "ok", "--data")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no class subfolders and no PNG or JPEG files"):
        read_images(tmp_path / "empty", "--data")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "x.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(ValueError, match="x.png is not an image Pillow can read"):
        read_images(tmp_path / "broken", "--data")


def test_reading_image_files_without_pillow_names_the_extra(tmp_path, monkeypatch):
    (tmp_path / "x.png").write_bytes(b"\x89PNG")
    monkeypatch.setitem(sys.modules, "PIL", None)
    monkeypatch.setitem(sys.modules, "PIL.Image", None)
    with pytest.raises(MissingExtra, match=r"needs PIL: pip install .*\[images\]'$"):
        read_images(tmp_path / "x.png", "--data")


# -- splits, batches, augmentation ---------------------------------------------------------------
def labelled(n_per_class, size=4):
    labels = np.repeat(np.arange(len(n_per_class)), n_per_class)
    images = (np.arange(len(labels))[:, None, None, None] * np.ones((1, size, size, 1))).astype(np.uint8)
    return LabelledImages(images, labels, [f"c{i}" for i in range(len(n_per_class))],
                          [f"#{i}" for i in range(len(labels))])


def test_the_split_holds_out_each_class_its_share_by_seed():
    images = labelled([10, 20, 3, 1])
    train, val = images.split(0.3, seed=4)
    assert np.bincount(val.labels, minlength=4).tolist() == [3, 6, 1, 0]
    assert sorted(train.sources + val.sources, key=lambda s: int(s[1:])) == images.sources
    again = images.split(0.3, seed=4)[1]
    other = images.split(0.3, seed=5)[1]
    assert again.sources == val.sources and other.sources != val.sources


def test_augmented_batches_shift_training_images_only_and_repeat_with_the_generator():
    images = LabelledImages(np.random.default_rng(1).integers(0, 256, (8, 6, 6, 1), dtype=np.uint8),
                            np.arange(8) % 2, ["a", "b"], [f"#{i}" for i in range(8)])
    data = ImageDataset(images, images, preprocessing(1, 0.5, 0.5), augment=2)
    x1, y1 = data.batch("train", 16, np.random.default_rng(7))
    x2, y2 = data.batch("train", 16, np.random.default_rng(7))
    np.testing.assert_array_equal(x1, x2)
    rng = np.random.default_rng(7)
    idx = rng.integers(0, 8, size=16)
    shifts = rng.integers(-2, 3, size=(16, 2))
    assert np.abs(shifts).max() > 0
    np.testing.assert_array_equal(y1, images.labels[idx])
    np.testing.assert_allclose(x1, reference_pixels(images.images, data.preprocessing, idx, shifts), atol=1e-6)
    val, _ = data.batch("val", 16, np.random.default_rng(7))
    np.testing.assert_allclose(val, prepare_pixels(images.images, data.preprocessing, idx), atol=0)


# -- the generated task and digits ---------------------------------------------------------------
def centres(image):
    """The centres of the two marks: the pixels brighter than any background whose 3 x 3
    neighbourhood holds the most ink (a plus or an x has its centre there)."""
    ink = image[..., 0] >= 160
    counts = np.zeros(ink.shape, dtype=np.int64)
    for y in range(1, ink.shape[0] - 1):
        for x in range(1, ink.shape[1] - 1):
            counts[y, x] = ink[y - 1:y + 2, x - 1:x + 2].sum() if ink[y, x] else 0
    best = np.argwhere(counts == 5)
    return best


def test_marks_are_deterministic_balanced_and_their_class_is_the_relation():
    a, b = mark_images(300, 0, "train"), mark_images(300, 0, "train")
    np.testing.assert_array_equal(a.images, b.images)
    assert not np.array_equal(a.images, mark_images(300, 0, "test").images)
    assert a.names == MARKS_LABELS and min(np.bincount(a.labels)) > 70
    for image, label in zip(a.images[:40], a.labels[:40]):
        (y0, x0), (y1, x1) = centres(image)
        dy, dx = abs(y1 - y0), abs(x1 - x0)
        assert {0: dy <= 1 and dx >= 4, 1: dx <= 1 and dy >= 4, 2: dy >= 4 and dx >= 4 and abs(dy - dx) <= 1}[label]


def test_image_task_builds_train_val_and_test_splits():
    spec = {"dataset": "marks", "n_train": 200, "n_test": 30, "seed": 0, "val_fraction": 0.2, "image_size": 8,
            "channels": 3, "augment": 1, "path": "", "val_path": ""}
    task = image_task(spec, 0.5, 0.5)
    assert len(task.dataset) == 200 and len(task.test) == 30 and task.names == MARKS_LABELS
    assert task.dataset.examples("val").shape == (8, 8, 3) == task.test.shape
    pixels, labels = task.dataset.batch("train", 5, np.random.default_rng(0))
    assert pixels.shape == (5, 3, 8, 8) and pixels.dtype == np.float32 and labels.dtype == np.int64


def test_digits_without_scikit_learn_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(MissingExtra, match=r"^--dataset digits needs sklearn: pip install .*\[images\]'$"):
        digit_images()


def test_digits_are_scaled_to_bytes():
    pytest.importorskip("sklearn")
    digits = digit_images()
    assert digits.images.shape == (1797, 8, 8, 1) and digits.images.max() == 255 and len(digits.names) == 10
