"""Perplexity with a sliding context (models/perplexity.py) and the eval command: the recipe on its
own, against transformers' computation of it, and the command's output and refusals."""
import math
import re

import numpy as np
import pytest
from refusals import assert_refused

from transformer_jit import GPT, GPTConfig, evaluate_perplexity, token_byte_lengths
from transformer_jit.cli import main
from transformer_jit.data.tokenizers import BPETokenizer, CharTokenizer
from transformer_jit.models.perplexity import sliding_windows

TEXT = "".join(f"Line {i}: the quick brown fox jumps over the lazy dog.\n" for i in range(60))


def tiny_gpt(vocab_size, block_size=8, seed=3):
    return GPT(GPTConfig(vocab_size=vocab_size, block_size=block_size, n_layer=1, n_head=2, n_embd=16), seed=seed)


def log_probs(model, window):
    """log softmax of the model's logits over one window, in float64: (T, V)."""
    logits = model.forward(np.asarray(window, dtype=np.int64)[None, :])[0][0].astype(np.float64)
    shifted = logits - logits.max(1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(1, keepdims=True))


@pytest.mark.parametrize("n, block, stride", [(7, 4, 2), (50, 8, 3), (64, 8, 8), (65, 8, 8), (9, 8, 1), (3, 8, 4)])
def test_every_token_is_scored_once_with_enough_context(n, block, stride):
    scored = np.zeros(n, dtype=int)
    for begin, end, first in sliding_windows(n, block, stride):
        assert end - begin <= block and begin < first
        scored[first:end] += 1
        assert first - begin >= min(block - stride, first)  # at least block - stride of context, or all before
    if stride < block:
        assert scored[0] == 0 and (scored[1:] == 1).all()
    else:  # disjoint windows: the first token of each has no context in its window
        assert (scored[::block] == 0).all() and scored.sum() == n - len(range(0, n, block))


def test_the_windows_of_a_small_case_by_hand():
    # 7 tokens, windows of 4 every 2: [0, 4) scores 1..3, [2, 6) scores 4..5, [4, 7) scores 6
    assert sliding_windows(7, 4, 2) == [(0, 4, 1), (2, 6, 4), (4, 7, 6)]
    assert sliding_windows(8, 4, 4) == [(0, 4, 1), (4, 8, 5)]


def test_the_loss_is_each_tokens_log_likelihood_from_its_window(rng):
    model = tiny_gpt(5, block_size=4)
    ids = rng.integers(0, 5, size=11)
    expected, count = 0.0, 0
    for begin, end, first in sliding_windows(len(ids), 4, 2):
        lp = log_probs(model, ids[begin:end])
        for j in range(first, end):  # token j is predicted at position j - begin - 1
            expected -= lp[j - begin - 1, ids[j]]
            count += 1
    result = evaluate_perplexity(model, ids, stride=2, batch_size=2)
    assert result.tokens == count == 10
    assert result.loss == pytest.approx(expected / count, rel=1e-6)
    assert result.perplexity == pytest.approx(math.exp(expected / count), rel=1e-6)


def test_stride_block_size_is_the_mean_loss_of_disjoint_windows(rng):
    model = tiny_gpt(7, block_size=8)
    ids = rng.integers(0, 7, size=8 * 5)
    windows = ids.reshape(5, 8).astype(np.int64)
    _, loss = model.forward(windows[:, :-1], windows[:, 1:])  # each window on its own, as in training
    result = evaluate_perplexity(model, ids, stride=8, batch_size=3)
    assert result.tokens == 5 * 7
    assert result.loss == pytest.approx(loss, rel=1e-6)


def test_the_batch_size_does_not_change_the_result(rng):
    model = tiny_gpt(9)
    ids = rng.integers(0, 9, size=101)
    one = evaluate_perplexity(model, ids, stride=3, batch_size=1)
    many = evaluate_perplexity(model, ids, stride=3, batch_size=16)
    assert one.tokens == many.tokens == 100
    assert many.loss == pytest.approx(one.loss, rel=1e-6)


def test_bits_per_byte_count_the_utf8_bytes_of_the_scored_tokens():
    tokenizer = CharTokenizer.from_text("abé")  # é is two bytes in UTF-8
    assert token_byte_lengths(tokenizer).tolist() == [1, 1, 2]
    ids = tokenizer.encode("ééaabé")
    result = evaluate_perplexity(tiny_gpt(3), ids, stride=4, byte_lengths=token_byte_lengths(tokenizer))
    assert result.bytes == len("éaabé".encode("utf-8"))  # the first token is not scored
    assert result.bits_per_byte == pytest.approx(result.nll / math.log(2) / 7)
    bpe = BPETokenizer.train(TEXT, 260, progress=False)
    lengths = token_byte_lengths(bpe)
    assert lengths[:256].tolist() == [1] * 256 and lengths[256:].min() >= 2


@pytest.mark.parametrize("kwargs, ids, message", [
    ({"stride": 0}, [1, 2, 3], "stride must be between 1 and the model's block_size (8), got 0"),
    ({"stride": 9}, [1, 2, 3], "got 9"),
    ({"batch_size": 0}, [1, 2, 3], "batch_size must be >= 1"),
    ({}, [1], "the text has 1 token(s)"),
    ({}, [1, 2, 5], "token id 5, outside the model's vocabulary of 5"),
    ({}, [[1, 2]], "1-D array of integer token ids"),
])
def test_bad_arguments_are_refused(kwargs, ids, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        evaluate_perplexity(tiny_gpt(5), np.array(ids), **kwargs)


# -- the eval command -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def place(tmp_path_factory):
    """A small character-level run, its text, token files of that text, and a tiny GPT-2 directory."""
    root = tmp_path_factory.mktemp("eval")
    (root / "input.txt").write_text(TEXT)
    (root / "other.txt").write_text("ZZZ" * 50)
    (root / "one.txt").write_text("a")
    (root / "empty-dir").mkdir()
    assert main(["train", "--data", str(root / "input.txt"), "--out-dir", str(root / "run"), "--max-iters", "4",
                 "--n-layer", "1", "--n-embd", "16", "--n-head", "2", "--block-size", "16", "--batch-size", "4",
                 "--eval-interval", "4", "--eval-iters", "1", "--sample-tokens", "0"]) == 0
    assert main(["prepare", "--data", str(root / "input.txt"), "--out-dir", str(root / "tokens")]) == 0
    assert main(["prepare", "--data", str(root / "other.txt"), "--out-dir", str(root / "other-tokens")]) == 0
    tokenizer = BPETokenizer.train(TEXT, 300, progress=False)
    model = GPT(GPTConfig(vocab_size=tokenizer.vocab_size, block_size=32, n_layer=2, n_head=2, n_embd=32), seed=5)
    model.save_pretrained(root / "gpt2")
    tokenizer.save_pretrained(root / "gpt2")
    return root


def reported(out, name):
    return float(re.search(rf"^{name} ([0-9.]+)", out, re.M).group(1))


def test_eval_prints_loss_perplexity_and_bits_per_byte(place, capsys):
    from transformer_jit.train.saved_model import load_model
    assert main(["eval", "--out-dir", str(place / "run"), "--data", str(place / "input.txt"), "--stride", "5"]) == 0
    out = capsys.readouterr().out
    model, tokenizer, _ = load_model(place / "run" / "best.npz")
    expected = evaluate_perplexity(model, tokenizer.encode(TEXT), stride=5)
    assert reported(out, "loss") == pytest.approx(expected.loss, abs=1e-6)
    shown = re.search(r"^perplexity ([0-9.]+)$", out, re.M).group(1)
    assert len(shown.replace(".", "").lstrip("0")) >= 6  # six significant digits
    assert float(shown) == pytest.approx(expected.perplexity, rel=1e-5)
    assert reported(out, "bits per byte") == pytest.approx(expected.loss / math.log(2), rel=1e-5)  # ASCII
    assert f"{len(TEXT) - 1:,} tokens" in out


def test_eval_reads_a_split_of_token_files(place, capsys):
    assert main(["eval", "--out-dir", str(place / "run"), "--data", str(place / "tokens")]) == 0
    val = capsys.readouterr().out
    assert "val.bin" in val
    assert main(["eval", "--out-dir", str(place / "run"), "--data", str(place / "tokens"), "--split", "train"]) == 0
    train = capsys.readouterr().out
    assert "train.bin" in train and reported(train, "loss") != reported(val, "loss")


@pytest.mark.parametrize("argv, message", [
    (["--data", "{root}/input.txt", "--stride", "0"], "argument --stride: must be >= 1, got 0"),
    (["--data", "{root}/input.txt", "--stride", "17"], "--stride 17 is longer than the model's block_size (16)"),
    (["--data", "{root}/input.txt", "--batch-size", "0"], "argument --batch-size: must be >= 1"),
    (["--data", "{root}/missing.txt"], "data file not found"),
    (["--data", "{root}/other.txt"], "other.txt: characters not in the vocabulary: 'Z'"),
    (["--data", "{root}/one.txt"], "one.txt holds 1 token(s): perplexity needs at least 2"),
    (["--data", "{root}/empty-dir"], "empty-dir is a directory without a finished set of token files"),
    (["--data", "{root}/other-tokens"], "other-tokens was made with another tokenizer than the model's"),
    (["--data", "{root}/tokens", "--split", "test"], "invalid choice: 'test'"),
    (["--out-dir", "{root}/nowhere", "--data", "{root}/input.txt"], "run directory not found"),
])
def test_eval_refuses_bad_inputs_with_one_line(place, capsys, monkeypatch, argv, message):
    argv = ["eval", "--out-dir", str(place / "run"), *[a.format(root=place) for a in argv]]
    assert_refused(argv, message, place, capsys, monkeypatch)


# -- against transformers ---------------------------------------------------------------------------

def transformers_perplexity(directory, ids, stride):
    """Hugging Face's sliding-window recipe, run by transformers' GPT2LMHeadModel: each window's
    targets before the previous window's end are masked (-100); the scored tokens' negative
    log-likelihoods are summed, then divided by their count."""
    torch = pytest.importorskip("torch", reason="torch (bench extra) is not installed")
    transformers = pytest.importorskip("transformers", reason="transformers (bench extra) is not installed")
    model = transformers.GPT2LMHeadModel.from_pretrained(directory).eval()
    input_ids = torch.tensor(np.asarray(ids, dtype=np.int64))[None, :]
    max_length, seq_len = model.config.n_positions, input_ids.size(1)
    nll_sum, n_tokens, prev_end_loc = 0.0, 0, 0
    for begin_loc in range(0, seq_len, stride):
        end_loc = min(begin_loc + max_length, seq_len)
        trg_len = end_loc - prev_end_loc
        window = input_ids[:, begin_loc:end_loc]
        target_ids = window.clone()
        target_ids[:, :-trg_len] = -100
        with torch.no_grad():
            logits = model(window).logits.double()
        labels = target_ids[:, 1:]  # the model's own label shift: position t predicts token t + 1
        nll_sum += torch.nn.functional.cross_entropy(logits[0, :-1], labels[0], ignore_index=-100,
                                                     reduction="sum").item()
        n_tokens += int((labels != -100).sum())
        prev_end_loc = end_loc
        if end_loc == seq_len:
            break
    return nll_sum / n_tokens, n_tokens


@pytest.mark.interop
@pytest.mark.parametrize("stride", [32, 12, 5])
def test_equals_transformers_on_the_same_model_and_text(place, stride):
    ids = BPETokenizer.from_pretrained(place / "gpt2").encode(TEXT)
    loss, count = transformers_perplexity(place / "gpt2", ids, stride)
    ours = evaluate_perplexity(GPT.from_pretrained(place / "gpt2"), ids, stride=stride)
    assert ours.tokens == count
    assert ours.perplexity == pytest.approx(math.exp(loss), rel=1e-5)
    assert ours.loss == pytest.approx(loss, rel=1e-5)


@pytest.mark.interop
def test_the_eval_command_on_pretrained_weights_equals_transformers(place, capsys):
    tokenizer = BPETokenizer.from_pretrained(place / "gpt2")
    ids = tokenizer.encode(TEXT)
    loss, count = transformers_perplexity(place / "gpt2", ids, 8)
    assert main(["eval", "--pretrained", str(place / "gpt2"), "--data", str(place / "input.txt"),
                 "--stride", "8"]) == 0
    out = capsys.readouterr().out
    assert reported(out, "perplexity") == pytest.approx(math.exp(loss), rel=1e-5)
    scored_bytes = len(TEXT) - len(tokenizer.token_bytes(int(ids[0])))  # every token but the first
    assert reported(out, "bits per byte") == pytest.approx(loss * count / math.log(2) / scored_bytes, rel=1e-5)
