"""train-vit, classify-image and export --format hf for a vision transformer, through main():
the run directory, exact resume, the output of classify-image, fine-tuning and the Hugging Face
round trip."""
import csv
import json
import sys

import numpy as np
import pytest
from refusals import assert_refused

import transformer_jit
from transformer_jit.cli import main
from transformer_jit.data.image_tasks import mark_images
from transformer_jit.models.image_classification import vit_preprocessing
from transformer_jit.models.vit import VisionTransformer
from transformer_jit.train.checkpoint import load_checkpoint
from transformer_jit.data.images import prepare_pixels

TINY = ["--n-layer", "1", "--n-embd", "16", "--n-head", "2", "--patch-size", "4", "--batch-size", "4",
        "--eval-interval", "2", "--eval-iters", "1"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Marks images (16 x 16, 3 classes by name) as an .npz with labels, one without, and a small run."""
    root = tmp_path_factory.mktemp("vit")
    marks = mark_images(24, 3, "train")
    np.savez(root / "marks.npz", images=marks.images[..., 0], labels=marks.labels,
             label_names=np.array(marks.names))
    np.savez(root / "unlabelled.npz", images=marks.images[:3])
    assert main(["train-vit", "--data", str(root / "marks.npz"), "--out-dir", str(root / "run"), "--max-iters", "2",
                 *TINY]) == 0
    return root


def test_a_run_writes_its_directory_and_scores_the_best_checkpoint(files, capsys):
    run = files / "run"
    assert {"best.npz", "last.npz", "config.json", "metrics.csv"} <= {p.name for p in run.iterdir()}
    config = json.loads((run / "config.json").read_text())
    assert config["model"]["label_names"] == ["horizontal", "vertical", "diagonal"]
    assert config["model"]["image_size"] == 16 and config["model"]["num_channels"] == 1
    assert config["task"]["data"]["sha256"]["--data"]
    loaded = transformer_jit.load(run)
    assert loaded.kind == "vit" and loaded.tokenizer is None and loaded.labels == config["model"]["label_names"]


def metrics(run):
    return [(r["step"], r["train_loss"], r["val_loss"], r["lr"]) for r in csv.DictReader(open(run / "metrics.csv"))]


def test_a_resumed_run_is_the_uninterrupted_run_bit_for_bit(files, tmp_path, capsys):
    # dropout and augmentation: the dropout counter and the batch generator must both come back
    train = ["train-vit", "--data", str(files / "marks.npz"), *TINY, "--dropout", "0.1", "--augment", "2"]
    assert main([*train, "--out-dir", str(tmp_path / "straight"), "--max-iters", "6"]) == 0
    assert main([*train, "--out-dir", str(tmp_path / "resumed"), "--max-iters", "4"]) == 0
    assert main(["train-vit", "--resume", "--out-dir", str(tmp_path / "resumed"), "--max-iters", "6"]) == 0
    assert "resumed from" in capsys.readouterr().out
    straight, _ = load_checkpoint(tmp_path / "straight" / "last.npz")
    resumed, meta = load_checkpoint(tmp_path / "resumed" / "last.npz")
    assert meta["step"] == 6 and straight.keys() == resumed.keys()
    for name in straight:
        np.testing.assert_array_equal(resumed[name], straight[name], err_msg=name)
    assert metrics(tmp_path / "resumed") == metrics(tmp_path / "straight") and len(metrics(tmp_path / "straight")) == 3


def test_resuming_on_other_images_is_refused(files, tmp_path, capsys, monkeypatch):
    other = tmp_path / "other.npz"
    marks = mark_images(24, 4, "train")
    np.savez(other, images=marks.images, labels=marks.labels)
    assert_refused(["train-vit", "--resume", "--out-dir", str(files / "run"), "--data", str(other),
                    "--max-iters", "4"], "--data is not the data the run in", files, capsys, monkeypatch)


def test_classify_image_prints_the_accuracy_or_a_class_per_image(files, capsys):
    assert main(["classify-image", "--out-dir", str(files / "run"), "--data", str(files / "marks.npz")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("accuracy: ") and "(" in out and f"on {files / 'marks.npz'}" in out
    assert main(["classify-image", "--out-dir", str(files / "run"), "--data", str(files / "unlabelled.npz")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[0] for line in lines] == ["#0", "#1", "#2"]
    model = transformer_jit.load(files / "run").model
    pixels = prepare_pixels(mark_images(24, 3, "train").images[:3], vit_preprocessing(model.config))
    assert [line.split("\t")[1] for line in lines] == [model.config.label_names[i] for i in model.predict(pixels)]


def test_classify_image_reads_a_folder_of_image_files(files, tmp_path, capsys):
    pil = pytest.importorskip("PIL.Image")
    marks = mark_images(2, 3, "train")
    for i, image in enumerate(marks.images):
        pil.fromarray(image[..., 0]).save(tmp_path / f"{i}.png")
    assert main(["classify-image", "--out-dir", str(files / "run"), "--data", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[0] for line in lines] == [str(tmp_path / "0.png"), str(tmp_path / "1.png")]
    assert all(line.split("\t")[1] in marks.names for line in lines)


def test_export_hf_writes_a_directory_that_loads_back_with_the_same_logits(files, tmp_path, capsys):
    dest = tmp_path / "hf"
    assert main(["export", "--out-dir", str(files / "run"), "--format", "hf", str(dest)]) == 0
    assert sorted(p.name for p in dest.iterdir()) == ["config.json", "model.safetensors", "preprocessor_config.json"]
    prep = json.loads((dest / "preprocessor_config.json").read_text())
    model = transformer_jit.load(files / "run").model
    assert prep["image_mean"] == vit_preprocessing(model.config)["image_mean"]
    back = VisionTransformer.from_pretrained(dest)
    pixels = prepare_pixels(mark_images(4, 9, "test").images, vit_preprocessing(model.config))
    np.testing.assert_allclose(back.eval().forward(pixels)[0], model.forward(pixels)[0], rtol=1e-6, atol=1e-6)
    assert back.config.label_names == model.config.label_names


@pytest.mark.interop
def test_transformers_loads_the_export_with_the_same_logits(files, tmp_path, capsys):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    dest = tmp_path / "hf"
    assert main(["export", "--out-dir", str(files / "run"), "--format", "hf", str(dest)]) == 0
    theirs = transformers.ViTForImageClassification.from_pretrained(dest).eval()
    processor = transformers.ViTImageProcessor.from_pretrained(dest)
    images = mark_images(4, 9, "test").images
    prepared = processor(images=[np.repeat(i, 3, axis=2)[..., :1] for i in images], return_tensors="pt",
                         input_data_format="channels_last")["pixel_values"]
    model = transformer_jit.load(files / "run").model
    ours = prepare_pixels(images, vit_preprocessing(model.config))
    np.testing.assert_allclose(prepared.numpy(), ours, atol=1e-6)
    with torch.no_grad():
        expected = theirs(pixel_values=torch.from_numpy(ours)).logits.numpy()
    np.testing.assert_allclose(model.forward(ours)[0], expected, rtol=1e-5, atol=1e-5)
    assert theirs.config.id2label == dict(enumerate(model.config.label_names))


def test_fine_tuning_keeps_the_weights_and_a_head_only_for_the_same_classes(files, tmp_path, capsys):
    hf = tmp_path / "hf"
    assert main(["export", "--out-dir", str(files / "run"), "--format", "hf", str(hf)]) == 0
    pretrained = VisionTransformer.from_pretrained(hf).state_dict()
    frozen = ["--max-iters", "1", "--lr", "0", "--min-lr", "0", "--warmup-iters", "0", "--batch-size", "4",
              "--eval-iters", "1"]
    assert main(["train-vit", "--init-from", str(hf), "--data", str(files / "marks.npz"), "--out-dir",
                 str(tmp_path / "same"), *frozen]) == 0
    same, _ = load_checkpoint(tmp_path / "same" / "last.npz")
    for name, value in pretrained.items():
        np.testing.assert_array_equal(same[f"model.{name}"], value, err_msg=name)
    two = mark_images(24, 5, "train")
    keep = two.labels < 2  # horizontal and vertical only: a new head of two classes, the encoder kept
    np.savez(tmp_path / "two.npz", images=two.images[keep], labels=two.labels[keep])
    assert main(["train-vit", "--init-from", str(hf), "--data", str(tmp_path / "two.npz"), "--out-dir",
                 str(tmp_path / "new-head"), *frozen]) == 0
    new, meta = load_checkpoint(tmp_path / "new-head" / "last.npz")
    assert meta["model_config"]["n_classes"] == 2 and meta["model_config"]["label_names"] == ["0", "1"]
    assert new["model.classifier.weight"].shape == (2, 16)
    for name, value in pretrained.items():
        if not name.startswith("classifier."):
            np.testing.assert_array_equal(new[f"model.{name}"], value, err_msg=name)


def test_fine_tuning_prepares_the_images_as_the_pretrained_model_was_trained(files, tmp_path, capsys):
    """Its preprocessor_config.json's mean and std, not the package's 0.5: the run keeps them, and
    classify-image and an export use them."""
    hf = tmp_path / "hf"
    assert main(["export", "--out-dir", str(files / "run"), "--format", "hf", str(hf)]) == 0
    prep = json.loads((hf / "preprocessor_config.json").read_text())
    (hf / "preprocessor_config.json").write_text(json.dumps({**prep, "image_mean": [0.2], "image_std": [0.4]}))
    assert main(["train-vit", "--init-from", str(hf), "--data", str(files / "marks.npz"), "--out-dir",
                 str(tmp_path / "run"), "--max-iters", "1", "--batch-size", "4", "--eval-iters", "1"]) == 0
    _, meta = load_checkpoint(tmp_path / "run" / "last.npz")
    assert (meta["model_config"]["image_mean"], meta["model_config"]["image_std"]) == ([0.2], [0.4])
    model = transformer_jit.load(tmp_path / "run").model
    assert vit_preprocessing(model.config)["image_mean"] == [0.2]
    assert main(["export", "--out-dir", str(tmp_path / "run"), "--format", "hf", str(tmp_path / "back")]) == 0
    back = json.loads((tmp_path / "back" / "preprocessor_config.json").read_text())
    assert (back["image_mean"], back["image_std"]) == ([0.2], [0.4])


def test_digits_without_the_images_extra_is_one_line_naming_it(files, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    assert_refused(["train-vit", "--dataset", "digits", "--out-dir", str(files / "digits")],
                   "--dataset digits needs sklearn: pip install", files, capsys, monkeypatch, status=1)
