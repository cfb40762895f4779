"""How long Numba's compilation costs: a cold start (empty cache) and a warm one (cache hit).

Each measurement runs in a fresh Python process with its own NUMBA_CACHE_DIR, timing the import and
the first training step of a GPT (which compiles every kernel on the training path: embedding,
layer norm, linear, attention, GELU, residual, cross-entropy, gradient clipping, AdamW), then a
second step, which shows the steady state.

    python scripts/bench_compile.py
"""
import json
import os
import subprocess
import sys
import tempfile

CHILD = r"""
import json, time
t0 = time.perf_counter()
import numpy as np
from transformer_jit import GPT, GPTConfig, AdamW, kernels as K
t_import = time.perf_counter() - t0

def step():
    model.zero_grad()
    model.forward(x, y)
    model.backward()
    K.clip_grad_norm(model.grads, 1.0)
    opt.step()

model = GPT(GPTConfig(vocab_size=65, block_size=64, n_layer=4, n_head=4, n_embd=128))
opt = AdamW(model, lr=1e-3)
rng = np.random.default_rng(0)
x, y = rng.integers(0, 65, (12, 64)), rng.integers(0, 65, (12, 64))
t1 = time.perf_counter(); step(); t_first = time.perf_counter() - t1
t2 = time.perf_counter(); step(); t_second = time.perf_counter() - t2
print(json.dumps({"import": t_import, "first_step": t_first, "second_step": t_second,
                  "to_first_step": time.perf_counter() - t0 - t_second}))
"""


def run(cache_dir):
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    out = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    with tempfile.TemporaryDirectory() as cache_dir:
        cold = run(cache_dir)
        warm = run(cache_dir)
    print(f"{'':>6} {'import':>8} {'1st step':>9} {'to 1st step':>12} {'2nd step':>9}")
    for name, r in (("cold", cold), ("warm", warm)):
        print(f"{name:>6} {r['import']:7.2f}s {r['first_step']:8.2f}s {r['to_first_step']:11.2f}s "
              f"{r['second_step'] * 1000:7.1f}ms")


if __name__ == "__main__":
    main()
