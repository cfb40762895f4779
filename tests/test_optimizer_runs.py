"""Optimizers in use: which parameters weight decay reaches, and `--optimizer NAME` on the command
line, its state saved in the checkpoint and a resume that continues bit for bit."""
import numpy as np
import pytest

from transformer_jit import (GPT, ClassifierConfig, EncoderClassifier, GPTConfig, Seq2SeqConfig,
                             Seq2SeqTransformer)
from transformer_jit.cli import main
from transformer_jit.train.checkpoint import load_checkpoint
from transformer_jit.train.optim import AdamW

TEXT = "the quick brown fox jumps over the lazy dog.\n" * 40
GPT_OPTIONS = ["--n-layer", "1", "--n-embd", "16", "--n-head", "2", "--block-size", "8", "--batch-size", "4",
               "--eval-interval", "2", "--eval-iters", "1", "--sample-tokens", "0", "--warmup-iters", "1",
               "--lr-decay-iters", "8", "--dropout", "0.1"]
# The state each optimizer keeps beside the weights, as the checkpoint names it.
STATE = {"sgd": [], "momentum": ["velocity"], "adagrad": ["sum_sq"], "rmsprop": ["sq_avg"], "adam": ["m", "v"],
         "adamw": ["m", "v"]}


def exempt_from_decay(name):
    """As documented: biases and layer-norm gains (GPT-2's ln_*, the paper-style *norm) do not decay."""
    part = name.split(".")[-2]
    return name.endswith(".bias") or part.startswith("ln_") or part.endswith("norm")


@pytest.mark.parametrize("build", [
    lambda: GPT(GPTConfig(vocab_size=11, block_size=6, n_layer=2, n_head=2, n_embd=8, positional="learned")),
    lambda: EncoderClassifier(ClassifierConfig(vocab_size=7, max_len=5, n_layer=2, n_head=2, n_embd=8, n_classes=3,
                                               positional="learned")),
    lambda: Seq2SeqTransformer(Seq2SeqConfig(n_encoder_layer=1, n_decoder_layer=1, n_head=2, n_embd=8,
                                             tie_weights=False)),
], ids=["gpt", "classifier", "seq2seq"])
def test_weight_decay_reaches_matrices_and_embeddings_only(build):
    """With zero gradients an AdamW step is its decay alone: w (1 - lr wd) where it applies."""
    model = build()
    model.params[:] = np.random.default_rng(0).normal(0.0, 1.0, model.params.shape)  # no bias left at 0
    before = model.state_dict()
    model.zero_grad()
    AdamW(model, lr=0.1, weight_decay=0.5).step()
    after = model.state_dict()
    factor = model.dtype.type(1 - 0.1 * 0.5)
    exempt = {name for name in before if exempt_from_decay(name)}
    # the matrices and embeddings (learned positions, an untied generator) decay; vectors do not
    assert {before[name].ndim for name in exempt} == {1}
    assert {before[name].ndim for name in set(before) - exempt} == {2}
    for name in before:
        expected = before[name] if name in exempt else before[name] * factor
        np.testing.assert_array_equal(after[name], expected, err_msg=name)


@pytest.mark.parametrize("name", list(STATE))
def test_optimizer_option_saves_its_state_and_resumes_exactly(name, tmp_path):
    """4 steps, then a resume to 8 (which keeps the saved --optimizer), must end bit for bit where
    one run of 8 steps ends: weights and optimizer state."""
    (tmp_path / "input.txt").write_text(TEXT)
    data = ["--data", str(tmp_path / "input.txt"), "--optimizer", name, *GPT_OPTIONS]
    resumed, straight = tmp_path / "resumed", tmp_path / "straight"
    assert main(["train", *data, "--out-dir", str(resumed), "--max-iters", "4"]) == 0
    arrays, meta = load_checkpoint(resumed / "last.npz")
    assert meta["train_config"]["optimizer"] == name
    state = {key for key in arrays if key.startswith("optimizer.")}
    assert state == {f"optimizer.{buffer}" for buffer in STATE[name]} | {"optimizer.step_count"}
    assert arrays["optimizer.step_count"] == 4
    assert all(np.abs(arrays[f"optimizer.{buffer}"]).max() > 0 for buffer in STATE[name])

    assert main(["train", "--resume", "--out-dir", str(resumed), "--max-iters", "8"]) == 0
    assert main(["train", *data, "--out-dir", str(straight), "--max-iters", "8"]) == 0
    ours, meta = load_checkpoint(resumed / "last.npz")
    theirs, _ = load_checkpoint(straight / "last.npz")
    assert meta["step"] == 8 and sorted(ours) == sorted(theirs)
    for key in theirs:
        np.testing.assert_array_equal(ours[key], theirs[key], err_msg=key)
