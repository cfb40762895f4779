"""Training speed and memory: this project's GPT against a PyTorch GPT of identical architecture.

    python scripts/bench_train.py                     # baby and large configs, PyTorch if installed
    python scripts/bench_train.py --config baby --rounds 5 --steps 30
    python scripts/bench_train.py --config gpt2 --rounds 3 --steps 5   # GPT-2 124M, B 4, T 64 (random ids)

Each measurement is a fresh process that builds the model, runs warm-up steps (compilation, first
touches of memory), then times `--steps` training steps (forward, backward, clipping, AdamW) on the
same tinyshakespeare batches, and reports its median ms/step and its peak resident memory. The two
implementations run interleaved for `--rounds` rounds, in the order A B, B A, A B, ... so that
drifts in machine load hit both alike. The table gives medians over rounds. Two ratios follow: of
those medians, and the median of the per-round ratios (each run against its partner in the same
round, a minute or less apart), which a drift between rounds does not move.

MFU (model FLOPs utilisation) divides the model's FLOPs per step (6 N + 12 L C T per token, with N
the parameter count) by the time, against a matmul peak measured here with NumPy/OpenBLAS on the
same threads.

PyTorch is optional: `pip install -e '.[bench]'`. Both sides use the same number of threads,
whatever the machine's load (TRANSFORMER_JIT_ADAPTIVE_THREADS=0, see kernels/threads.py).
With `--against REV` the other side is this project at git revision REV instead of PyTorch
(`--against HEAD~1`: did the last commit change the speed?).
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CONFIGS = {
    # name: (n_layer, n_head, n_embd, block_size, batch_size)
    "baby": (4, 4, 128, 64, 12),
    "large": (6, 6, 384, 256, 8),
    "gpt2": (12, 12, 768, 64, 4),   # GPT-2 124M at llm.c's test size (B 4, T 64)
}
# Vocabulary sizes other than tinyshakespeare's characters: GPT-2's, fed random token ids.
VOCAB = {"gpt2": 50257}
SHAKESPEARE = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinyshakespeare.txt"


def load_tokens():
    """tinyshakespeare as character ids (or the built-in corpus when the file is not beside the repo)."""
    from transformer_jit import CharTokenizer, default_corpus

    text = SHAKESPEARE.read_text(encoding="utf-8") if SHAKESPEARE.exists() else default_corpus()
    tok = CharTokenizer.from_text(text)
    return tok.encode(text), tok.vocab_size


def config_tokens(config_name):
    """(token ids, vocabulary size) for a config: tinyshakespeare's characters, or random ids over
    the config's own vocabulary (GPT-2's)."""
    if config_name in VOCAB:
        return np.random.default_rng(0).integers(0, VOCAB[config_name], 1 << 20), VOCAB[config_name]
    return load_tokens()


def batches(tokens, block_size, batch_size, n, seed=0):
    rng = np.random.default_rng(seed)
    for _ in range(n):
        starts = rng.integers(0, len(tokens) - block_size - 1, batch_size)
        idx = starts[:, None] + np.arange(block_size)
        yield tokens[idx].astype(np.int64), tokens[idx + 1].astype(np.int64)  # int64: what PyTorch's embedding takes


# -- the two implementations, each run in a child process ----------------------------------------------

def run_jit(config, vocab_size, data):
    from transformer_jit import GPT, AdamW, GPTConfig
    from transformer_jit import kernels as K

    n_layer, n_head, n_embd, block_size, _ = config
    model = GPT(GPTConfig(vocab_size=vocab_size, block_size=block_size, n_layer=n_layer, n_head=n_head,
                          n_embd=n_embd), seed=0)
    opt = AdamW(model, lr=1e-3, betas=(0.9, 0.99), weight_decay=0.1)

    def step(x, y):
        model.zero_grad()
        _, loss = model.forward(x, y)
        model.backward()
        K.clip_grad_norm(model.grads, 1.0)
        opt.step()
        return loss

    return step, model.num_params()


def run_torch(config, vocab_size, data):
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    torch.manual_seed(0)
    n_layer, n_head, n_embd, block_size, _ = config

    class Block(nn.Module):  # pre-LN, fused QKV, tanh-GELU MLP: the same block as transformer_jit.nn.block
        def __init__(self):
            super().__init__()
            self.ln_1, self.ln_2 = nn.LayerNorm(n_embd), nn.LayerNorm(n_embd)
            self.c_attn, self.attn_proj = nn.Linear(n_embd, 3 * n_embd), nn.Linear(n_embd, n_embd)
            self.c_fc, self.mlp_proj = nn.Linear(n_embd, 4 * n_embd), nn.Linear(4 * n_embd, n_embd)

        def forward(self, x):
            B, T, C = x.shape
            q, k, v = self.c_attn(self.ln_1(x)).split(C, dim=2)
            q, k, v = (t.view(B, T, n_head, C // n_head).transpose(1, 2) for t in (q, k, v))
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(B, T, C)
            x = x + self.attn_proj(y)
            return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))

    class TorchGPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.wte, self.wpe = nn.Embedding(vocab_size, n_embd), nn.Embedding(block_size, n_embd)
            self.h = nn.ModuleList(Block() for _ in range(n_layer))
            self.ln_f = nn.LayerNorm(n_embd)

        def forward(self, idx, targets):
            x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1]))
            for block in self.h:
                x = block(x)
            logits = self.ln_f(x) @ self.wte.weight.T  # tied output head
            return F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.view(-1))

    model = TorchGPT()
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=1e-3, betas=(0.9, 0.99))

    def step(x, y):
        opt.zero_grad(set_to_none=True)
        loss = model(torch.from_numpy(x), torch.from_numpy(y))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss.item()

    return step, sum(p.numel() for p in model.parameters())


def child(impl, config_name, steps, warmup, threads):
    if impl == "torch":
        import torch

        torch.set_num_threads(threads)
    config = CONFIGS[config_name]
    tokens, vocab_size = config_tokens(config_name)
    data = list(batches(tokens, config[3], config[4], warmup + steps))
    step, n_params = (run_jit if impl == "jit" else run_torch)(config, vocab_size, data)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times, losses = [], []
    for i, (x, y) in enumerate(data):
        t = time.perf_counter()
        losses.append(step(x, y))
        if i >= warmup:
            times.append(time.perf_counter() - t)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"ms": 1000 * statistics.median(times), "peak_mb": peak / 1024,
                      "before_mb": rss_before / 1024, "n_params": n_params, "vocab": vocab_size,
                      "first_loss": losses[0], "last_loss": losses[-1]}))


# -- the parent: interleave, summarise ----------------------------------------------------------------

def matmul_peak(threads):
    """GFLOP/s of a large float32 NumPy matmul: the practical peak the MFU is measured against."""
    a = np.random.default_rng(0).standard_normal((2048, 2048), dtype=np.float32)
    a @ a
    times = []
    for _ in range(5):
        t = time.perf_counter()
        a @ a
        times.append(time.perf_counter() - t)
    return 2 * 2048 ** 3 / statistics.median(times) / 1e9


def flops_per_step(n_params, config):
    n_layer, _, n_embd, T, B = config
    return (6 * n_params + 12 * n_layer * n_embd * T) * T * B


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False)
    parser.add_argument("--config", choices=[*CONFIGS, "all"], default="all", help="all: baby and large")
    parser.add_argument("--rounds", type=int, default=3, help="A/B rounds per config")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per run")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--against", metavar="REV", help="time this project at git revision REV instead of PyTorch")
    parser.add_argument("--child", choices=["jit", "torch"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.config, args.steps, args.warmup, args.threads)

    impls = ["jit"]
    env = dict(os.environ, NUMBA_NUM_THREADS=str(args.threads), OMP_NUM_THREADS=str(args.threads),
               TRANSFORMER_JIT_ADAPTIVE_THREADS="0")
    envs = {"jit": env}
    if args.against:
        from _bench import export_revision

        other = f"jit@{args.against}"
        impls.append(other)
        path = export_revision(args.against, os.path.join(tempfile.mkdtemp(prefix="bench-train-"), "pkg"))
        envs[other] = dict(env, PYTHONPATH=os.pathsep.join([path, env.get("PYTHONPATH", "")]))
    elif not args.no_torch:
        try:
            import torch  # noqa: F401

            impls.append("torch")
        except ImportError:
            print("PyTorch not installed (pip install -e '.[bench]'): timing transformer-jit alone")
    envs.setdefault("torch", env)
    peak = matmul_peak(args.threads)
    print(f"threads {args.threads}; matmul peak (NumPy float32 2048^3) {peak:.0f} GFLOP/s")
    names = ["baby", "large"] if args.config == "all" else [args.config]
    from tqdm.auto import tqdm

    bar = tqdm(total=len(names) * args.rounds * len(impls), desc="benchmark runs", file=sys.stderr)
    rows = []
    for name in names:
        results = {impl: [] for impl in impls}
        for round_ in range(args.rounds):
            for impl in impls if round_ % 2 == 0 else impls[::-1]:  # jit torch, torch jit, ...
                cmd = [sys.executable, __file__, "--child", impl.split("@")[0], "--config", name, "--steps",
                       str(args.steps), "--warmup", str(args.warmup), "--threads", str(args.threads)]
                out = subprocess.run(cmd, env=envs[impl], capture_output=True, text=True)
                if out.returncode:
                    sys.exit(f"{impl} run failed:\n{out.stderr}")
                results[impl].append(json.loads(out.stdout.strip().splitlines()[-1]))
                bar.update(1)
        B, T = CONFIGS[name][4], CONFIGS[name][3]
        for impl in impls:
            runs = results[impl]
            ms = statistics.median(r["ms"] for r in runs)
            gflop = flops_per_step(runs[0]["n_params"], CONFIGS[name]) / 1e9
            rows.append({"config": name, "impl": impl, "ms": ms, "tok_s": B * T / ms * 1000, "runs": runs,
                         "mfu": gflop / (ms / 1000) / peak, "gflop": gflop,
                         "peak_mb": statistics.median(r["peak_mb"] for r in runs),
                         "before_mb": statistics.median(r["before_mb"] for r in runs),
                         "all_ms": [round(r["ms"], 1) for r in runs], "loss": runs[0]["last_loss"]})
    bar.close()

    width = max(len(i) for i in impls)
    print(f"\n{'config':7} {'impl':{width}} {'ms/step':>8} {'tokens/s':>9} {'GFLOP':>6} {'MFU':>5} {'peak MB':>8} "
          f"{'setup MB':>8}  runs (ms/step)")
    for r in rows:
        print(f"{r['config']:7} {r['impl']:{width}} {r['ms']:8.1f} {r['tok_s']:9,.0f} {r['gflop']:6.1f} {r['mfu']:5.0%} "
              f"{r['peak_mb']:8.0f} {r['before_mb']:8.0f}  {r['all_ms']}")
    if len(impls) == 2:
        label = "PyTorch eager" if impls[1] == "torch" else impls[1]
        for name in names:
            jit, other = (next(r for r in rows if r["config"] == name and r["impl"] == i) for i in impls)
            per_round = statistics.median(t["ms"] / j["ms"] for j, t in zip(jit["runs"], other["runs"]))
            print(f"{name}: transformer-jit tokens/s = {jit['tok_s'] / other['tok_s']:.2f}x {label} "
                  f"(median of the per-round ratios: {per_round:.2f}x); "
                  f"peak memory {jit['peak_mb']:.0f} MB vs {other['peak_mb']:.0f} MB")
    print("setup MB: resident memory after building the model, before the first step; "
          "peak MB: the process's peak over the whole run.")


if __name__ == "__main__":
    main()
