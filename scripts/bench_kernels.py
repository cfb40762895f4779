"""Benchmark every kernel pair four ways, side by side in one run.

    python scripts/bench_kernels.py                  # baby GPT shapes + the larger config's linears
    python scripts/bench_kernels.py --config all     # every op at both configs (also: baby, large)
    python scripts/bench_kernels.py --quick          # tiny shapes, few repeats: a smoke test
    python scripts/bench_kernels.py --json out.json  # also write every number to a JSON file

Each operation runs as
    jit     the Numba-compiled kernel from transformer_jit.kernels, what training uses;
    numpy   the obvious vectorised NumPy expression (matrix products go to OpenBLAS);
    torch   the same operation in PyTorch (CPU, same thread count), if torch is installed;
    interp  the kernel's own loops run by the Python interpreter (`kernel.py_func`), on small
            inputs because it is ~1000x slower.
Before anything is timed, every kernel's result is checked against NumPy and PyTorch on the
benchmark inputs, and against its interpreted self on the small inputs (float32 tolerances,
error relative to the largest reference value); a mismatch aborts the run.

Reading the main table (one row per operation and shape, float32 throughout):
    jit, numpy, torch   median wall time of one call (the median over rounds of each round's
                        median, each round after a warm-up call)
    GFLOP/s             FLOPs / jit time, for the matrix-product ops only (linear, attention);
                        attention counts only the causal half (keys s <= t) that is computed
    unit                what the per-unit columns divide by: FLOP, or elem (one element of the
                        op's main array: activations, logits, parameters)
    jit/u, interp/u     nanoseconds per unit of work for the compiled and the interpreted runs;
                        they ran at different sizes, so this is how the two compare
    x interp            interp/u / jit/u: what compiling the same loops buys
    x numpy, x torch    numpy time / jit time and torch time / jit time, the median of the
                        per-round ratios: above 1 the kernel is faster, below 1 it is slower
                        (0.5 = takes twice as long)
Then: the compile table (first call on an empty Numba cache minus the steady-state time), the
linear layers' GFLOP/s against NumPy/OpenBLAS with the 70% target, and the thread settings.

By default Numba compiles into a fresh temporary cache directory (NUMBA_CACHE_DIR), so the
compile times are honest first-run times; `--keep-cache` uses the normal cache instead.

Rounds: the implementations are timed in turn, jit, numpy, torch, jit, numpy, ... (--rounds
rounds, default 5), and every ratio is the median of the ratios within a round. A machine shared
with other work runs at different speeds from one second to the next (1.7x apart was seen here),
so a ratio of two times taken seconds apart would measure the machine, not the kernels. The round
after a NumPy round waits PAUSE seconds first: after a multi-threaded product, OpenBLAS's threads go
on spinning, and jit and PyTorch calls made 25-100 ms after a NumPy product were seen to take up to
50x longer. (PyTorch's and Numba's threads were not seen to slow the others down.)

Noise: on a machine shared with other busy processes, worker threads that spin-wait (OpenMP's, used
by Numba's 'omp' threading layer and by PyTorch, and OpenBLAS's own) hold cores they are only
waiting on, and a multi-threaded call then costs a whole scheduler time slice (~8 ms was seen)
whatever its size: many rows show the same 8, 16, 24 ms. Run on an idle machine; otherwise
OMP_WAIT_POLICY=PASSIVE cures it for Numba and PyTorch (not OpenBLAS), as does
--threading-layer workqueue for Numba alone.
"""
import argparse
import atexit
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from types import SimpleNamespace as NS
from typing import Callable

from _bench import fmt_num, fmt_time, measure, ratio, table, warn_if_busy

# ---------------------------------------------------------------------------------------------
# Command line and environment. Parsed BEFORE numpy and numba are imported: thread counts and the
# Numba cache directory are read from the environment at import time.
# ---------------------------------------------------------------------------------------------


def parse_args():
    p = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n")[0])
    p.add_argument("--config", choices=("default", "baby", "large", "all"), default="default",
                   help="default: every op at the baby config plus the large config's linear layers")
    p.add_argument("--quick", action="store_true", help="tiny shapes and few repeats (smoke test)")
    p.add_argument("--threads", type=int, default=2,
                   help="threads for Numba, OpenBLAS and PyTorch (default 2, the count the 70%% target is set for)")
    p.add_argument("--budget", type=float, default=None,
                   help="seconds of timing per implementation, split over the rounds (default 0.3; 0.02 with --quick)")
    p.add_argument("--rounds", type=int, default=None,
                   help="rounds that alternate the implementations (default 5; 2 with --quick)")
    p.add_argument("--only", default=None, help="run only ops whose name contains this text")
    p.add_argument("--threading-layer", choices=("omp", "tbb", "workqueue"), default=None,
                   help="Numba threading layer (default: Numba's own choice)")
    p.add_argument("--no-torch", action="store_true", help="skip PyTorch even if installed")
    p.add_argument("--keep-cache", action="store_true",
                   help="use the normal Numba cache instead of a fresh temporary one (compile times then "
                        "show cache loads, not compilation)")
    p.add_argument("--json", metavar="PATH", help="write all results to this JSON file")
    return p.parse_args()


ARGS = parse_args()
for var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = str(ARGS.threads)
os.environ["TRANSFORMER_JIT_ADAPTIVE_THREADS"] = "0"  # the same threads whatever the load (kernels/threads.py)
if ARGS.threading_layer:
    os.environ["NUMBA_THREADING_LAYER"] = ARGS.threading_layer
if not ARGS.keep_cache:
    _cache = tempfile.mkdtemp(prefix="bench-kernels-numba-cache-")
    os.environ["NUMBA_CACHE_DIR"] = _cache
    atexit.register(shutil.rmtree, _cache, True)

import numba  # noqa: E402  (after the environment is set)
import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

from transformer_jit import kernels as K  # noqa: E402
from transformer_jit.kernels._jit import interpreted, vector_bits  # noqa: E402
from transformer_jit.kernels.matmul import matmul  # noqa: E402

torch = None
if not ARGS.no_torch:
    try:
        import torch
        import torch.nn.functional as F
        torch.set_num_threads(ARGS.threads)
    except ImportError:
        torch = None

F32 = np.float32
NO_BIAS = np.empty(0, F32)  # matmul's "no bias"
TOL = 1e-4  # compiled vs NumPy/PyTorch: max |a - b| / max |reference|, float32 with different sum orders
TOL_INTERP = 1e-5  # compiled vs interpreted: the same loops, only fastmath reordering differs
PAUSE = 0.15  # seconds between a NumPy round and the next one, for OpenBLAS's threads to stop spinning

# ---------------------------------------------------------------------------------------------
# Configurations
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    name: str
    n_layer: int
    n_head: int
    n_embd: int
    T: int
    B: int
    V: int = 65  # characters of tinyshakespeare

    @property
    def N(self):
        return self.B * self.T

    def linears(self):
        """(in, out, name, has bias) of the GPT's linear layers; the lm head is tied to wte, no bias."""
        C = self.n_embd
        return [(C, 3 * C, "qkv", True), (C, C, "attn proj", True), (C, 4 * C, "fc", True),
                (4 * C, C, "mlp proj", True), (C, self.V, "lm head", False)]

    def n_params(self):
        """Parameters of a nanoGPT-style model with biases; the first n_decay are matrices."""
        C = self.n_embd
        n_decay = self.n_layer * 12 * C * C + (self.V + self.T) * C
        return n_decay + self.n_layer * 13 * C + 2 * C, n_decay

    def describe(self):
        return (f"{self.name}: n_layer {self.n_layer}, n_head {self.n_head}, n_embd {self.n_embd}, "
                f"T {self.T}, B {self.B} (N = {self.N}), V {self.V}")


CONFIGS = {
    "baby": Config("baby", n_layer=4, n_head=4, n_embd=128, T=64, B=12),
    "large": Config("large", n_layer=6, n_head=6, n_embd=384, T=256, B=8),
    "quick": Config("quick", n_layer=1, n_head=2, n_embd=32, T=16, B=2),
}

# ---------------------------------------------------------------------------------------------
# Cases: one operation at one shape, written up to four ways
# ---------------------------------------------------------------------------------------------


@dataclass
class Case:
    """One row of the table.

    make(dims, rng) builds fresh inputs and buffers (a namespace of arrays) at size `dims`.
    jit(f, s), numpy(s), torch(t) each return a zero-argument callable that runs the op once on
    the namespace (`t` holds torch views sharing memory with a NumPy namespace). `f` is the
    kernel or its py_func. A callable's result is compared with the others: if it returns a dict
    that dict is the result, otherwise the namespace's `outputs` are, plus "ret" = the return
    value if it is not None. Only names present in both results are compared.
    """
    op: str
    shape: str
    dims: tuple
    tiny: tuple  # size for the interpreted run
    make: Callable
    work: Callable  # work(dims): FLOPs or elements
    unit: str  # "FLOP" (GFLOP/s is meaningful) or "elem"
    kernel: object  # the Numba dispatcher
    jit: Callable = None
    numpy: Callable = None
    torch: Callable = None
    outputs: tuple = ()
    setup: Callable = None  # setup(s): restore inputs the op changes in place, before each timed call
    tol: float = TOL  # tolerance against NumPy and PyTorch
    config: str = ""
    result: dict = field(default_factory=dict)

    @property
    def key(self):
        return f"{self.config}/{self.op}/{self.shape}"


def randn(rng, *shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(F32)


def zeros(*shape):
    return np.zeros(shape, F32)


def np_softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def linear_cases(cfg, C, OC, label, bias=True):
    """Forward, the full backward (dx and dW, plus db with a bias), and dW and dx alone: the matmul
    calls linear_backward makes for them (the same compiled matmul, so no extra compile). The GPT's
    lm head (tied to the token embedding) has no bias and is the matrix multiply itself, called as
    GPT.forward and GPT.backward call it."""
    def make(d, rng):
        n, c, oc = d
        return NS(x=randn(rng, n, c), w=randn(rng, oc, c, scale=c ** -0.5), b=randn(rng, oc) if bias else None,
                  out=zeros(n, oc), dout=randn(rng, n, oc), dx=zeros(n, c), dw=zeros(oc, c),
                  db=zeros(oc) if bias else None)

    def mm(d):  # one (n x c) @ (c x oc) product
        n, c, oc = d
        return 2 * n * c * oc

    def np_fwd(s):
        def run():
            y = s.x @ s.w.T
            if s.b is not None:
                y += s.b
            return {"out": y}
        return run

    def np_bwd(s):
        def run():
            s.dx += s.dout @ s.w
            s.dw += s.dout.T @ s.x
            if s.db is not None:
                s.db += s.dout.sum(0)
        return run

    def torch_bwd(t):
        def run():
            t.dx.addmm_(t.dout, t.w)
            t.dw.addmm_(t.dout.T, t.x)
            if t.db is not None:
                t.db.add_(t.dout.sum(0))
        return run

    def head_bwd(f, s):  # dx and dW of the bias-free lm head, as GPT.backward computes them
        def run():
            f(s.dx, s.dout, False, s.w, False, NO_BIAS, True)
            f(s.dw, s.dout, True, s.x, False, NO_BIAS, True)
        return run

    if bias:
        fwd = dict(kernel=K.linear_forward, jit=lambda f, s: lambda: f(s.out, s.x, s.w, s.b))
        bwd = dict(kernel=K.linear_backward, jit=lambda f, s: lambda: f(s.dx, s.dw, s.db, s.dout, s.x, s.w, True))
    else:
        fwd = dict(kernel=matmul, jit=lambda f, s: lambda: f(s.out, s.x, False, s.w, True, NO_BIAS, False))
        bwd = dict(kernel=matmul, jit=head_bwd)
    common = dict(shape=f"{cfg.N}x{C}->{OC} {label}", dims=(cfg.N, C, OC), tiny=(32, 64, 96), make=make,
                  unit="FLOP")
    return [
        Case("linear fwd", work=mm, outputs=("out",), numpy=np_fwd,
             torch=lambda t: lambda: {"out": F.linear(t.x, t.w, t.b)}, **fwd, **common),
        Case("linear bwd", work=lambda d: 2 * mm(d), outputs=("dx", "dw", "db"), numpy=np_bwd, torch=torch_bwd,
             **bwd, **common),
        Case("linear bwd dW", work=mm, kernel=matmul, outputs=("dw",),
             jit=lambda f, s: lambda: f(s.dw, s.dout, True, s.x, False, NO_BIAS, True),
             numpy=lambda s: lambda: np.add(s.dw, s.dout.T @ s.x, out=s.dw),
             torch=lambda t: lambda: t.dw.addmm_(t.dout.T, t.x), **common),
        Case("linear bwd dx", work=mm, kernel=matmul, outputs=("dx",),
             jit=lambda f, s: lambda: f(s.dx, s.dout, False, s.w, False, NO_BIAS, True),
             numpy=lambda s: lambda: np.add(s.dx, s.dout @ s.w, out=s.dx),
             torch=lambda t: lambda: t.dx.addmm_(t.dout, t.w), **common),
    ]


def softmax_cases(cfg):
    # rows like attention scores: one per (batch, head, query), n = T
    def make(d, rng):
        r, n = d
        x = randn(rng, r, n, scale=3.0)
        return NS(x=x, out=zeros(r, n), y=np_softmax(x), dout=randn(rng, r, n), dx=zeros(r, n))

    def make_row(d, rng):  # the JVP/VJP kernels take one row; give them one long row
        (n,) = d
        return NS(y=np_softmax(randn(rng, n, scale=3.0)), v=randn(rng, n), out=zeros(n))

    def row_formula(s):
        return {"out": s.y * (s.v - s.y @ s.v)}

    rows = dict(shape=f"{cfg.B * cfg.n_head * cfg.T}x{cfg.T}", dims=(cfg.B * cfg.n_head * cfg.T, cfg.T),
                tiny=(128, 64), make=make, work=lambda d: d[0] * d[1], unit="elem")
    L = cfg.B * cfg.n_head * cfg.T * cfg.T
    row = dict(shape=f"1 row of {L}", dims=(L,), tiny=(32768,), make=make_row, work=lambda d: d[0], unit="elem",
               outputs=("out",))
    return [
        Case("softmax fwd", kernel=K.softmax_forward, outputs=("out",),
             jit=lambda f, s: lambda: f(s.out, s.x),
             numpy=lambda s: lambda: {"out": np_softmax(s.x)},
             torch=lambda t: lambda: {"out": torch.softmax(t.x, -1)}, **rows),
        Case("softmax bwd (rows VJP)", kernel=K.softmax_backward, outputs=("dx",),
             jit=lambda f, s: lambda: f(s.dx, s.dout, s.y),
             numpy=lambda s: lambda: np.add(s.dx, s.y * (s.dout - (s.y * s.dout).sum(1, keepdims=True)), out=s.dx),
             torch=lambda t: lambda: t.dx.add_(torch.ops.aten._softmax_backward_data(t.dout, t.y, -1, torch.float32)),
             **rows),
        Case("softmax_jvp", kernel=K.softmax_jvp, jit=lambda f, s: lambda: f(s.out, s.y, s.v),
             numpy=lambda s: lambda: row_formula(s), torch=lambda t: lambda: row_formula(t), **row),
        Case("softmax_vjp", kernel=K.softmax_vjp, jit=lambda f, s: lambda: f(s.out, s.y, s.v),
             numpy=lambda s: lambda: row_formula(s),
             torch=lambda t: lambda: {"out": torch.ops.aten._softmax_backward_data(t.v, t.y, 0, torch.float32)},
             **row),
    ]


def heads(a, NH):
    """(B, T, C) -> (B, NH, T, hs), a view."""
    B, T, C = a.shape
    return a.reshape(B, T, NH, C // NH).transpose(0, 2, 1, 3)


def merge_heads(a):
    """(B, NH, T, hs) -> (B, T, C)."""
    B, NH, T, hs = a.shape
    return a.transpose(0, 2, 1, 3).reshape(B, T, NH * hs)


def thirds(a):
    C = a.shape[-1] // 3
    return a[:, :, :C], a[:, :, C:2 * C], a[:, :, 2 * C:]


def np_attention_forward(qkv, NH):
    """Causal multi-head attention in NumPy: the full T x T scores, masked with -inf."""
    q, k, v = (heads(a, NH) for a in thirds(qkv))  # (B, NH, T, hs)
    T, hs = q.shape[2], q.shape[3]
    a = q @ k.transpose(0, 1, 3, 2) * (1.0 / np.sqrt(hs))  # (B, NH, T, T)
    p = np_softmax(np.where(np.tri(T, dtype=bool), a, -np.inf))
    return merge_heads(p @ v), p


def np_attention_backward(dqkv, dout, p, qkv, NH):
    q, k, v = (heads(a, NH) for a in thirds(qkv))
    do = heads(dout, NH)
    scale = 1.0 / np.sqrt(q.shape[3])
    dv = p.transpose(0, 1, 3, 2) @ do  # O = P V
    dp = do @ v.transpose(0, 1, 3, 2)
    da = p * (dp - (p * dp).sum(-1, keepdims=True)) * scale  # softmax VJP per row
    dq, dk = da @ k, da.transpose(0, 1, 3, 2) @ q  # A = Q K^T scale
    for grad, part in zip(thirds(dqkv), (dq, dk, dv)):
        grad += merge_heads(part)


def torch_attention(qkv, NH):
    B, T, C3 = qkv.shape
    q, k, v = qkv.view(B, T, 3, NH, C3 // (3 * NH)).permute(2, 0, 3, 1, 4).unbind(0)  # (B, NH, T, hs)
    y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    return y.transpose(1, 2).reshape(B, T, C3 // 3)


def attention_cases(cfg):
    def make(d, rng):
        B, T, C, NH = d
        qkv = randn(rng, B, T, 3 * C)
        return NS(qkv=qkv, out=zeros(B, T, C), probs=np_attention_forward(qkv, NH)[1], dout=randn(rng, B, T, C),
                  dqkv=zeros(B, T, 3 * C), NH=NH)

    def jit_fwd(f, s):
        q, k, v = thirds(s.qkv)  # strided views of the fused qkv, as the GPT passes them
        return lambda: f(s.out, s.probs, q, k, v, None, s.NH, True, 0.0, 0)  # no attention dropout

    def jit_bwd(f, s):
        q, k, v = thirds(s.qkv)
        dq, dk, dv = thirds(s.dqkv)
        return lambda: f(dq, dk, dv, s.dout, s.probs, q, k, v, None, s.NH, True, 0.0, 0, True)

    def np_fwd(s):
        def run():
            out, p = np_attention_forward(s.qkv, s.NH)
            return {"out": out, "probs": p}
        return run

    def torch_bwd(t):
        qkv = t.qkv.requires_grad_()
        y = torch_attention(qkv, t.NH)  # the graph is built once, outside the timing
        return lambda: {"dqkv": torch.autograd.grad(y, qkv, t.dout, retain_graph=True)[0]}

    def flops(d):  # 2 FLOPs x hs per (t, s <= t) pair, per head, per product
        B, T, C, NH = d
        return 2 * B * C * T * (T + 1) // 2

    B, T, C, NH = cfg.B, cfg.T, cfg.n_embd, cfg.n_head
    common = dict(shape=f"B{B} T{T} C{C} NH{NH} causal", dims=(B, T, C, NH), tiny=(1, 32, 32, 2), make=make,
                  unit="FLOP")
    return [
        Case("attention fwd", kernel=K.attention_forward, outputs=("out", "probs"), work=lambda d: 2 * flops(d),
             jit=jit_fwd, numpy=np_fwd, torch=lambda t: lambda: {"out": torch_attention(t.qkv, t.NH)}, **common),
        Case("attention bwd", kernel=K.attention_backward, outputs=("dqkv",), work=lambda d: 4 * flops(d),
             jit=jit_bwd, numpy=lambda s: lambda: np_attention_backward(s.dqkv, s.dout, s.probs, s.qkv, s.NH),
             torch=torch_bwd, **common),
    ]


EPS_LN = 1e-5


def np_layernorm(x, w, b):
    mean = x.mean(1)
    xc = x - mean[:, None]
    rstd = 1.0 / np.sqrt((xc * xc).mean(1) + EPS_LN)
    return xc * rstd[:, None] * w + b, mean, rstd


def layernorm_cases(cfg):
    def make(d, rng):
        n, c = d
        x, w, b = randn(rng, n, c, scale=2.0) + F32(0.5), 1 + randn(rng, c, scale=0.1), randn(rng, c, scale=0.1)
        _, mean, rstd = np_layernorm(x, w, b)
        return NS(x=x, w=w, b=b, out=zeros(n, c), mean=mean, rstd=rstd, dout=randn(rng, n, c), dx=zeros(n, c),
                  dw=zeros(c), db=zeros(c))

    def np_bwd(s):
        def run():
            xhat = (s.x - s.mean[:, None]) * s.rstd[:, None]
            g = s.dout * s.w
            s.dx += s.rstd[:, None] * (g - g.mean(1, keepdims=True) - xhat * (g * xhat).mean(1, keepdims=True))
            s.dw += (s.dout * xhat).sum(0)
            s.db += s.dout.sum(0)
        return run

    def torch_bwd(t):
        def run():
            dx, dw, db = torch.ops.aten.native_layer_norm_backward(
                t.dout, t.x, [t.x.shape[1]], t.mean.view(-1, 1), t.rstd.view(-1, 1), t.w, t.b, [True, True, True])
            t.dx.add_(dx)
            t.dw.add_(dw)
            t.db.add_(db)
        return run

    common = dict(shape=f"{cfg.N}x{cfg.n_embd}", dims=(cfg.N, cfg.n_embd), tiny=(64, 64), make=make,
                  work=lambda d: d[0] * d[1], unit="elem")
    return [
        Case("layernorm fwd", kernel=K.layernorm_forward, outputs=("out", "mean", "rstd"),
             jit=lambda f, s: lambda: f(s.out, s.mean, s.rstd, s.x, s.w, s.b, EPS_LN),
             numpy=lambda s: lambda: dict(zip(("out", "mean", "rstd"), np_layernorm(s.x, s.w, s.b))),
             torch=lambda t: lambda: {"out": F.layer_norm(t.x, (t.x.shape[1],), t.w, t.b, EPS_LN)}, **common),
        Case("layernorm bwd", kernel=K.layernorm_backward, outputs=("dx", "dw", "db"),
             jit=lambda f, s: lambda: f(s.dx, s.dw, s.db, s.dout, s.x, s.mean, s.rstd, s.w),
             numpy=np_bwd, torch=torch_bwd, **common),
    ]


GELU_K, GELU_C = float(np.sqrt(2.0 / np.pi)), 0.044715


def gelu_cases(cfg):
    def make(d, rng):
        (n,) = d
        return NS(x=randn(rng, n, scale=2.0), out=zeros(n), dout=randn(rng, n), dx=zeros(n))

    # x * x * x, not x ** 3: NumPy 2.4 computes float32 x ** 3 with pow, ~80x slower (17 ms here for
    # 768 x 512 elements, against 0.2 ms), which would make NumPy's GELU look absurdly slow.
    def np_fwd(s):
        x = s.x
        return lambda: {"out": 0.5 * x * (1 + np.tanh(GELU_K * (x + GELU_C * x * x * x)))}

    def np_bwd(s):
        def run():
            x = s.x
            th = np.tanh(GELU_K * (x + GELU_C * x * x * x))
            s.dx += s.dout * (0.5 * (1 + th) + 0.5 * x * (1 - th * th) * GELU_K * (1 + 3 * GELU_C * x * x))
        return run

    def np_normal_cdf(x):
        return (0.5 * (1 + np.vectorize(math.erf)(x / math.sqrt(2.0)))).astype(x.dtype)

    def np_erf_bwd(s):
        def run():
            x = s.x
            s.dx += s.dout * (np_normal_cdf(x) + x * np.exp(-0.5 * x * x) / np.float32(math.sqrt(2 * math.pi)))
        return run

    n = cfg.N * 4 * cfg.n_embd
    common = dict(shape=f"{cfg.N}x{4 * cfg.n_embd} (flat)", dims=(n,), tiny=(16384,), make=make,
                  work=lambda d: d[0], unit="elem")
    return [
        Case("gelu fwd", kernel=K.gelu_forward, outputs=("out",), jit=lambda f, s: lambda: f(s.out, s.x),
             numpy=np_fwd, torch=lambda t: lambda: {"out": F.gelu(t.x, approximate="tanh")}, **common),
        Case("gelu bwd", kernel=K.gelu_backward, outputs=("dx",), jit=lambda f, s: lambda: f(s.dx, s.dout, s.x, True),
             numpy=np_bwd,
             torch=lambda t: lambda: t.dx.add_(torch.ops.aten.gelu_backward(t.dout, t.x, approximate="tanh")),
             **common),
        # The exact GELU (erf), as ViT computes it. NumPy has no erf: its column calls math.erf once
        # per element, a reference for the results rather than a contender.
        Case("gelu erf fwd", kernel=K.gelu_erf_forward, outputs=("out",), jit=lambda f, s: lambda: f(s.out, s.x),
             numpy=lambda s: lambda: {"out": s.x * np_normal_cdf(s.x)},
             torch=lambda t: lambda: {"out": F.gelu(t.x)}, **common),
        Case("gelu erf bwd", kernel=K.gelu_erf_backward, outputs=("dx",),
             jit=lambda f, s: lambda: f(s.dx, s.dout, s.x, True), numpy=np_erf_bwd,
             torch=lambda t: lambda: t.dx.add_(torch.ops.aten.gelu_backward(t.dout, t.x)), **common),
    ]


IGNORE = -100


def cross_entropy_cases(cfg):
    def make(d, rng):
        n, v = d
        logits = randn(rng, n, v, scale=2.0)
        return NS(logits=logits, targets=rng.integers(0, v, n), rows=np.arange(n), losses=zeros(n),
                  probs=np_softmax(logits), dlogits=zeros(n, v), dloss=1.0 / n)

    def np_fwd(s):
        def run():
            z = s.logits - s.logits.max(1, keepdims=True)
            e = np.exp(z)
            total = e.sum(1)
            losses = np.log(total) - z[s.rows, s.targets]
            return {"losses": losses, "probs": e / total[:, None], "ret": losses.mean()}
        return run

    def bwd(s):  # dlogits += dloss * (probs - onehot(targets)); NumPy and torch alike
        def run():
            g = s.probs * s.dloss
            g[s.rows, s.targets] -= s.dloss
            s.dlogits += g
        return run

    common = dict(shape=f"{cfg.N}x{cfg.V}", dims=(cfg.N, cfg.V), tiny=(64, 65), make=make,
                  work=lambda d: d[0] * d[1], unit="elem")
    return [
        Case("cross-entropy fwd", kernel=K.cross_entropy_forward, outputs=("losses", "probs"),
             jit=lambda f, s: lambda: f(s.losses, s.probs, s.logits, s.targets, IGNORE, 0.0), numpy=np_fwd,
             torch=lambda t: lambda: {"ret": F.cross_entropy(t.logits, t.targets)}, **common),
        Case("cross-entropy bwd", kernel=K.cross_entropy_backward, outputs=("dlogits",),
             jit=lambda f, s: lambda: f(s.dlogits, s.probs, s.targets, IGNORE, 0.0, s.dloss), numpy=bwd,
             torch=bwd, **common),
    ]


LR, B1, B2, EPS, WD, MOMENTUM, ALPHA = 1e-3, 0.9, 0.95, 1e-8, 0.1, 0.9, 0.99
EPS_ADAGRAD = 1e-10  # PyTorch's default


def np_adam(s, wd=0.0, step=1):
    bc1, bc2 = 1 - B1 ** step, 1 - B2 ** step
    if wd:
        s.p[:s.n_decay] *= 1 - LR * wd
    s.m *= B1
    s.m += (1 - B1) * s.g
    s.v *= B2
    s.v += (1 - B2) * s.g * s.g
    s.p -= (LR / bc1) * s.m / (np.sqrt(s.v / bc2) + EPS)


def np_optimizer(name, s):
    def run():
        if name == "sgd":
            s.p -= LR * s.g
        elif name == "momentum":
            s.m *= MOMENTUM
            s.m += LR * s.g
            s.p -= s.m
        elif name == "adagrad":
            s.v += s.g * s.g
            s.p -= LR * s.g / (np.sqrt(s.v) + EPS_ADAGRAD)
        elif name == "rmsprop":
            s.v *= ALPHA
            s.v += (1 - ALPHA) * s.g * s.g
            s.p -= LR * s.g / (np.sqrt(s.v) + EPS)
        else:
            np_adam(s, wd=WD if name == "adamw" else 0.0)
    return run


def torch_optimizer(name, t):
    """torch.optim on the same flat buffer (two parameter groups for AdamW's decay split)."""
    n = t.n_decay if name == "adamw" else t.p.shape[0]
    groups = [t.p[:n], t.p[n:]]  # views sharing memory with the NumPy buffer
    for p, g in zip(groups, (t.g[:n], t.g[n:])):
        p.grad = g
    if name == "sgd":
        opt = torch.optim.SGD(groups, lr=LR)
    elif name == "momentum":
        opt = torch.optim.SGD(groups, lr=LR, momentum=MOMENTUM)
    elif name == "adagrad":
        opt = torch.optim.Adagrad(groups, lr=LR, eps=EPS_ADAGRAD)
    elif name == "rmsprop":
        opt = torch.optim.RMSprop(groups, lr=LR, alpha=ALPHA, eps=EPS)
    elif name == "adam":
        opt = torch.optim.Adam(groups, lr=LR, betas=(B1, B2), eps=EPS)
    else:
        opt = torch.optim.AdamW([{"params": [groups[0]], "weight_decay": WD},
                                 {"params": [groups[1]], "weight_decay": 0.0}], lr=LR, betas=(B1, B2), eps=EPS)

    def run():
        opt.step()
        return {"p": t.p}  # only the parameters: PyTorch keeps its state elsewhere, in its own layout
    return run


def optimizer_cases(cfg):
    def make(d, rng):
        P, n_decay = d
        g = randn(rng, P)
        return NS(p=randn(rng, P), g=g, g0=g.copy(), m=zeros(P), v=zeros(P), n_decay=n_decay,
                  max_norm=0.5 * float(np.linalg.norm(g)))

    def restore_grads(s):  # clipping scales the gradient in place: undo it before each call
        s.g[:] = s.g0

    P, n_decay = cfg.n_params()
    common = dict(shape=f"P={P}", dims=(P, n_decay), tiny=(32768, 24576), make=make, work=lambda d: d[0],
                  unit="elem")
    steps = [
        ("sgd", K.sgd_step, ("p",), lambda f, s: lambda: f(s.p, s.g, LR)),
        ("momentum", K.momentum_step, ("p", "m"), lambda f, s: lambda: f(s.p, s.g, s.m, LR, MOMENTUM)),
        ("adagrad", K.adagrad_step, ("p", "v"), lambda f, s: lambda: f(s.p, s.g, s.v, LR, EPS_ADAGRAD)),
        ("rmsprop", K.rmsprop_step, ("p", "v"), lambda f, s: lambda: f(s.p, s.g, s.v, LR, ALPHA, EPS)),
        ("adam", K.adam_step, ("p", "m", "v"), lambda f, s: lambda: f(s.p, s.g, s.m, s.v, LR, B1, B2, EPS, 1)),
        ("adamw", K.adamw_step, ("p", "m", "v"),
         lambda f, s: lambda: f(s.p, s.g, s.m, s.v, LR, B1, B2, EPS, WD, 1, s.n_decay)),
    ]
    cases = [Case(f"{name} step", kernel=kern, outputs=outs, jit=jit,
                  numpy=lambda s, name=name: np_optimizer(name, s),
                  torch=lambda t, name=name: torch_optimizer(name, t), **common)
             for name, kern, outs, jit in steps]

    def torch_clip(t):
        param = t.p.view(-1)
        param.grad = t.g
        return lambda: torch.nn.utils.clip_grad_norm_([param], t.max_norm)

    def np_clip(s):
        def run():
            norm = np.linalg.norm(s.g)
            if norm > s.max_norm:
                s.g *= s.max_norm / (norm + 1e-6)
            return norm
        return run

    # PyTorch sums float32 squares in float32: at 10.8M parameters its norm is off by ~4e-4 relative
    # (the kernel sums in float64 and is exact to ~1e-13), hence the looser tolerance for these two.
    norm_tol = 1e-3
    cases += [
        Case("grad_norm", kernel=K.grad_norm, tol=norm_tol, jit=lambda f, s: lambda: f(s.g),
             numpy=lambda s: lambda: np.linalg.norm(s.g), torch=lambda t: lambda: torch.linalg.vector_norm(t.g),
             **common),
        Case("clip_grad_norm", kernel=K.clip_grad_norm, outputs=("g",), setup=restore_grads, tol=norm_tol,
             jit=lambda f, s: lambda: f(s.g, s.max_norm), numpy=np_clip, torch=torch_clip, **common),
    ]
    return cases


def build_cases(args):
    if args.quick:
        plan = [(CONFIGS["quick"], "all")]
    else:
        plan = {"default": [(CONFIGS["baby"], "all"), (CONFIGS["large"], "linear")],
                "baby": [(CONFIGS["baby"], "all")], "large": [(CONFIGS["large"], "all")],
                "all": [(CONFIGS["baby"], "all"), (CONFIGS["large"], "all")]}[args.config]
    cases = []
    for cfg, which in plan:
        group = [c for C, OC, label, bias in cfg.linears() for c in linear_cases(cfg, C, OC, label, bias)]
        if which == "all":
            group += (softmax_cases(cfg) + attention_cases(cfg) + layernorm_cases(cfg) + gelu_cases(cfg)
                      + cross_entropy_cases(cfg) + optimizer_cases(cfg))
        for c in group:
            c.config = cfg.name
        cases += group
    if args.only:
        cases = [c for c in cases if args.only in c.op]
    return [cfg for cfg, _ in plan], cases


# ---------------------------------------------------------------------------------------------
# Checking and timing
# ---------------------------------------------------------------------------------------------


def to_numpy(v):
    if hasattr(v, "detach"):
        v = v.detach().numpy()
    return np.array(v, dtype=np.float64, copy=True)


def result_of(ret, ns, outputs):
    """What one call produced, copied (see Case)."""
    if isinstance(ret, dict):
        items = list(ret.items())
    else:
        items = [(name, getattr(ns, name)) for name in outputs if getattr(ns, name) is not None]
        if ret is not None:
            items.append(("ret", ret))
    return {name: to_numpy(v) for name, v in items}


def to_torch(s):
    return NS(**{k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in vars(s).items()})


def compare(case, got, ref, what, tol):
    """Largest error of `got` against `ref` over their common outputs; abort if above tol."""
    common = [k for k in got if k in ref]
    if not common:
        sys.exit(f"bench_kernels: {case.key}: {what}: no common output to compare")
    worst = 0.0
    for k in common:
        scale = max(float(np.max(np.abs(ref[k]))), 1e-30)
        err = float(np.max(np.abs(got[k] - ref[k]))) / scale
        if not np.isfinite(err) or err > tol:
            sys.exit(f"bench_kernels: MISMATCH in {case.op} [{case.config}, {case.shape}], output '{k}': "
                     f"{what}: max |difference| / max |reference| = {err:.3g} > tolerance {tol:g}")
        worst = max(worst, err)
    return worst


def check(case, compiles):
    """Run every implementation once on identical inputs and compare. The kernel's first call
    happens here: if it adds a signature to the dispatcher, its duration is the compile time."""
    def fresh(dims):  # identical inputs for every implementation
        return case.make(dims, np.random.default_rng(0))

    errors = {}
    s = fresh(case.dims)
    run = case.jit(case.kernel, s)
    # linear_forward and linear_backward are plain Python: what compiles is the matmul they call
    dispatcher = case.kernel if hasattr(case.kernel, "signatures") else matmul
    n_sigs = len(dispatcher.signatures)
    t0 = time.perf_counter()
    ret = run()
    first = time.perf_counter() - t0
    if len(dispatcher.signatures) > n_sigs:
        compiles.append({"kernel": case.kernel.__name__, "case": case.key, "first_call_s": first})
    ref = result_of(ret, s, case.outputs)
    s = fresh(case.dims)
    errors["numpy"] = compare(case, ref, result_of(case.numpy(s)(), s, case.outputs), "compiled vs NumPy", case.tol)
    if torch is not None and case.torch is not None:
        t = to_torch(fresh(case.dims))
        got = result_of(case.torch(t)(), t, case.outputs)
        errors["torch"] = compare(case, ref, got, "compiled vs PyTorch", case.tol)
    # the interpreted loops on the small inputs (this call also compiles any jitted callee for them)
    s = fresh(case.tiny)
    ref = result_of(case.jit(case.kernel, s)(), s, case.outputs)
    s = fresh(case.tiny)
    with interpreted(case.kernel) as py_func:
        got = result_of(case.jit(py_func, s)(), s, case.outputs)
    errors["interp"] = compare(case, got, ref, "interpreted (py_func) vs compiled", TOL_INTERP)
    case.result["max_rel_error"] = errors


def timings(case, args, bar):
    """Median times of every implementation at full size, timed in alternating rounds (see the top
    of this file), and the per-round ratios; then the interpreted loops at tiny size."""
    rng = np.random.default_rng(1)
    r = case.result
    builds = {"jit": lambda s: case.jit(case.kernel, s), "numpy": case.numpy}
    if torch is not None and case.torch is not None:
        builds["torch"] = lambda s: case.torch(to_torch(s))
    runs = {}
    for name, build in builds.items():
        s = case.make(case.dims, rng)
        # torch namespaces share memory with s, so restoring s restores them too
        runs[name] = build(s), (lambda s=s: case.setup(s)) if case.setup else None
    rounds = {name: [] for name in runs}
    time.sleep(PAUSE)  # the previous case may have ended with NumPy
    for _ in range(args.rounds):
        for name, (fn, setup) in runs.items():
            bar.set_postfix_str(f"{case.op} [{case.config}] {name}")
            t = measure(fn, setup=setup, budget=args.budget / args.rounds, min_repeats=3)
            if name == "numpy":
                time.sleep(PAUSE)
            rounds[name].append(t.median)
            bar.update()
    for name, times in rounds.items():
        r[name] = {"median": statistics.median(times), "rounds": times}
        if name != "jit":
            r[f"x_{name}"] = statistics.median(t / j for t, j in zip(times, rounds["jit"]))
    bar.set_postfix_str(f"{case.op} [{case.config}] interp")
    s = case.make(case.tiny, rng)
    setup = (lambda: case.setup(s)) if case.setup else None
    with interpreted(case.kernel) as py_func:  # already warmed up by check(): one or two calls
        r["interp"] = measure(case.jit(py_func, s), setup=setup, budget=0.5, min_repeats=1,
                              max_repeats=2, warmup=False).__dict__
    bar.update()


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------


def median(r, name):
    return r[name]["median"] if name in r else None


def finish(cases):
    """Per-unit numbers."""
    for c in cases:
        r = c.result
        r["work"] = c.work(c.dims)
        r["unit"] = c.unit
        jit = median(r, "jit")
        r["jit_ns_per_unit"] = jit / r["work"] * 1e9
        r["interp_ns_per_unit"] = median(r, "interp") / c.work(c.tiny) * 1e9
        r["gflops"] = r["work"] / jit / 1e9 if c.unit == "FLOP" else None
        r["numpy_gflops"] = r["work"] / median(r, "numpy") / 1e9 if c.unit == "FLOP" else None
        r["x_interp"] = ratio(r["interp_ns_per_unit"], r["jit_ns_per_unit"])


def main_table(configs, cases):
    headers = ["op", "shape", "jit", "GFLOP/s", "numpy", "torch", "unit", "jit/u ns", "interp/u ns",
               "x interp", "x numpy", "x torch"]
    rows = []
    for cfg in configs:
        group = [c for c in cases if c.config == cfg.name]
        if not group:
            continue
        rows.append(f"[{cfg.describe()}]")
        for c in group:
            r = c.result
            rows.append([c.op, c.shape, fmt_time(median(r, "jit")), fmt_num(r["gflops"]), fmt_time(median(r, "numpy")),
                         fmt_time(median(r, "torch")), c.unit, fmt_num(r["jit_ns_per_unit"]),
                         fmt_num(r["interp_ns_per_unit"]),
                         fmt_num(r["x_interp"], "x"), fmt_num(r["x_numpy"], "x"), fmt_num(r.get("x_torch"), "x")])
    return table(headers, rows)


def compile_table(cases, compiles, startup):
    by_key = {c.key: c for c in cases}
    rows = [["(numba start-up)", "first parallel function in the process, not a kernel", fmt_time(startup), "-", "-"]]
    total = 0.0
    for e in compiles:
        c = by_key[e["case"]]
        steady = median(c.result, "jit")
        e["steady_s"] = steady
        e["compile_s"] = e["first_call_s"] - steady if steady is not None else None
        total += e["compile_s"] or 0.0
        shown = "~0" if e["compile_s"] is not None and e["compile_s"] <= 0 else fmt_time(e["compile_s"])
        rows.append([e["kernel"], f"{c.op} [{c.config}] {c.shape}", fmt_time(e["first_call_s"]), fmt_time(steady),
                     shown])
    rows.append(["total", f"{len(compiles)} specialisations", "", "", fmt_time(total)])
    return table(["kernel", "first compiled by", "first call", "steady", "compile"], rows, align="<<>>>"), total


def linear_table(configs, cases):
    headers = ["config", "shape", "product", "jit GFLOP/s", "numpy GFLOP/s", "torch GFLOP/s", "jit/numpy", "target"]
    rows, n_ok, n_all = [], 0, 0
    for c in cases:
        if not c.op.startswith("linear") or c.result.get("gflops") is None:
            continue
        r = c.result
        pct = r["x_numpy"]  # jit GFLOP/s / numpy GFLOP/s, per round
        counted = c.op != "linear bwd"  # the target is per product; the whole backward is shown too
        ok = pct is not None and pct >= 0.7
        if counted:
            n_all += 1
            n_ok += ok
        torch_gf = r["work"] / median(r, "torch") / 1e9 if "torch" in r else None
        rows.append([c.config, c.shape, c.op[len("linear "):], fmt_num(r["gflops"]), fmt_num(r["numpy_gflops"]),
                     fmt_num(torch_gf), f"{100 * pct:.0f}%" if pct else "-",
                     ("ok" if ok else "BELOW") if counted else ""])
    return table(headers, rows, align="<<<>>>>>"), n_ok, n_all


def environment(args, startup):
    blas = np.show_config(mode="dicts").get("Build Dependencies", {}).get("blas", {})
    return {
        "numba": numba.__version__, "numba_threads": numba.get_num_threads(),
        "threading_layer": numba.threading_layer(), "numpy": np.__version__,
        "blas": f"{blas.get('name', '?')} {blas.get('version', '')}".strip(),
        "blas_threads": os.environ.get("OPENBLAS_NUM_THREADS"),
        "torch": torch.__version__ if torch is not None else None,
        "torch_threads": torch.get_num_threads() if torch is not None else None,
        "numba_cache_dir": "fresh temporary directory" if not args.keep_cache else os.environ.get(
            "NUMBA_CACHE_DIR", "default (next to the sources)"),
        "vector_bits": vector_bits(), "python": sys.version.split()[0],
        "cpu_count": os.cpu_count(), "load_average": os.getloadavg()[0], "startup_s": startup,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
    }


FOOTNOTES = """\
Notes
  interpreted column: the kernel's loops and those of every kernel it calls (the matmul's packing and
    micro-kernel, attention's per-head products, ...) all run in the interpreter, except the scalar exp
    and sigmoid of fast_exp.py (GELU, attention), which stay compiled.
  linear bwd = dx, dW and db (no db for the lm head, which has no bias, as in the GPT); linear bwd dW
    and linear bwd dx = the matmul calls linear_backward makes for dW and dx. jit/numpy in the
    linear table is the median per-round ratio, so it can differ a little from the ratio of the two
    GFLOP/s columns (medians over all rounds).
  softmax_jvp/softmax_vjp take one row; they are timed on one long row (attention and the loss use the
    same formula inlined per row). x torch for softmax_vjp uses aten._softmax_backward_data.
  attention: jit and torch skip the masked half of the scores, NumPy computes all T x T and masks with -inf.
    torch = scaled_dot_product_attention and its autograd backward (graph built outside the timing).
  interp/u was measured on small inputs (e.g. 32x64->96 for linear, 16384 GELU elements, 32768 parameters;
    the "tiny" dims in --json); jit/u at the shape shown."""


def main():
    args = ARGS
    warn_if_busy(args.threads)
    if args.budget is None:
        args.budget = 0.02 if args.quick else 0.3
    if args.rounds is None:
        args.rounds = 2 if args.quick else 5
    numba.set_num_threads(args.threads)

    # Numba's one-time start-up (LLVM initialisation, launching the thread pool) would otherwise be
    # billed to whichever kernel happens to compile first.
    @numba.njit(parallel=True)
    def _startup(a):
        for i in numba.prange(a.shape[0]):
            a[i] += 1.0

    t0 = time.perf_counter()
    _startup(np.zeros(16))
    startup = time.perf_counter() - t0

    configs, cases = build_cases(args)
    if not cases:
        sys.exit("bench_kernels: no case matches --only")
    compiles = []
    t_start = time.perf_counter()
    with tqdm(cases, desc="checking (and compiling)", file=sys.stderr, disable=None, leave=False) as bar:
        for c in bar:
            bar.set_postfix_str(f"{c.op} [{c.config}]")
            if c.kernel is not None:
                check(c, compiles)
    t_checked = time.perf_counter()
    n_meas = sum(1 + args.rounds * (2 + (torch is not None and c.torch is not None)) for c in cases)
    with tqdm(total=n_meas, desc="timing", file=sys.stderr, disable=None, leave=False) as bar:
        for c in cases:
            timings(c, args, bar)
    finish(cases)
    t_timed = time.perf_counter()

    env = environment(args, startup)
    print(main_table(configs, cases))
    print()
    print(FOOTNOTES)
    print()
    ctable, total = compile_table(cases, compiles, startup)
    print(f"Compile times (first call on an {'EXISTING' if args.keep_cache else 'empty'} Numba cache, "
          "minus the steady-state time of one call)")
    print(ctable)
    print()
    ltable, n_ok, n_all = linear_table(configs, cases)
    if n_all:
        print("Linear layers against NumPy/OpenBLAS (target: jit >= 70% of NumPy's GFLOP/s for fwd, dx and dW)")
        print(ltable)
        print(f"{n_ok} of {n_all} linear products reach the target")
        print()
    print(f"Numba {env['numba']}: {env['numba_threads']} threads, threading layer '{env['threading_layer']}', "
          f"{env['vector_bits']}-bit vectors; "
          f"NumPy {env['numpy']} with {env['blas']} ({env['blas_threads']} threads); "
          + (f"PyTorch {env['torch']} ({env['torch_threads']} threads)" if torch is not None else "PyTorch not used")
          + f"; {env['cpu_count']} CPUs, load average {env['load_average']:.1f} at the end; float32"
          + (f"; OMP_WAIT_POLICY={env['omp_wait_policy']}" if env["omp_wait_policy"] else ""))
    errs = [c.result["max_rel_error"] for c in cases if "max_rel_error" in c.result]
    worst = {k: max((e.get(k, 0.0) for e in errs), default=0.0) for k in ("numpy", "torch", "interp")}
    print(f"All results were checked before timing: largest error vs NumPy {worst['numpy']:.2g}, "
          f"vs interpreted {worst['interp']:.2g}" + (f", vs PyTorch {worst['torch']:.2g}" if torch is not None else "")
          + " (max |difference| / max |reference|)")
    print(f"Run time: {t_checked - t_start:.0f} s checking and compiling, {t_timed - t_checked:.0f} s timing")

    if args.json:
        import json
        out = {"environment": env, "args": vars(args), "compile": compiles, "compile_total_s": total,
               "linear_target": {"reached": n_ok, "of": n_all},
               "results": [{"config": c.config, "op": c.op, "shape": c.shape, "dims": list(c.dims),
                            "tiny": list(c.tiny), **c.result} for c in cases]}
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1, default=float)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
