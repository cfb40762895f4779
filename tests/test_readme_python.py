"""Every ```python block of README.md runs as written, each in a fresh namespace, in a directory
holding small versions of the files and runs the blocks name: input.txt, the runs out/ and
shakespeare/ (trained here for two steps), a GPT-2-shaped directory gpt2/ with its tokenizer and
the same model as an llm.c file, gpt2_124M.bin."""
import re
from pathlib import Path

import pytest

from transformer_jit import GPT, BPETokenizer, GPTConfig, default_corpus
from transformer_jit.cli import main

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```", README.read_text(encoding="utf-8"), re.S | re.M)
# Blocks that need what a test cannot make here, each found by a line it contains, and why.
NEEDS = {"from openai import OpenAI": "talks to a running `transformer-jit serve` over HTTP (tests/test_serve.py "
                                      "runs the server with this client)"}
TINY_RUN = ["--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--block-size", "64", "--max-iters", "2",
            "--batch-size", "2", "--eval-interval", "2", "--eval-iters", "1", "--sample-tokens", "0"]


@pytest.fixture(scope="module")
def place(tmp_path_factory):
    root = tmp_path_factory.mktemp("readme")
    text = default_corpus()[:20_000]
    (root / "input.txt").write_text(text, encoding="utf-8")
    for run in ("out", "shakespeare"):
        assert main(["train", "--data", str(root / "input.txt"), "--out-dir", str(root / run), *TINY_RUN]) == 0
    tokenizer = BPETokenizer.train(text, 300, progress=False)
    model = GPT(GPTConfig(vocab_size=tokenizer.vocab_size, block_size=256, n_layer=1, n_head=2, n_embd=16))
    model.save_pretrained(root / "gpt2")
    tokenizer.save_pretrained(root / "gpt2")
    model.save_llmc(root / "gpt2_124M.bin")
    return root


def test_the_readme_has_python_blocks():
    assert len(BLOCKS) >= 6


@pytest.mark.parametrize("number", range(len(BLOCKS)))
def test_a_readme_python_block_runs_as_written(place, monkeypatch, number):
    code = BLOCKS[number]
    for line, reason in NEEDS.items():
        if line in code:
            pytest.skip(reason)
    monkeypatch.chdir(place)
    exec(compile(code, f"README.md, python block {number + 1}", "exec"), {"__name__": "readme"})
