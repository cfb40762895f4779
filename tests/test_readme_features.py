"""What the README promises a user, each checked end to end on tiny sizes: the built-in corpus, the
help, the best checkpoint, early stopping, exit statuses and --debug, sampling options, token files
and where compiled code is cached."""
import csv
import hashlib
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from transformer_jit import default_corpus
from transformer_jit.cli import main
from transformer_jit.data import prepare as prepare_module
from transformer_jit.data.prepare import prepare
from transformer_jit.data.token_files import open_token_dir
from transformer_jit.data.tokenizers import BPETokenizer
from transformer_jit.train.checkpoint import load_checkpoint
from transformer_jit.train.saved_model import load_model
from transformer_jit.train.trainer import TrainingDiverged

TINY = ["--n-layer", "1", "--n-embd", "16", "--n-head", "2", "--block-size", "8", "--batch-size", "4",
        "--eval-iters", "1"]


def run_python(*args, cwd, env=None):
    return subprocess.run([sys.executable, *args], cwd=cwd, env={**os.environ, **(env or {})},
                          capture_output=True, text=True, timeout=600)


def test_train_without_data_uses_the_built_in_corpus_and_prints_a_sample(tmp_path, capsys):
    assert main(["train", "--out-dir", str(tmp_path / "run"), "--max-iters", "4", "--eval-interval", "2",
                 "--sample-tokens", "20", *TINY]) == 0
    out = capsys.readouterr().out
    corpus = default_corpus()
    vocabulary = len(set(corpus))
    assert f"data: built-in corpus ({len(corpus):,} characters, vocabulary {vocabulary} characters)" in out
    model, tokenizer, meta = load_model(tmp_path / "run" / "last.npz")
    assert tokenizer.vocab_size == vocabulary and meta["step"] == 4 and meta["train_config"]["data"] == ""
    sample = out.split("--- sample ---\n", 1)[1]
    assert len(sample) == len("\n") + 20 + len("\n")  # the prompt, 20 characters, print's newline


def test_train_help_gives_every_option_with_its_default(capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["train", "--help"])
    assert stopped.value.code == 0
    options = [block for block in re.split(r"\n(?=  -)", capsys.readouterr().out) if block.startswith("  --")]
    takes_value = [block for block in options if re.match(r"  --[a-z-]+ ([A-Z_]+|\{)", block)]
    assert len(takes_value) >= 25
    assert [block.split()[0] for block in takes_value if "(default" not in block] == []


def test_best_npz_holds_the_lowest_validation_loss_of_metrics_csv(tmp_path, capsys):
    # a learning rate high enough that validation gets worse again before the end
    assert main(["train", "--out-dir", str(tmp_path), "--max-iters", "24", "--eval-interval", "3", "--lr", "0.1",
                 "--warmup-iters", "0", "--min-lr", "0.1", "--sample-tokens", "0", *TINY]) == 0
    with open(tmp_path / "metrics.csv") as f:
        rows = [(int(r["step"]), float(r["val_loss"])) for r in csv.DictReader(f)]
    best_step, best_loss = min(rows, key=lambda row: row[1])
    assert best_step != rows[-1][0], "the last evaluation is the best: this run cannot tell best from last"
    _, meta = load_checkpoint(tmp_path / "best.npz", arrays=False)
    assert meta["step"] == best_step and meta["best_val_loss"] == pytest.approx(best_loss, abs=1e-6)
    assert load_checkpoint(tmp_path / "last.npz", arrays=False)[1]["step"] == rows[-1][0]


def test_patience_stops_training_after_that_many_evaluations_without_improvement(tmp_path, capsys):
    # learning rate 0: the first evaluation is the best there will be
    assert main(["train", "--out-dir", str(tmp_path), "--max-iters", "100", "--eval-interval", "2", "--patience", "2",
                 "--lr", "0", "--min-lr", "0", "--sample-tokens", "0", *TINY]) == 0
    assert "early stop: no validation improvement in 2 evaluations" in capsys.readouterr().out
    assert load_checkpoint(tmp_path / "last.npz", arrays=False)[1]["step"] == 6
    assert load_checkpoint(tmp_path / "best.npz", arrays=False)[1]["step"] == 2


DIVERGING = ["train", "--max-iters", "20", "--eval-interval", "10", "--lr", "1e6", "--warmup-iters", "0",
             "--grad-clip", "0", "--sample-tokens", "0", *TINY]


def test_a_failure_while_running_exits_1_in_one_line_and_debug_shows_the_traceback(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("TRANSFORMER_JIT_DEBUG", raising=False)
    assert main([*DIVERGING, "--out-dir", str(tmp_path / "quiet")]) == 1
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "diverged at step" in err and "Traceback" not in err, err
    assert main(["sample", "--out-dir", str(tmp_path / "nowhere")]) == 2  # a bad input: 2
    err = capsys.readouterr().err
    assert err == f"error: run directory not found: {tmp_path / 'nowhere'}\n", err

    monkeypatch.setenv("TRANSFORMER_JIT_DEBUG", "1")
    with pytest.raises(TrainingDiverged):
        main([*DIVERGING, "--out-dir", str(tmp_path / "env")])
    monkeypatch.delenv("TRANSFORMER_JIT_DEBUG")
    loud = run_python("-m", "transformer_jit", *DIVERGING, "--out-dir", "loud", "--debug", cwd=tmp_path)
    assert loud.returncode == 1
    assert "Traceback (most recent call last)" in loud.stderr and "TrainingDiverged: " in loud.stderr


@pytest.fixture(scope="module")
def bpe_run(tmp_path_factory):
    """A tiny GPT trained a few steps on text with <|endoftext|> between its documents, BPE tokens."""
    root = tmp_path_factory.mktemp("bpe")
    text = "".join(f"Note {i}: the fox jumps over the dog.<|endoftext|>" for i in range(150))
    (root / "input.txt").write_text(text)
    assert main(["train", "--data", str(root / "input.txt"), "--tokenizer", "bpe", "--vocab-size", "270",
                 "--out-dir", str(root / "run"), "--max-iters", "4", "--eval-interval", "2", "--sample-tokens", "0",
                 *TINY]) == 0
    return root / "run"


def test_sample_stops_at_endoftext_and_applies_top_p_as_generate_does(bpe_run, capsys):
    model, tokenizer, _ = load_model(bpe_run / "best.npz")
    prompt, n, eot = "Note 3:", 300, tokenizer.eot_token

    def generated(seed, top_p, stop_token=eot):
        return model.generate(tokenizer.encode(prompt)[None], n, temperature=1.0, top_p=top_p, seed=seed,
                              stop_token=stop_token)[0]

    # a seed whose draw reaches <|endoftext|>, and at which the nucleus changes the draw
    seed = next(s for s in range(50) if len(generated(s, 0.9)) < len(tokenizer.encode(prompt)) + n
                and not np.array_equal(generated(s, 0.9, None), generated(s, None, None)))
    expected = generated(seed, 0.9)
    assert expected[-1] == eot and not (expected[:-1] == eot).any()
    capsys.readouterr()
    assert main(["sample", "--out-dir", str(bpe_run), "--prompt", prompt, "--max-new-tokens", str(n),
                 "--temperature", "1", "--top-p", "0.9", "--seed", str(seed)]) == 0
    out = capsys.readouterr().out
    assert out == tokenizer.decode(expected) + "\n"
    assert out.endswith("<|endoftext|>\n")


def test_a_vocabulary_past_65536_ids_writes_uint32_token_files(tmp_path):
    # a newline and 65,536 other characters (no surrogates), the last often: one id past what uint16 holds
    chars = [chr(c) for c in range(0x100, 0x100 + 65536 + 2048) if not 0xD800 <= c <= 0xDFFF][:65536]
    lines = ["".join(chars[i:i + 1000]) for i in range(0, len(chars), 1000)] + [chars[-1] * 1000] * 60
    text = "\n".join(lines) + "\n"
    (tmp_path / "wide.txt").write_text(text, encoding="utf-8")
    meta = prepare(tmp_path / "wide.txt", "char", tmp_path / "data", progress=False)
    assert meta["dtype"] == "uint32" and meta["vocab_size"] == 65537
    ids = {s: np.fromfile(tmp_path / "data" / f"{s}.bin", dtype="<u4") for s in ("train", "val")}
    assert max(ids["train"].max(), ids["val"].max()) == 65536
    data, tokenizer, _ = open_token_dir(tmp_path / "data", 8)
    assert tokenizer.decode(ids["train"]) + tokenizer.decode(ids["val"]) == text
    x, y = data.batch("train", 64, np.random.default_rng(0))
    assert x.max() > 65535 and np.array_equal(x[:, 1:], y[:, :-1])


def test_meta_json_holds_the_sha256_of_the_source(tmp_path, monkeypatch):
    text = "".join(f"line {i}: caf\u00e9 \u2713\n" for i in range(500))
    (tmp_path / "corpus.txt").write_text(text, encoding="utf-8")
    monkeypatch.setattr(prepare_module, "CHUNK", 1000)  # the hash runs over every chunk, in order
    prepare(tmp_path / "corpus.txt", "char", tmp_path / "data", progress=False)
    source = json.loads((tmp_path / "data" / "meta.json").read_text())["source"]
    raw = text.encode("utf-8")
    assert source == {"name": "corpus.txt", "bytes": len(raw), "sha256": hashlib.sha256(raw).hexdigest()}


def test_a_new_bpe_is_trained_on_the_first_bpe_sample_bytes_only(tmp_path, monkeypatch):
    head = "".join(f"alpha beta gamma {i}\n" for i in range(100))
    tail = "".join(f"zyxw vutsr qponm {i}\n" for i in range(400))
    (tmp_path / "corpus.txt").write_text(head + tail, encoding="utf-8")
    cap = len(head) - 10  # inside the head's last line (20 bytes): the sample runs on to its end
    monkeypatch.setattr(prepare_module, "BPE_SAMPLE", cap)
    prepare(tmp_path / "corpus.txt", "bpe", tmp_path / "data", vocab_size=300, progress=False)
    trained = json.loads((tmp_path / "data" / "tokenizer.json").read_text())
    assert trained == BPETokenizer.train(head, 300, progress=False).to_dict()
    assert trained != BPETokenizer.train(head + tail, 300, progress=False).to_dict()


def test_numba_cache_dir_receives_the_compiled_kernels_and_serves_the_next_process(tmp_path):
    cache = tmp_path / "cache"
    code = ("import numpy as np\nfrom transformer_jit import kernels as K\n"
            "K.add_(np.ones(4), np.ones(4))\n"
            "print(K.add_.stats.cache_hits and 'hit' or 'compiled')\n")
    first = run_python("-c", code, cwd=tmp_path, env={"NUMBA_CACHE_DIR": str(cache)})
    assert first.returncode == 0 and first.stdout == "compiled\n", first.stderr
    assert any(cache.rglob("*.nbi")) and any(cache.rglob("*.nbc"))
    second = run_python("-c", code, cwd=tmp_path, env={"NUMBA_CACHE_DIR": str(cache)})
    assert second.returncode == 0 and second.stdout == "hit\n", second.stderr
