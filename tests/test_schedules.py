"""Learning-rate schedules against known values: the paper's (noam) and warm-up + cosine, as the Trainer uses them."""
import numpy as np
import pytest

from transformer_jit import GPT, GPTConfig, TextDataset, TrainConfig, Trainer, noam, warmup_cosine, warmup_rsqrt


def test_noam_gives_the_papers_learning_rates():
    # d_model 512 and 4000 warm-up steps (paper, 5.3): the rate climbs linearly to
    # 1 / sqrt(512 * 4000) = 6.988e-4 at step 4000, then falls as 1 / sqrt(step).
    d, w = 512, 4000
    assert noam(1, d, w) == pytest.approx(1.7469e-7, rel=1e-4)
    assert noam(400, d, w) == pytest.approx(6.9877e-5, rel=1e-4)
    assert noam(4000, d, w) == pytest.approx(6.9877e-4, rel=1e-4)
    assert noam(16_000, d, w) == pytest.approx(3.4939e-4, rel=1e-4)
    assert noam(100_000, d, w) == pytest.approx(1.3975e-4, rel=1e-4)
    assert max(range(1, 3 * w), key=lambda s: noam(s, d, w)) == w
    with pytest.raises(ValueError):
        noam(0, d, w)


def test_warmup_rsqrt_peaks_at_max_lr_after_warmup():
    # 0-based: step 99 is the paper's step 100, the end of a 100-step warm-up
    assert warmup_rsqrt(0, 3e-3, 100) == pytest.approx(3e-5)
    assert warmup_rsqrt(49, 3e-3, 100) == pytest.approx(1.5e-3)
    assert warmup_rsqrt(99, 3e-3, 100) == pytest.approx(3e-3)
    assert warmup_rsqrt(399, 3e-3, 100) == pytest.approx(1.5e-3)  # 4x the warm-up: half the peak
    assert warmup_rsqrt(3999, (512 * 4000) ** -0.5, 4000) == pytest.approx(6.9877e-4, rel=1e-4)


def test_warmup_cosine_values():
    lr = lambda step: warmup_cosine(step, 1e-3, 1e-4, 10, 110)  # noqa: E731
    assert lr(0) == pytest.approx(1e-4)      # warm-up: (step + 1) / 10 of the peak
    assert lr(9) == pytest.approx(1e-3)      # the peak
    assert lr(10) == pytest.approx(1e-3)     # cosine starts at the peak
    assert lr(60) == pytest.approx(5.5e-4)   # half-way: the mean of peak and floor
    assert lr(110) == pytest.approx(1e-4) and lr(500) == pytest.approx(1e-4)


@pytest.mark.parametrize("schedule, expected", [
    ("cosine", [5e-4, 1e-3, 5.5e-4, 1e-4]),              # warm-up over 2 steps, cosine from step 2 to 12
    ("noam", [5e-4, 1e-3, 5e-4, 1e-3 * (2 / 13) ** 0.5]),  # peak at step 1, then 1e-3 sqrt(2 / (step + 1))
])
def test_trainer_follows_the_chosen_schedule(schedule, expected):
    config = TrainConfig(batch_size=2, max_iters=12, lr=1e-3, min_lr=1e-4, warmup_iters=2, schedule=schedule,
                         eval_iters=1)
    model = GPT(GPTConfig(vocab_size=5, block_size=4, n_layer=1, n_head=1, n_embd=4))
    trainer = Trainer(model, TextDataset(np.arange(100) % 5, 4), config)
    assert [trainer.learning_rate(step) for step in (0, 1, 7, 12)] == pytest.approx(expected)
    with pytest.raises(ValueError, match="schedule must be one of"):
        TrainConfig(schedule="linear")
