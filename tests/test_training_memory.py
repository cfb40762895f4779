"""The memory estimate a training run is checked against before it starts (train/memory.py), set
against what a run allocates: NumPy's allocations, traced, at their peak."""
import tracemalloc

from transformer_jit import GPTConfig, TrainConfig
from transformer_jit.cli import main
from transformer_jit.train.memory import training_memory

# A model whose parameters outweigh its activations and the interpreter's own allocations, so that
# the peak is mostly the estimate's terms.
MODEL = dict(vocab_size=91, block_size=16, n_layer=2, n_head=2, n_embd=768)


def test_the_estimate_covers_a_run_that_writes_checkpoints(tmp_path):
    (tmp_path / "input.txt").write_text("".join(chr(32 + i % 91) for i in range(20_000)))
    tracemalloc.start()
    try:
        assert main(["train", "--data", str(tmp_path / "input.txt"), "--out-dir", str(tmp_path / "run"),
                     "--n-layer", "2", "--n-head", "2", "--n-embd", "768", "--block-size", "16", "--batch-size", "4",
                     "--max-iters", "2", "--eval-interval", "1", "--eval-iters", "1", "--sample-tokens", "0"]) == 0
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    estimate = sum(training_memory(GPTConfig(**MODEL), "gpt", TrainConfig(batch_size=4)))
    assert 0.85 * peak <= estimate <= 1.15 * peak, (estimate, peak)
