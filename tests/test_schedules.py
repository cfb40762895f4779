"""Learning-rate schedules: the paper's (noam) next to warm-up + cosine, and choosing one in TrainConfig."""
import math

import pytest

from transformer_jit import TrainConfig, noam, warmup_rsqrt


def test_noam_is_the_papers_formula():
    d, w = 512, 4000
    for step in (1, 10, 1000, 3999, 4000, 4001, 10_000, 100_000):
        assert noam(step, d, w) == pytest.approx(d ** -0.5 * min(step ** -0.5, step * w ** -1.5), rel=1e-12)
    # linear warm-up, peak exactly at step = warmup (7.0e-4 for the paper's setting), then 1/sqrt(step)
    assert noam(2000, d, w) == pytest.approx(noam(1000, d, w) * 2)
    assert noam(w, d, w) == pytest.approx(1 / math.sqrt(d * w)) and 6.9e-4 < noam(w, d, w) < 7.0e-4
    assert max(range(1, 3 * w), key=lambda s: noam(s, d, w)) == w
    assert noam(4 * w, d, w) == pytest.approx(noam(w, d, w) / 2)
    with pytest.raises(ValueError):
        noam(0, d, w)


def test_warmup_rsqrt_is_noam_rescaled_to_a_peak_lr():
    w = 100
    assert warmup_rsqrt(w - 1, 3e-3, w) == pytest.approx(3e-3)  # 0-based step w-1 is the paper's step w
    for step in (0, 17, 99, 250, 5000):
        assert warmup_rsqrt(step, 3e-3, w) == pytest.approx(3e-3 * noam(step + 1, 64, w) / noam(w, 64, w))
    # max_lr = (d_model * warmup)^-0.5 gives the paper's numbers exactly
    assert warmup_rsqrt(41, (512 * w) ** -0.5, w) == pytest.approx(noam(42, 512, w))


def test_train_config_chooses_the_schedule_and_old_configs_still_load():
    assert TrainConfig().schedule == "cosine"
    assert TrainConfig(schedule="noam").schedule == "noam"
    with pytest.raises(ValueError, match="unknown schedule"):
        TrainConfig(schedule="linear")
    with pytest.raises(ValueError, match="warmup_iters >= 1"):
        TrainConfig(schedule="noam", warmup_iters=0)
    saved_before_schedules = {"batch_size": 4, "max_iters": 10, "lr": 1e-3, "out_dir": "x"}
    assert TrainConfig.from_dict(saved_before_schedules).schedule == "cosine"
