"""Generation speed: GPT-2 124M, batch 1, this project's key/value-cached generate beside Hugging Face
transformers' generate (its cache on), on the same weights and the same number of threads (this
project's count held fixed whatever the load: TRANSFORMER_JIT_ADAPTIVE_THREADS=0).

    python scripts/bench_generate.py                      # 3 rounds, prompt 32 tokens, 64 new tokens
    python scripts/bench_generate.py --rounds 5 --new 128 --no-hf
    python scripts/bench_generate.py --prompt 512 --new 16 --batch 0   # prefill of a long prompt

A randomly initialised GPT-2 124M (float32) is written once in Hugging Face format (config.json,
model.safetensors) with GPT.save_pretrained; every run is a fresh process that loads it
(GPT.from_pretrained, or transformers' GPT2LMHeadModel.from_pretrained), warms up, then times
greedy generation `--repeats` times:
    prefill   generate(prompt, 1): the prompt's forward and the first token; prompt tokens/s
    decode    generate(prompt, 1 + new) minus the above: `new` tokens one at a time; tokens/s
    total     generate(prompt, 1 + new), prefill included: new tokens/s as a user sees it
The implementations run interleaved for `--rounds` rounds (A B C, C B A, ...), so that drifts in
machine load hit all alike; the table gives medians over rounds, and each ratio is the median of
the per-round ratios.

Memory bound: a token reads every weight matrix once (12 C^2 per layer and the V x C lm head; the
embedding rows and the key/value cache are small next to them), so tokens/s cannot pass the memory
bandwidth over those bytes. The bandwidth is measured here before every round: NumPy sums over a
512 MB float32 array, one share per Python thread on `--threads` threads (NumPy lets go of the GIL
while it sums); the bound uses the median, or `--bandwidth` if given. (A sum is not the fastest
reader: the matrix-vector kernel can stream faster than it, so a fraction above 100% is possible.)
The bfloat16 and int8 runs read copies of the matrices (generate(..., weights="bfloat16" or
"int8")): half the bytes, or a quarter plus a float32 scale per 32 weights. Their prefill includes
making those copies (once per generate call); each also reports how far its logits are from
float32's on the prompt (a prompt of up to 16 tokens runs the copies; a longer one, float32).

Batched decoding (`--batch N`, default 8, 0 for none): each of this project's runs also generates
from N different prompts together and reports the aggregate decode tokens/s (N new tokens per
step) and its ratio to batch 1, measured in the same process: every weight is read once per step
for all N rows, so the ratio approaches N while the products stay bound by memory.

CTranslate2 (the `ctranslate2` package, in the `bench` extra; its converter needs transformers and
torch) runs too where installed: the model directory converted once with its Transformers converter
to float32 and to int8 (a tokenizer of placeholder token names is written beside the weights for
it), and its Generator decoding greedily on the same threads, batch 1. llama.cpp is measured by
scripts/bench_llamacpp.py.

On a machine that other processes keep busy, OpenMP threads that spin while they wait make every
parallel region wait for a time slice; `--passive` sets OMP_WAIT_POLICY=PASSIVE for every run (both
implementations use OpenMP threads).

transformers and torch are optional (`pip install -e '.[bench]'`); without them the hf column is
left out. With `--against REV` this project at git revision REV runs beside the working tree (float32
and bfloat16 both; int8 too if REV has it: `--no-int8` otherwise), and the ratios are the working
tree's against it: did a change move the speed?
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

N_LAYER, N_HEAD, N_EMBD, VOCAB, BLOCK = 12, 12, 768, 50257, 1024  # GPT-2 124M
IMPLS = {"jit": "transformer-jit float32", "jit-bf16": "transformer-jit bfloat16 weights",
         "jit-int8": "transformer-jit int8 weights", "hf": "transformers (PyTorch) float32",
         "ct2": "CTranslate2 float32", "ct2-int8": "CTranslate2 int8"}
WEIGHTS = {"jit": None, "jit-bf16": "bfloat16", "jit-int8": "int8"}  # generate's weights= of each run
BYTES_PER_WEIGHT = {"jit-bf16": 2, "jit-int8": 1 + 4 / 32, "ct2-int8": 1 + 4 / 32}  # else 4 (float32)


def prompt_ids(n, rows=1):
    return np.random.default_rng(0).integers(0, VOCAB, (rows, n))


# -- one run, in its own process ------------------------------------------------------------------

def generator(impl, model_dir, threads):
    """A function (prompts (B, P) int64, n) -> (B, n) greedy tokens, for `impl`, with its model loaded."""
    if impl.startswith("ct2"):
        import ctranslate2

        model = ctranslate2.Generator(os.path.join(model_dir, impl), device="cpu", intra_threads=threads,
                                      inter_threads=1, compute_type="int8" if impl == "ct2-int8" else "float32")

        def generate(prompt, n):
            results = model.generate_batch([[f"t{int(t)}" for t in row] for row in prompt], max_length=n,
                                           min_length=n, sampling_topk=1, include_prompt_in_result=False)
            return np.array([r.sequences_ids[0] for r in results])
        return generate
    if impl == "hf":
        import torch
        from transformers import GPT2LMHeadModel

        torch.set_num_threads(threads)
        model = GPT2LMHeadModel.from_pretrained(model_dir, dtype=torch.float32).eval()

        def generate(prompt, n):
            ids = torch.from_numpy(prompt)
            with torch.inference_mode():
                out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, min_new_tokens=n,
                                     do_sample=False, use_cache=True, pad_token_id=0)
            return out[:, prompt.shape[1]:].numpy()
        return generate

    from transformer_jit import GPT

    model = GPT.from_pretrained(model_dir)
    return lambda prompt, n: model.generate(prompt, n, temperature=0, weights=WEIGHTS[impl])[:, prompt.shape[1]:]


def narrow_logit_error(model_dir, prompt, weights):
    """Max |logits(`weights` copies) - logits(float32)| at the prompt's last position, and the
    float32 logits' standard deviation, for scale."""
    from transformer_jit import GPT
    from transformer_jit.models.generation import narrow_weights
    from transformer_jit.nn import KVCache

    model = GPT.from_pretrained(model_dir).eval()

    def last_logits(copies):  # the prompt's forward, as generate's prefill runs it
        cache = KVCache(1, prompt.shape[1], model.dtype)
        return model.forward(prompt, cache=cache, weights=copies)[0][0, -1].copy()

    exact, narrow = last_logits(None), last_logits(narrow_weights(model, weights))
    return float(np.abs(narrow - exact).max()), float(exact.std())


def timed(fn, *args):
    t = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t, out


def decode_speed(generate, prompt, new, repeats, impl):
    """(prefill seconds, total seconds, the new tokens), medians over `repeats`, of generating
    1 and 1 + new tokens after `prompt` (B, P)."""
    prefill, total, tokens = [], [], None
    for _ in range(repeats):
        t1, _ = timed(generate, prompt, 1)
        tn, tokens = timed(generate, prompt, 1 + new)
        if tokens.shape != (prompt.shape[0], 1 + new):
            sys.exit(f"{impl} generated {tokens.shape} tokens, not {(prompt.shape[0], 1 + new)}")
        prefill.append(t1)
        total.append(tn)
    return prefill, total, tokens


def child(impl, model_dir, prompt_len, new, repeats, threads, batch, revision=False):
    generate = generator(impl, model_dir, threads)
    prompt = prompt_ids(prompt_len)
    generate(prompt, 2)  # warm-up: compiled code loaded, buffers allocated, pages touched
    prefill, total, tokens = decode_speed(generate, prompt, new, repeats, impl)
    result = {"prefill_tok_s": prompt_len / statistics.median(prefill),
              "decode_tok_s": statistics.median(new / (tn - t1) for t1, tn in zip(prefill, total)),
              "total_tok_s": (1 + new) / statistics.median(total), "tokens": [int(t) for t in tokens[0]]}
    if batch > 1 and impl in WEIGHTS:  # N rows per step: aggregate decode tokens/s
        prompts = prompt_ids(prompt_len, batch)
        generate(prompts, 2)
        prefill, total, _ = decode_speed(generate, prompts, new, repeats, impl)
        result["batch_decode_tok_s"] = statistics.median(batch * new / (tn - t1) for t1, tn in zip(prefill, total))
    if WEIGHTS.get(impl) and not revision:  # another revision's internals may differ
        result["logit_error"], result["logit_std"] = narrow_logit_error(model_dir, prompt[:, :16], WEIGHTS[impl])
    print(json.dumps(result))


# -- the parent: write the model, measure the bandwidth, interleave, summarise ------------------------

def write_model(directory):
    from transformer_jit import GPT, GPTConfig

    config = GPTConfig(vocab_size=VOCAB, block_size=BLOCK, n_layer=N_LAYER, n_head=N_HEAD, n_embd=N_EMBD)
    GPT(config, seed=0).save_pretrained(directory)


def convert_for_ct2(model_dir, impls):
    """CTranslate2's copies of the model in model_dir/ct2 and model_dir/ct2-int8. Its converter reads
    a tokenizer too: token i is named t{i} (the runs pass token names), the last <|endoftext|>."""
    if not impls:
        return
    vocab = {f"t{i}": i for i in range(VOCAB - 1)} | {"<|endoftext|>": VOCAB - 1}
    with open(os.path.join(model_dir, "vocab.json"), "w") as f:
        json.dump(vocab, f)
    with open(os.path.join(model_dir, "merges.txt"), "w") as f:
        f.write("#version: 0.2\n")
    from ctranslate2.converters import TransformersConverter

    for impl in impls:
        TransformersConverter(model_dir).convert(os.path.join(model_dir, impl),
                                                 quantization="int8" if impl == "ct2-int8" else None)


def bandwidth(threads, nbytes=512 * 2 ** 20):
    """Bytes per second that `threads` Python threads read when each NumPy-sums its share of one array."""
    a = np.ones(nbytes // 4, dtype=np.float32)
    parts = np.array_split(a, threads)

    def run():
        workers = [threading.Thread(target=part.sum) for part in parts]
        for w in workers:
            w.start()
        for w in workers:
            w.join()

    run()
    return nbytes / statistics.median(timed(run)[0] for _ in range(7))


def weight_bytes(bytes_per_weight):
    """Bytes of the matrices one token reads: 12 C^2 per layer (qkv 3 C^2, projection C^2, MLP 8 C^2)
    and the lm head V x C."""
    return (12 * N_LAYER * N_EMBD ** 2 + VOCAB * N_EMBD) * bytes_per_weight


def has_hf():
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError:
        return False
    return True


def has_ct2():
    try:
        import ctranslate2  # noqa: F401
    except ImportError:
        return False
    return has_hf()  # its converter loads the model with transformers


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3, help="timed generations per run")
    parser.add_argument("--prompt", type=int, default=32, help="prompt tokens")
    parser.add_argument("--new", type=int, default=64, help="tokens generated one at a time")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-hf", action="store_true", help="leave out transformers")
    parser.add_argument("--no-bf16", action="store_true", help="leave out the bfloat16 run")
    parser.add_argument("--no-int8", action="store_true", help="leave out the int8 run")
    parser.add_argument("--no-ct2", action="store_true", help="leave out CTranslate2")
    parser.add_argument("--batch", type=int, default=8, help="rows decoded together in the batched runs (0: none)")
    parser.add_argument("--passive", action="store_true", help="OMP_WAIT_POLICY=PASSIVE in every run")
    parser.add_argument("--bandwidth", type=float, metavar="GB/S",
                        help="the memory bandwidth to state the bound with, instead of the measured one")
    parser.add_argument("--against", metavar="REV", help="also run this project at git revision REV (no transformers)")
    parser.add_argument("--child", choices=list(IMPLS), help=argparse.SUPPRESS)
    parser.add_argument("--revision", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.model_dir, args.prompt, args.new, args.repeats, args.threads, args.batch,
                     args.revision)

    impls = ["jit"] + ([] if args.no_bf16 else ["jit-bf16"]) + ([] if args.no_int8 else ["jit-int8"])
    env = dict(os.environ, NUMBA_NUM_THREADS=str(args.threads), OMP_NUM_THREADS=str(args.threads),
               MKL_NUM_THREADS=str(args.threads), TRANSFORMER_JIT_ADAPTIVE_THREADS="0")
    if args.passive:
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    envs = {impl: env for impl in IMPLS}
    if args.against:
        from _bench import export_revision

        path = export_revision(args.against, os.path.join(tempfile.mkdtemp(prefix="bench-generate-"), "pkg"))
        for impl in list(impls):
            IMPLS[f"{impl}@{args.against}"] = f"{IMPLS[impl]} @{args.against}"
            envs[f"{impl}@{args.against}"] = dict(env, PYTHONPATH=os.pathsep.join([path, env.get("PYTHONPATH", "")]))
        impls += [f"{impl}@{args.against}" for impl in impls]
    else:
        if not args.no_hf:
            if has_hf():
                impls.append("hf")
            else:
                print("transformers or torch not installed (pip install -e '.[bench]'): no hf column")
        if not args.no_ct2:
            if has_ct2():
                impls += ["ct2", "ct2-int8"]
            else:
                print("ctranslate2 (or the transformers its converter needs) not installed: no CTranslate2 rows")
    with tempfile.TemporaryDirectory(prefix="bench-generate-") as model_dir:  # 500 MB: removed at the end
        write_model(model_dir)
        convert_for_ct2(model_dir, [impl for impl in impls if impl.startswith("ct2")])
        runs, bandwidths = run_rounds(args, impls, envs, model_dir)
    report(args, impls, runs, bandwidths)


def run_rounds(args, impls, envs, model_dir):
    """Every implementation once per round, in alternating order: (runs by implementation, the
    bandwidth measured before each round)."""
    from tqdm.auto import tqdm

    runs = {impl: [] for impl in impls}
    bandwidths = []
    with tqdm(total=args.rounds * len(impls), desc="benchmark runs", file=sys.stderr, disable=None) as bar:
        for round_ in range(args.rounds):
            bandwidths.append(bandwidth(args.threads))
            for impl in impls if round_ % 2 == 0 else impls[::-1]:
                cmd = [sys.executable, __file__, "--child", impl.split("@")[0], "--model-dir", model_dir, "--prompt",
                       str(args.prompt), "--new", str(args.new), "--repeats", str(args.repeats), "--threads",
                       str(args.threads), "--batch", str(args.batch)] + (["--revision"] if "@" in impl else [])
                out = subprocess.run(cmd, env=envs[impl], capture_output=True, text=True)
                if out.returncode:
                    sys.exit(f"{impl} run failed:\n{out.stderr}")
                runs[impl].append(json.loads(out.stdout.strip().splitlines()[-1]))
                bar.update(1)
    return runs, bandwidths


def report(args, impls, runs, bandwidths):
    print(f"GPT-2 124M, batch 1, float32, {args.threads} threads; prompt {args.prompt} tokens, {args.new} new, greedy"
          + ("; OMP_WAIT_POLICY=PASSIVE" if args.passive else ""))

    def median(impl, key):
        return statistics.median(r[key] for r in runs[impl])

    gbs = statistics.median(bandwidths)
    print(f"memory bandwidth (NumPy sums, {args.threads} threads): {gbs / 1e9:.1f} GB/s, per round "
          f"{[round(b / 1e9, 1) for b in bandwidths]}" + (f"; the bound assumes {args.bandwidth} GB/s"
                                                          if args.bandwidth else ""))
    gbs = args.bandwidth * 1e9 if args.bandwidth else gbs

    print(f"\n{'':32} {'decode tok/s':>12} {'bound':>6} {'of bound':>8} {'total tok/s':>11} {'prefill tok/s':>13}"
          "  decode tok/s per round")
    for impl in impls:
        bound = gbs / weight_bytes(BYTES_PER_WEIGHT.get(impl.split("@")[0], 4))
        decode = median(impl, "decode_tok_s")
        print(f"{IMPLS[impl]:32} {decode:12.1f} {bound:6.0f} {decode / bound:8.0%} {median(impl, 'total_tok_s'):11.1f} "
              f"{median(impl, 'prefill_tok_s'):13.0f}  {[round(r['decode_tok_s'], 1) for r in runs[impl]]}")
    print(f"bound: {gbs / 1e9:.1f} GB/s over the matrices a token reads ({weight_bytes(4) / 1e6:.0f} MB in float32, "
          f"{weight_bytes(2) / 1e6:.0f} MB in bfloat16, {weight_bytes(1 + 4 / 32) / 1e6:.0f} MB in int8 with scales)")
    ours = [impl for impl in impls if impl in WEIGHTS]
    for other, name, mine in (("hf", "transformers'", ours), ("ct2", "CTranslate2 float32's", ["jit"]),
                              ("ct2-int8", "CTranslate2 int8's", ["jit-int8"])):
        if other not in impls:
            continue
        for impl in [impl for impl in mine if impl in impls]:
            for key, what in (("decode_tok_s", "decode"), ("total_tok_s", "total")):
                ratios = [j[key] / h[key] for j, h in zip(runs[impl], runs[other])]
                print(f"{IMPLS[impl]}: {what} tokens/s = {statistics.median(ratios):.2f}x {name} "
                      f"(median of the per-round ratios {[round(r, 2) for r in ratios]})")
    if "hf" in impls:
        same = sum(a == b for a, b in zip(runs["jit"][0]["tokens"], runs["hf"][0]["tokens"]))
        print(f"greedy tokens equal to transformers': {same} of {args.new + 1} "
              "(random weights give near-ties, which rounding may break either way)")
    for impl in impls:
        if "@" in impl:
            mine = impl.split("@")[0]
            parts = ", ".join(
                f"{what} {statistics.median(a[key] / b[key] for a, b in zip(runs[mine], runs[impl])):.3f}x "
                f"(per round {[round(a[key] / b[key], 3) for a, b in zip(runs[mine], runs[impl])]})"
                for key, what in (("decode_tok_s", "decode"), ("prefill_tok_s", "prefill"), ("total_tok_s", "total")))
            same = all(a["tokens"] == b["tokens"] for a, b in zip(runs[mine], runs[impl]))
            print(f"{IMPLS[mine]}, the working tree against {impl.split('@')[1]}: {parts}; greedy tokens "
                  f"{'identical' if same else 'DIFFERENT'}")
    batched = [impl for impl in impls if "batch_decode_tok_s" in runs[impl][0]]
    if batched:
        print(f"\nbatched decoding, {args.batch} rows together against 1 (aggregate decode tokens/s, "
              "the same process):")
    for impl in batched:
        ratios = [r["batch_decode_tok_s"] / r["decode_tok_s"] for r in runs[impl]]
        print(f"{IMPLS.get(impl, impl):32} 1 row {median(impl, 'decode_tok_s'):7.1f}, {args.batch} rows "
              f"{median(impl, 'batch_decode_tok_s'):7.1f}: {statistics.median(ratios):.2f}x (median of the per-round "
              f"ratios {[round(r, 2) for r in ratios]})")
    for impl in impls:
        if "logit_error" in runs[impl][0]:
            print(f"{WEIGHTS[impl]} weights: logits off by at most {median(impl, 'logit_error'):.2g} on a 16-token "
                  f"prompt (the float32 logits' standard deviation: {median(impl, 'logit_std'):.2g})")


if __name__ == "__main__":
    main()
