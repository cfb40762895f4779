"""Learning-rate schedules: functions of the 0-based step (noam: of the paper's 1-based step)."""
import math


def warmup_cosine(step, max_lr, min_lr, warmup_steps, decay_steps):
    """Linear warm-up from 0 to max_lr over warmup_steps, then cosine decay to min_lr at decay_steps."""
    if step < warmup_steps:
        return max_lr * (step + 1) / warmup_steps
    if step >= decay_steps:
        return min_lr
    progress = (step - warmup_steps) / max(1, decay_steps - warmup_steps)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (max_lr - min_lr)


def noam(step, d_model, warmup_steps):
    """The learning rate of "Attention Is All You Need" (5.3), for step = 1, 2, ...:

        lr = d_model^-0.5 * min(step^-0.5, step * warmup^-1.5)

    It rises linearly for `warmup_steps` steps, peaks at step = warmup (both terms equal
    warmup^-0.5 there), then decays as 1/sqrt(step). The paper used d_model = 512, warmup = 4000,
    a peak of about 7e-4.
    """
    if step < 1 or warmup_steps < 1:
        raise ValueError(f"noam needs step >= 1 and warmup_steps >= 1, got {step} and {warmup_steps}")
    return d_model ** -0.5 * min(step ** -0.5, step * warmup_steps ** -1.5)


def warmup_rsqrt(step, max_lr, warmup_steps):
    """The paper's schedule (see `noam`) rescaled to peak at max_lr, for 0-based steps like
    warmup_cosine: lr(step) = max_lr * noam(step + 1, d, w) / noam(w, d, w) for any d_model d,
    i.e. max_lr * min((step + 1) / w, sqrt(w / (step + 1))). A `max_lr` of (d_model * warmup)^-0.5
    reproduces the paper exactly."""
    return max_lr * noam(step + 1, 1, warmup_steps) / noam(warmup_steps, 1, warmup_steps)


SCHEDULES = ("cosine", "noam")
