"""Bad inputs to every command: each gets exit status 2 and one line that names the problem,
never a traceback, and a command that fails its checks changes no file."""
import re
from pathlib import Path

import numpy as np
import pytest
from refusals import assert_refused

from transformer_jit.cli import main

TEXT = "the quick brown fox jumps over the lazy dog.\n" * 40
GPT = ["--n-layer", "1", "--n-embd", "16", "--n-head", "2", "--block-size", "8", "--batch-size", "4",
       "--eval-interval", "2", "--eval-iters", "1", "--sample-tokens", "0"]
ENCODER = ["--n-embd", "16", "--n-head", "2", "--batch-size", "8", "--eval-interval", "2", "--eval-iters", "1",
           "--n-train", "200", "--n-test", "4"]

VIT = ["--n-layer", "1", "--n-embd", "8", "--n-head", "2", "--patch-size", "4", "--batch-size", "2",
       "--eval-interval", "2", "--eval-iters", "1"]


@pytest.fixture(scope="module")
def place(tmp_path_factory):
    """A directory with data files, and a small trained run of each kind."""
    root = tmp_path_factory.mktemp("bad-inputs")
    (root / "input.txt").write_text(TEXT)
    (root / "empty.txt").write_text("")
    (root / "tiny.txt").write_text("abc")
    (root / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    (root / "a-file").write_text("x")
    (root / "empty-dir").mkdir()
    assert main(["train", "--data", str(root / "input.txt"), "--out-dir", str(root / "gpt"), "--max-iters", "4",
                 *GPT]) == 0
    assert main(["train-seq2seq", "--out-dir", str(root / "s2s"), "--max-iters", "2", "--n-encoder-layer", "1",
                 "--n-decoder-layer", "1", *ENCODER]) == 0
    assert main(["train-classifier", "--out-dir", str(root / "cls"), "--max-iters", "2", "--n-layer", "1",
                 *ENCODER]) == 0
    images = np.arange(6 * 8 * 8, dtype=np.uint8).reshape(6, 8, 8)
    np.savez(root / "images.npz", images=images, labels=np.array([0, 1] * 3), label_names=np.array(["a", "b"]))
    np.savez(root / "unlabelled.npz", images=images)
    np.savez(root / "other-labels.npz", images=images, labels=np.arange(6))
    (root / "image-folder" / "a").mkdir(parents=True)  # a run inside it is refused before any image is read
    assert main(["train-vit", "--data", str(root / "images.npz"), "--out-dir", str(root / "vit"), "--max-iters", "2",
                 *VIT]) == 0
    return root


def train(*args):
    return ["train", "--data", "{root}/input.txt", "--out-dir", "{root}/new", *GPT, *args]


def vit(*args):
    return ["train-vit", "--data", "{root}/images.npz", "--out-dir", "{root}/new", *VIT, *args]


CASES = [
    # train: every option's range, NaN included
    (train("--max-iters", "0"), "--max-iters must be >= 1"),
    (train("--lr", "inf"), "--lr must be a finite number"),
    (train("--lr", "nan"), "--lr must be a finite number"),
    (train("--lr", "-1"), "--lr must be >= 0"),
    (train("--min-lr", "nan"), "--min-lr must be a finite number"),
    (train("--min-lr", "1"), "--min-lr must be <= lr"),
    (train("--beta1", "1.0"), "--beta1 must be in [0.0, 1.0)"),
    (train("--beta2", "-5"), "--beta2 must be in [0.0, 1.0)"),
    (train("--weight-decay", "nan"), "--weight-decay must be a finite number"),
    (train("--weight-decay", "-1"), "--weight-decay must be >= 0"),
    (train("--grad-clip", "nan"), "--grad-clip must be a finite number"),
    (train("--seed", "-1"), "--seed must be >= 0"),
    (train("--batch-size", "0"), "--batch-size must be >= 1"),
    (train("--eval-interval", "0"), "--eval-interval must be >= 1"),
    (train("--eval-iters", "0"), "--eval-iters must be >= 1"),
    (train("--warmup-iters", "-1"), "--warmup-iters must be >= 0"),
    (train("--schedule", "noam", "--warmup-iters", "0"), "--warmup-iters must be >= 1 with the noam schedule"),
    (train("--patience", "-1"), "--patience must be >= 0"),
    (train("--n-embd", "10", "--n-head", "3"), "--n-embd must be divisible by n_head (3)"),
    (train("--n-layer", "0"), "--n-layer must be >= 1"),
    (train("--block-size", "0"), "--block-size must be >= 1"),
    (train("--dropout", "1.0"), "--dropout must be in [0.0, 1.0)"),
    (train("--attn-dropout", "nan"), "--attn-dropout must be a finite number, got nan"),
    (train("--sample-tokens", "-5"), "argument --sample-tokens: must be >= 0"),
    (train("--lr", "abc"), "argument --lr: invalid float value: 'abc'"),
    (train("--optimizer", "adamax"), "argument --optimizer: invalid choice: 'adamax'"),
    (train("--n-embd", "100000"), "GB is available"),
    (train("--batch-size", "100000000"), "GB is available"),
    # train: the data and the run directory
    (["train", "--data", "/dev/null", "--out-dir", "{root}/new"], "is not a regular file"),
    (["train", "--data", "{root}/empty-dir", "--out-dir", "{root}/new"], "without a finished set of token files"),
    (["train", "--data", "{root}/missing.txt", "--out-dir", "{root}/new"], "data file not found"),
    (["train", "--data", "{root}/empty.txt", "--out-dir", "{root}/new"], "is empty"),
    (["train", "--data", "{root}/latin1.txt", "--out-dir", "{root}/new"], "is not UTF-8 text"),
    (["train", "--data", "{root}/tiny.txt", "--out-dir", "{root}/new"], "needs at least block_size + 1"),
    (["train", "--data", "{root}/input.txt", "--out-dir", "{root}/a-file"], "is a file, not a directory"),
    (["train", "--data", "{root}/input.txt", "--out-dir", "/dev/full/run"], "cannot create the run directory"),
    (["train", "--data", "{root}/input.txt", "--out-dir", "{root}/gpt", *GPT], "already holds a run"),
    (["train", "--resume", "--out-dir", "{root}/empty-dir"], "has no last.npz to resume from"),
    (["train", "--resume", "--out-dir", "{root}/s2s"], "resume it with train-seq2seq --resume"),
    (["train", "--resume", "--out-dir", "{root}/gpt", "--max-iters", "3"], "is already at step 4"),
    (["train", "--resume", "--out-dir", "{root}/gpt", "--n-layer", "2"], "--n-layer cannot change"),
    (["train", "--resume", "--overwrite", "--out-dir", "{root}/gpt"], "not allowed with argument"),
    # sample
    (["sample", "--out-dir", "{root}/nowhere"], "run directory not found"),
    (["sample", "--out-dir", "{root}/gpt", "--prompt", "QQ"], "not in the vocabulary: 'Q'"),
    (["sample", "--out-dir", "{root}/gpt", "--prompt", ""], "--prompt must not be empty"),
    (["sample", "--out-dir", "{root}/gpt", "--temperature", "nan"], "temperature"),
    (["sample", "--out-dir", "{root}/gpt", "--temperature", "-1"], "temperature"),
    (["sample", "--out-dir", "{root}/gpt", "--top-k", "0"], "top_k"),
    (["sample", "--out-dir", "{root}/gpt", "--max-new-tokens", "-1"], "argument --max-new-tokens: must be >= 0"),
    (["sample", "--out-dir", "{root}/gpt", "--max-new-tokens", "1e20"], "invalid integer value: '1e20'"),
    (["sample", "--out-dir", "{root}/gpt", "--max-new-tokens", "100000000000000000000"], "max_new_tokens"),
    (["sample", "--out-dir", "{root}/gpt", "--checkpoint", "middle"], "invalid choice: 'middle'"),
    (["sample", "--out-dir", "{root}/s2s"], "holds a seq2seq model; use translate"),
    # train-seq2seq, train-classifier
    (["train-seq2seq", "--out-dir", "{root}/new", "--beam-width", "0"], "--beam-width must be an integer >= 1"),
    (["train-seq2seq", "--out-dir", "{root}/new", "--alpha", "nan"], "--alpha must be a finite number >= 0"),
    (["train-seq2seq", "--out-dir", "{root}/new", "--label-smoothing", "1"], "--label-smoothing must be in"),
    (["train-seq2seq", "--out-dir", "{root}/new", "--n-train", "0"], "argument --n-train: must be >= 1, got 0"),
    (["train-seq2seq", "--out-dir", "{root}/new", "--task", "poems"], "invalid choice: 'poems'"),
    (["train-seq2seq", "--resume", "--out-dir", "{root}/cls"], "resume it with train-classifier --resume"),
    (["train-classifier", "--out-dir", "{root}/new", "--position-shift", "-1"], "--position-shift must be >= 0"),
    (["train-classifier", "--out-dir", "{root}/new", "--n-test", "0"], "argument --n-test: must be >= 1, got 0"),
    (["train-classifier", "--out-dir", "{root}/new", "--pooling", "max"], "invalid choice: 'max'"),
    (["train-classifier", "--out-dir", "{root}/new", "--n-inner", "-4"], "--n-inner must be >= 0"),
    (["train-classifier", "--out-dir", "{root}/new", "--attn-dropout", "-0.1"], "--attn-dropout must be in"),
    # translate, classify
    (["translate", "--out-dir", "{root}/s2s"], "no input"),
    (["translate", "--out-dir", "{root}/s2s", "3 May 2001 ♥"], "not in the vocabulary: '♥'"),
    (["translate", "--out-dir", "{root}/s2s", "1" * 12_000], "12,000 characters"),
    (["translate", "--out-dir", "{root}/gpt", "3 May 2001"], "holds a gpt model; use sample"),
    (["translate", "--out-dir", "{root}/s2s", "--beam-width", "0", "x"], "--beam-width must be an integer >= 1"),
    (["classify", "--out-dir", "{root}/nowhere", "()"], "run directory not found"),
    (["classify", "--out-dir", "{root}/cls", "(x)"], "not in the vocabulary: 'x'"),
    (["classify", "--out-dir", "{root}/s2s", "()"], "holds a seq2seq model; use translate"),
    # prepare and export: outputs that would overwrite their inputs, existing destinations
    (["prepare", "--data", "{root}/input.txt", "--out-dir", "{root}"], "0 contains --data "),
    (["prepare", "--data", "{root}/input.txt", "--out-dir", "{root}/gpt/..", "--overwrite"], "/.. contains --data "),
    (["prepare", "--data", "{root}/input.txt", "--out-dir", "{root}/empty-dir", "--tokenizer", "{root}/empty-dir"],
     "/empty-dir is --tokenizer "),
    (["prepare", "--data", "{root}/gpt/config.json", "--out-dir", "{root}/gpt", "--overwrite"],
     "/gpt contains --data "),
    (["prepare", "--data", "{root}/input.txt", "--out-dir", "{root}/gpt", "--overwrite"],
     "/gpt holds files that are not token files (.lock, best.npz, config.json and 2 more)"),
    (["prepare", "--data", "{root}/input.txt", "--out-dir", "{root}/a-file"], "/a-file is a file, not a directory"),
    (["train", "--init-from", "{root}/gpt", "--out-dir", "{root}/gpt", "--overwrite"], "/gpt is --init-from "),
    (["train", "--data", "{root}/gpt/config.json", "--out-dir", "{root}/gpt", "--overwrite"],
     "/gpt/config.json is the config.json that --out-dir "),
    (["train", "--data", "{root}/empty-dir", "--out-dir", "{root}/empty-dir"], "/empty-dir is --data "),
    (["train", "--resume", "--data", "{root}/gpt/last.npz", "--out-dir", "{root}/gpt"], "is the last.npz that "),
    (["export", "--out-dir", "{root}/gpt", "--format", "hf", "{root}/gpt", "--overwrite"],
     "/gpt is the run directory "),
    (["export", "--out-dir", "{root}/gpt", "--format", "hf", "{root}"], "0 contains the run directory "),
    (["export", "--out-dir", "{root}/gpt", "--format", "llmc", "{root}/gpt/best.npz", "--overwrite"],
     "/best.npz is the run's best.npz "),
    (["export", "--out-dir", "{root}/gpt", "--checkpoint", "last", "--format", "llmc", "{root}/gpt/../gpt/last.npz",
      "--overwrite"], "/last.npz is the run's last.npz "),
    (["export", "--out-dir", "{root}/gpt", "--format", "llmc", "{root}/empty-dir"],
     "/empty-dir is a directory: --format llmc writes one file"),
    (["export", "--out-dir", "{root}/gpt", "--format", "llmc", "{root}/a-file"],
     "/a-file already exists: replace it with --overwrite"),
    (["export", "--out-dir", "{root}/gpt", "--format", "llmc", "/dev/null", "--overwrite"],
     "/dev/null is not a regular file"),
    (["export", "--out-dir", "{root}/gpt", "--format", "llmc", "{root}/nowhere/model.bin"],
     "/model.bin: its directory "),
    (["export", "--out-dir", "{root}/gpt", "--format", "hf", "{root}/a-file"], "/a-file is a file, not a directory"),
    (["export", "--out-dir", "{root}/gpt", "--format", "hf", "{root}/s2s", "--overwrite"],
     "/s2s holds files that are not a Hugging Face export"),
    (["export", "--out-dir", "{root}/nowhere", "--format", "hf", "{root}/new-export"], "run directory not found"),

    # crafted and damaged files
    (["train", "--data", "/dev/zero", "--out-dir", "{root}/new"], "/dev/zero is not a regular file"),
    (["train", "--init-from", "/dev/null", "--out-dir", "{root}/new"], "/dev/null is not a regular file"),
    (["train", "--init-from", "{root}/gpt", "--out-dir", "{root}/new"], "is a training run's directory"),
    (["train", "--init-from", "{root}/gpt/last.npz", "--out-dir", "{root}/new"], "is a training run's checkpoint"),
    (["train", "--init-from", "{root}/empty-dir", "--out-dir", "{root}/new"], "has no model.safetensors"),
    (["train", "--init-from", "{root}/input.txt", "--out-dir", "{root}/new"], "input.txt: magic number 543516788, not llm.c's"),
    (["sample", "--pretrained", "gpt2-xl"], "nothing is downloaded"),
    (["sample", "--pretrained", "{root}/gpt/best.npz"], "give its directory"),
    (["sample", "--pretrained", "{root}/cls"], "give it with --out-dir"),
    (["sample", "--pretrained", "{root}/a-file"], "a-file: the file is 1 bytes"),
    (["sample", "--pretrained", "/dev/zero"], "/dev/zero is not a regular file"),
    (["prepare", "--data", "/dev/zero", "--out-dir", "{root}/new"], "/dev/zero is not a regular file"),
    (["prepare", "--data", "{root}/input.txt", "--tokenizer", "{root}/gpt", "--out-dir", "{root}/new"],
     "holds no tokenizer"),

    # messages that name what the user gave
    (["train-classifier", "--val-frac", "0.2"], "unrecognized arguments: --val-frac 0.2"),
    (train("--max-iter", "5"), "unrecognized arguments: --max-iter"),
    (train("--optimizer", "sgd", "--weight-decay", "0.1"), "--optimizer sgd has no use for --weight-decay"),
    (train("--optimizer", "rmsprop", "--beta2", "0.9"), "--optimizer rmsprop has no use for --beta2"),
    (["sample", "--out-dir", "{root}/gpt/config.json"], "is a file: give the run directory"),
    (["sample", "--out-dir", "{root}/empty-dir"], "holds no best.npz or last.npz"),
    (["sample", "--out-dir", "{root}/empty-dir", "--checkpoint", "last"], "empty-dir holds no last.npz"),
    (["translate", "--out-dir", "{root}/s2s", "3 May 2001", ""], "input 2 of 2 is empty"),

    # local attention
    (train("--attn-window", "-1"), "--attn-window: must be >= 0, got -1"),
    (train("--attn-window", "2.5"), "--attn-window: invalid integer value: '2.5'"),
    (["train-classifier", "--attn-window", "-2"], "--attn-window: must be >= 0, got -2"),
    (["train-seq2seq", "--attn-window", "many"], "--attn-window: invalid integer value: 'many'"),
    (["train", "--resume", "--out-dir", "{root}/gpt", "--attn-window", "4"], "--attn-window cannot change"),
    (["train", "--init-from", "{root}/a-file", "--attn-window", "4", "--out-dir", "{root}/new"],
     "leave out --attn-window"),

    # vision transformer
    (vit("--val-fraction", "1.5"), "--val-fraction must be between 0 and 1, got 1.5"),
    (vit("--patch-size", "3"), "--image-size must be positive multiples of patch_size (3)"),
    (vit("--n-embd", "10", "--n-head", "3"), "--n-embd must be divisible by n_head (3)"),
    (vit("--channels", "2"), "argument --channels: invalid choice: 2"),
    (vit("--augment", "-1"), "argument --augment: must be >= 0"),
    (vit("--gelu", "relu"), "argument --gelu: invalid choice: 'relu'"),
    (vit("--dataset", "digits"), "--data trains on the user's images: --dataset is for the built-in datasets"),
    (vit("--n-train", "50"), "--n-train is for the built-in datasets"),
    (vit("--val-data", "{root}/images.npz", "--val-fraction", "0.2"), "--val-data is the validation split"),
    (vit("--val-data", "{root}/other-labels.npz"), "--val-data has labels the model does not know: ['0', '1', '2'"),
    (["train-vit", "--dataset", "digits", "--n-test", "10"], "--n-test is for --dataset marks"),
    (["train-vit", "--val-data", "{root}/images.npz"], "--val-data is for the user's images: give --data PATH"),
    (["train-vit", "--data", "{root}/missing.npz", "--out-dir", "{root}/new"], "--data not found"),
    (["train-vit", "--data", "{root}/input.txt", "--out-dir", "{root}/new"], "input.txt is not an .npz"),
    (["train-vit", "--data", "{root}/unlabelled.npz", "--out-dir", "{root}/new"], "gives no labels"),
    (["train-vit", "--data", "{root}/empty-dir", "--out-dir", "{root}/new"], "holds no class subfolders"),
    (["train-vit", "--data", "/dev/zero", "--out-dir", "{root}/new"], "/dev/zero is not a regular file"),
    (["train-vit", "--data", "{root}/image-folder", "--out-dir", "{root}/image-folder/run"],
     "/image-folder/run is inside --data "),
    (["train-vit", "--data", "{root}/images.npz", "--out-dir", "{root}/vit"], "already holds a run"),
    (["train-vit", "--resume", "--out-dir", "{root}/vit", "--patch-size", "2"], "--patch-size cannot change"),
    (["train-vit", "--resume", "--out-dir", "{root}/gpt"], "holds a gpt run; resume it with train --resume"),
    (["train", "--resume", "--out-dir", "{root}/vit"], "holds a vit run; resume it with train-vit --resume"),
    (["train-vit", "--init-from", "{root}/empty-dir", "--out-dir", "{root}/new"], "empty-dir has no model.safetensors"),
    (["train-vit", "--init-from", "{root}/vit", "--out-dir", "{root}/new"], "/vit is a training run's directory"),
    (["train-vit", "--init-from", "{root}/nowhere", "--out-dir", "{root}/new"], "nowhere does not exist"),
    (["train-vit", "--init-from", "{root}/empty-dir", "--patch-size", "2"], "--init-from gives the model's shape: "
     "leave out --patch-size"),
    (["classify-image", "--out-dir", "{root}/gpt", "--data", "{root}/images.npz"], "holds a gpt model; use sample"),
    (["classify-image", "--out-dir", "{root}/vit", "--data", "{root}/input.txt"], "input.txt is not an .npz"),
    (["classify-image", "--out-dir", "{root}/vit", "--data", "{root}/other-labels.npz"],
     "--data has labels the model does not know"),
    (["classify-image", "--out-dir", "{root}/empty-dir", "--data", "{root}/images.npz"], "holds no best.npz"),
    (["classify-image", "--out-dir", "{root}/vit"], "the following arguments are required: --data"),
    (["classify", "--out-dir", "{root}/vit", "x"], "holds a vit model; use classify-image"),
    (["export", "--out-dir", "{root}/vit", "--format", "llmc", "{root}/new.bin"],
     "--format llmc holds GPT-2 models only: export a vision transformer with --format hf"),

    # generation weights
    (["sample", "--out-dir", "{root}/gpt", "--weights", "int4"], "argument --weights: invalid choice: 'int4'"),

]


@pytest.mark.parametrize("argv, message", CASES, ids=[f"{a[0]} {' '.join(a[1:])[:60]}" for a, _ in CASES])
def test_a_bad_input_gets_one_clear_line(place, capsys, monkeypatch, argv, message):
    assert_refused([a.format(root=place) for a in argv], message, place, capsys, monkeypatch)


def test_the_readme_states_how_many_cases_there_are():
    stated = re.search(r"(\d+) bad command lines", (Path(__file__).parents[1] / "README.md").read_text("utf-8"))
    assert stated is not None and int(stated.group(1)) == len(CASES)
