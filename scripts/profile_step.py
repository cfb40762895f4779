"""Where a training step's time goes, kernel by kernel.

    python scripts/profile_step.py                  # baby config
    python scripts/profile_step.py --config large --steps 10
    python scripts/profile_step.py --config gpt2 --steps 3       # GPT-2 124M, B 4, T 64

Every public kernel in `transformer_jit.kernels` is wrapped with a timer (the layers look kernels
up on that module at call time, so the wrappers see every call), a few warm-up steps compile
everything, and then `--steps` steps are timed. The table lists each kernel's share of the step;
"Python and NumPy glue" is the step time not spent inside kernels (layer bookkeeping, buffer
zeroing, batching). The wrappers add ~1 microsecond per call.
"""
import argparse
import collections
import time

import numpy as np

from bench_train import CONFIGS, batches, config_tokens
from transformer_jit import GPT, AdamW, GPTConfig
from transformer_jit import kernels as K


NOT_KERNELS = {"fit_threads_to_load", "set_adaptive_threads"}


def instrument(totals, calls):
    """Replace each kernel on the kernels module by a timing wrapper: the compiled ones, and the
    plain functions there that run them (linear_forward, linear_backward: matmul's drivers)."""
    for name in dir(K):
        fn = getattr(K, name)
        kernel = hasattr(fn, "py_func") or (callable(fn) and getattr(fn, "__module__", "").startswith(K.__name__))
        if name.startswith("_") or name in NOT_KERNELS or not kernel:
            continue

        def timed(*args, _fn=fn, _name=name):
            t = time.perf_counter()
            result = _fn(*args)
            totals[_name] += time.perf_counter() - t
            calls[_name] += 1
            return result

        setattr(K, name, timed)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False)
    parser.add_argument("--config", choices=list(CONFIGS), default="baby")
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()

    n_layer, n_head, n_embd, block_size, batch_size = CONFIGS[args.config]
    tokens, vocab_size = config_tokens(args.config)
    model = GPT(GPTConfig(vocab_size=vocab_size, block_size=block_size, n_layer=n_layer, n_head=n_head,
                          n_embd=n_embd))
    opt = AdamW(model, lr=1e-3, betas=(0.9, 0.99), weight_decay=0.1)
    totals, calls = collections.defaultdict(float), collections.Counter()
    instrument(totals, calls)

    def step(x, y):
        model.zero_grad()
        model.forward(x, y)
        model.backward()
        K.clip_grad_norm(model.grads, 1.0)
        opt.step()

    data = list(batches(tokens, block_size, batch_size, args.steps + 3))
    for x, y in data[:3]:  # warm-up: compile or load every kernel from the cache
        step(x, y)
    totals.clear()
    calls.clear()
    step_times = []
    for x, y in data[3:]:
        t = time.perf_counter()
        step(x, y)
        step_times.append(time.perf_counter() - t)

    total = sum(step_times) / args.steps
    print(f"{args.config} config: {1000 * np.median(step_times):.1f} ms/step median, "
          f"{1000 * total:.1f} ms mean over {args.steps} steps")
    print(f"{'kernel':28} {'ms/step':>8} {'share':>6} {'calls/step':>10}")
    for name, seconds in sorted(totals.items(), key=lambda kv: -kv[1]):
        per_step = seconds / args.steps
        print(f"{name:28} {1000 * per_step:8.2f} {per_step / total:6.1%} {calls[name] // args.steps:10d}")
    glue = total - sum(totals.values()) / args.steps
    print(f"{'Python and NumPy glue':28} {1000 * glue:8.2f} {glue / total:6.1%}")


if __name__ == "__main__":
    main()
