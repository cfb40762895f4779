"""Local (sliding-window) attention against global attention: forward + backward of causal
self-attention, float32, B = 1, C = 384, 6 heads (hs = 64), for each sequence length T and window W.

    python scripts/bench_attention.py                          # T 1024 2048 4096, W 128 256 512, 3 rounds
    python scripts/bench_attention.py --sizes 256 --windows 32 64 --rounds 2 --no-memory

Timed, side by side in every round (in turn, so that drifts in the machine's load hit all alike):
    global   this project's attention_forward + attention_backward (T x T probabilities)
    local W  local_attention_forward + local_attention_backward (T x W probabilities)
    torch W  PyTorch's scaled_dot_product_attention with the window as a boolean (T, T) mask, forward
             + backward through autograd, on as many threads as this project's kernels use (left out
             when torch does not import, or with --no-torch)
The table gives each one's median time over the rounds, and each ratio is the median of the
per-round ratios (global / local: how many times faster the window is; torch / local likewise).

Peak memory (unless --no-memory): each implementation runs once more in a fresh process for each
size, and the figure is how far the process's resident memory peaks above where it was (Linux's
VmHWM, reset through /proc/self/clear_refs, minus VmRSS) during one forward + backward, after the
inputs exist and the compiled code is loaded (a tiny call first): the output,
the probabilities, the gradients of q, k and v, the backward's temporaries, whatever the call
allocates or first writes (this project's output buffers are allocated before the call but
their pages only when written). The inputs q, k, v and dout are not counted.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

C, NH, B = 384, 6, 1


def ours(T, window, causal=True):
    """A function running forward + backward of this project's attention (global when window = 0)."""
    from transformer_jit import kernels as K
    rng = np.random.default_rng(0)
    qkv = rng.standard_normal((B, T, 3 * C)).astype(np.float32)
    dout = rng.standard_normal((B, T, C)).astype(np.float32)
    dqkv = np.zeros_like(qkv)
    out = np.zeros((B, T, C), np.float32)
    q, k, v = qkv[:, :, :C], qkv[:, :, C:2 * C], qkv[:, :, 2 * C:]
    grads = dqkv[:, :, :C], dqkv[:, :, C:2 * C], dqkv[:, :, 2 * C:]
    if window == 0:
        probs = np.zeros((B, NH, T, T), np.float32)

        def run():
            K.attention_forward(out, probs, q, k, v, None, NH, causal, 0.0, 0)
            K.attention_backward(*grads, dout, probs, q, k, v, None, NH, causal, 0.0, 0, False)
    else:
        probs = np.zeros((B, NH, T, K.band_width(window, causal)), np.float32)

        def run():
            K.local_attention_forward(out, probs, q, k, v, None, NH, causal, window, 0.0, 0)
            K.local_attention_backward(*grads, dout, probs, q, k, v, None, NH, causal, window, 0.0, 0, False)
    return run


def pytorch(T, window):
    """A function running forward + backward of PyTorch's SDPA with the window as a mask."""
    import torch
    import torch.nn.functional as F
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(B, NH, T, C // NH, generator=g, requires_grad=True) for _ in range(3))
    dout = torch.randn(B, NH, T, C // NH, generator=g)
    t, s = torch.arange(T)[:, None], torch.arange(T)[None, :]
    mask = (s <= t) & (s > t - window)  # True: attended, as local_attention_forward's causal window

    def run():
        for x in (q, k, v):
            x.grad = None
        F.scaled_dot_product_attention(q, k, v, attn_mask=mask).backward(dout)
    return run


def torch_available():
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def make(kind, T, window):
    return pytorch(T, window) if kind == "torch" else ours(T, window)


def peak_memory(kind, T, window):
    """Bytes the peak resident memory grows by during one call, in a fresh process."""
    code = (f"import sys; sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r}); "
            f"import bench_attention as b; print(b.measure_peak({kind!r}, {T}, {window}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(done.stdout.split()[-1])


def measure_peak(kind, T, window):
    if kind == "torch":
        import torch
        torch.set_num_threads(_threads())
    make(kind, 16, min(window, 8) if window else 0)()  # the compiled code loaded, the libraries warm
    run = make(kind, T, window)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets the peak resident memory (VmHWM) to the current one (VmRSS)
    before = _status("VmRSS")
    run()
    return max(0, _status("VmHWM") - before)


def _status(field):
    """A memory figure of this process, in bytes, from /proc/self/status."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def _threads():
    import numba
    from transformer_jit.kernels import fit_threads_to_load
    fit_threads_to_load()
    return numba.get_num_threads()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048, 4096], help="sequence lengths T")
    parser.add_argument("--windows", type=int, nargs="+", default=[128, 256, 512], help="windows W")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-torch", action="store_true", help="leave PyTorch out")
    parser.add_argument("--no-memory", action="store_true", help="do not measure peak memory")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)
    if min(args.sizes) < 1 or min(args.windows) < 1 or args.rounds < 1:
        parser.error("--sizes, --windows and --rounds must be >= 1")
    with_torch = not args.no_torch and torch_available()
    if with_torch:
        import torch
        torch.set_num_threads(_threads())
    kinds = [("global", 0)] + [(f"local {w}", w) for w in args.windows]
    if with_torch:
        kinds += [(f"torch {w}", w) for w in args.windows]
    print(f"causal attention, forward + backward, float32, B {B}, C {C}, {NH} heads, {_threads()} threads; "
          f"{args.rounds} rounds" + ("" if with_torch else "; PyTorch left out"))
    results = []
    for T in args.sizes:
        runs = {name: make("torch" if name.startswith("torch") else "ours", T, w) for name, w in kinds}
        for run in runs.values():
            run()  # warm-up: compiles, fills caches
        times = {name: [] for name in runs}
        for r in range(args.rounds):
            for name in (list(runs) if r % 2 == 0 else reversed(list(runs))):
                t0 = time.perf_counter()
                runs[name]()
                times[name].append(time.perf_counter() - t0)
        del runs
        for name, w in kinds:
            row = {"T": T, "impl": name, "window": w, "ms": 1e3 * statistics.median(times[name])}
            if name.startswith("local"):
                row["global/local"] = statistics.median(g / t for g, t in zip(times["global"], times[name]))
                if with_torch:
                    row["torch/local"] = statistics.median(p / t for p, t in zip(times[f"torch {w}"], times[name]))
            if not args.no_memory:
                row["peak MB"] = peak_memory("torch" if name.startswith("torch") else "ours", T, w) / 2 ** 20
            results.append(row)
            print(f"T {T:5d}  {name:10s} {row['ms']:9.1f} ms"
                  + (f"  {row['global/local']:5.1f}x faster than global" if "global/local" in row else "")
                  + (f"  {row['torch/local']:5.1f}x faster than torch" if "torch/local" in row else "")
                  + (f"  peak +{row['peak MB']:.1f} MB" if "peak MB" in row else ""), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
