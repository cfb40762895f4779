"""Where the tiled matmul overtakes the matrix-vector product: the row count behind nn.layers.FEW_ROWS.

    python scripts/bench_few_rows.py                   # GPT-2 124M's products, 1 to 32 rows
    python scripts/bench_few_rows.py --rounds 9 --rows 4 8 16

A linear layer with up to FEW_ROWS rows (generation: one row per sequence) runs kernels.matvec,
which streams each weight once and dots it with every row; with more rows it runs
kernels.linear_forward, the tiled matmul, which first packs the weights into panels. For each of
GPT-2 124M's weight shapes (qkv, attention projection, MLP up and down, the lm head) and each row
count, both kernels are timed in alternating rounds on the same inputs; the table gives each one's
median time and the median of the per-round ratios matmul / matvec (above 1: matvec is faster).
"""
import argparse
import os
import statistics
import time

import numpy as np

C, V = 768, 50257
SHAPES = {"qkv": (C, 3 * C), "attn proj": (C, C), "mlp up": (C, 4 * C), "mlp down": (4 * C, C), "lm head": (C, V)}


def seconds(fn, budget=0.05):
    """Median seconds of one call of fn, over calls for about `budget` seconds."""
    fn()
    times, start = [], time.perf_counter()
    while time.perf_counter() - start < budget or len(times) < 3:
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False)
    parser.add_argument("--rows", type=int, nargs="+", default=[1, 2, 4, 8, 12, 16, 32])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    os.environ.setdefault("TRANSFORMER_JIT_ADAPTIVE_THREADS", "0")
    import numba

    from transformer_jit import kernels as K
    from transformer_jit.nn.layers import FEW_ROWS
    from transformer_jit.nn.memory import aligned_empty

    numba.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    print(f"{args.threads} threads, float32; FEW_ROWS = {FEW_ROWS}")
    print(f"{'weight':10} {'rows':>4} {'matvec us':>10} {'matmul us':>10} {'matmul / matvec':>16}")
    for name, (c_in, c_out) in SHAPES.items():
        w = aligned_empty((c_out, c_in), np.float32)
        w[...] = rng.standard_normal(w.shape)
        bias = rng.standard_normal(c_out).astype(np.float32)
        for rows in args.rows:
            x = rng.standard_normal((rows, c_in)).astype(np.float32)
            a, b = np.empty((rows, c_out), np.float32), np.empty((rows, c_out), np.float32)
            vec, mat = [], []
            for _ in range(args.rounds):
                vec.append(seconds(lambda: K.matvec(a, x, w, bias, False, False)))
                mat.append(seconds(lambda: K.linear_forward(b, x, w, bias)))
            np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-3)
            ratio = statistics.median(m / v for m, v in zip(mat, vec))
            print(f"{name:10} {rows:4} {1e6 * statistics.median(vec):10.0f} {1e6 * statistics.median(mat):10.0f} "
                  f"{ratio:16.2f}")


if __name__ == "__main__":
    main()
