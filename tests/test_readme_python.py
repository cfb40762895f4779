"""Every ```python block of README.md runs as written, each in a fresh namespace, in a directory
holding small versions of the files and runs the blocks name: input.txt, the runs out/ and
shakespeare/ (trained here for two steps), a GPT-2-shaped directory gpt2/ with its tokenizer and
the same model as an llm.c file, gpt2_124M.bin. The block that calls the server with OpenAI's
client runs against the run out/ served on a free port (its address put in place of 8000's)."""
import re
import threading
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path

import pytest

from transformer_jit import GPT, BPETokenizer, GPTConfig, default_corpus, load
from transformer_jit.cli import main

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```", README.read_text(encoding="utf-8"), re.S | re.M)
SERVER_URL = "http://127.0.0.1:8000"
TINY_RUN = ["--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--block-size", "64", "--max-iters", "2",
            "--batch-size", "2", "--eval-interval", "2", "--eval-iters", "1", "--sample-tokens", "0"]


@pytest.fixture(scope="module")
def place(tmp_path_factory):
    root = tmp_path_factory.mktemp("readme")
    text = default_corpus()  # every character the README's prompts use
    (root / "input.txt").write_text(text, encoding="utf-8")
    for run in ("out", "shakespeare"):
        assert main(["train", "--data", str(root / "input.txt"), "--out-dir", str(root / run), *TINY_RUN]) == 0
    tokenizer = BPETokenizer.train(text[:20_000], 300, progress=False)
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
    monkeypatch.chdir(place)
    with serving(place / "out") if SERVER_URL in code else nullcontext() as url:
        if url is not None:
            code = code.replace(SERVER_URL, url)
        exec(compile(code, f"README.md, python block {number + 1}", "exec"), {"__name__": "readme"})


@contextmanager
def serving(run):
    """The run `run` served (as `transformer-jit serve --out-dir run` would) on a free loopback port;
    yields its address."""
    from transformer_jit.serve.server import Server, open_socket

    loaded = load(run)
    server = Server(loaded.model, loaded.tokenizer, run.name, open_socket("127.0.0.1", 0), 1024, 4, 1 << 20,
                    log_level="warning")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.uvicorn.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.01)
    try:
        yield server.url
    finally:
        server.uvicorn.should_exit = True
        thread.join(60)
