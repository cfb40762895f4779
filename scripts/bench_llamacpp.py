"""Generation speed beside llama.cpp: GPT-2 124M (random weights), float32 and 8-bit weights, its
`llama-bench` and this project's generate on the same threads, in one run.

    python scripts/bench_llamacpp.py --llama-bench ~/llama.cpp/build/bin/llama-bench
    python scripts/bench_llamacpp.py --rounds 3 --prompts 32,512 --new 64 --threads 2

Rows: llama.cpp F32 and Q8_0 (blocks of 32 weights, one float16 scale each), this project's
float32 weights and int8 weights (generate(..., weights="int8"): blocks of 32, a float32 scale
each). Columns: prompt tokens/s for each `--prompts` length (llama-bench's pp tests; here the
prefill of generate(prompt, 1)) and decode tokens/s (llama-bench's tg test of `--new` tokens; here
generate(prompt, 1 + new) minus the prefill, after a 32-token prompt, as scripts/bench_generate.py
measures it). The two run alternately for `--rounds` rounds; the table gives medians over rounds,
each ratio the median of the per-round ratios. llama.cpp's threads are its own (-t), this
project's held at `--threads` (TRANSFORMER_JIT_ADAPTIVE_THREADS=0).

Building llama-bench (about 5 minutes on 2 cores): llama.cpp's sources come vendored in the
llama-cpp-python source distribution,

    pip download --no-deps --no-binary :all: llama-cpp-python      # llama_cpp_python-X.tar.gz
    tar xf llama_cpp_python-*.tar.gz && cd llama_cpp_python-*/vendor/llama.cpp
    cmake -B build -DGGML_NATIVE=ON -DLLAMA_CURL=OFF -DCMAKE_BUILD_TYPE=Release
    cmake --build build --target llama-bench -j 2                  # build/bin/llama-bench

The model: GPT.save_pretrained writes config.json and model.safetensors; llama.cpp's
convert_hf_to_gguf.py (beside build/, or `--convert PATH`) also wants `n_ctx` in config.json and
GPT-2's tokenizer (vocab.json and merges.txt, copied from OpenAI's encoder.json and vocab.bpe that
scripts/fetch_gpt2_files.py fetches, or from `--tokenizer DIR`); it recognises GPT-2's
pre-tokenizer by its output, so the real files are needed. The converter runs with this Python
(torch, transformers and numpy: `pip install -e '.[bench]'`) and llama.cpp's gguf-py on its path,
writes F32 and Q8_0 files (`--outtype f32|q8_0`) into a temporary directory, removed at the end.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench_generate import write_model
from fetch_gpt2_files import gpt2_files

SCRIPTS = Path(__file__).resolve().parent
LLAMA_TYPES = {"f32": "llama.cpp F32", "q8_0": "llama.cpp Q8_0"}
OURS = {"jit": "transformer-jit float32", "jit-int8": "transformer-jit int8"}
PAIRS = (("jit", "f32"), ("jit-int8", "q8_0"))  # compared row by row


def find_llama_bench(path):
    """The llama-bench executable: `path`, or llama-bench on PATH; a one-line error otherwise."""
    found = path or shutil.which("llama-bench")
    if not found:
        sys.exit("no llama-bench: give --llama-bench PATH (see this script's help for how to build it)")
    if not os.access(found, os.X_OK) or not os.path.isfile(found):
        sys.exit(f"--llama-bench {found} is not an executable file")
    return Path(found).resolve()


def find_converter(path, llama_bench):
    """llama.cpp's convert_hf_to_gguf.py: `path`, or the one in the source tree llama-bench was built
    in (build/bin/llama-bench -> convert_hf_to_gguf.py)."""
    candidates = [Path(path)] if path else [parent / "convert_hf_to_gguf.py" for parent in llama_bench.parents]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    sys.exit(f"no convert_hf_to_gguf.py {'at ' + path if path else 'above ' + str(llama_bench)}: give --convert PATH")


def write_gpt2_directory(directory, tokenizer):
    """A random GPT-2 124M as convert_hf_to_gguf.py reads it: config.json (with n_ctx), model.safetensors,
    vocab.json and merges.txt."""
    write_model(directory)
    config_path = Path(directory) / "config.json"
    config = json.loads(config_path.read_text())
    config["n_ctx"] = config["n_positions"]
    config_path.write_text(json.dumps(config))
    source = Path(tokenizer) if tokenizer else gpt2_files(None)
    if source is None:
        sys.exit("GPT-2's tokenizer files could not be had: give --tokenizer DIR (vocab.json and merges.txt)")
    for theirs, ours in (("encoder.json", "vocab.json"), ("vocab.bpe", "merges.txt")):
        found = source / ours if (source / ours).is_file() else source / theirs
        if not found.is_file():
            sys.exit(f"--tokenizer {source} holds neither {ours} nor {theirs}")
        shutil.copyfile(found, Path(directory) / ours)


def convert(converter, model_dir, outtype):
    out = Path(model_dir) / f"gpt2-{outtype}.gguf"
    gguf_py = converter.parent / "gguf-py"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(gguf_py), os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run([sys.executable, str(converter), str(model_dir), "--outtype", outtype, "--outfile", str(out)],
                          env=env, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"convert_hf_to_gguf.py --outtype {outtype} failed:\n{done.stderr[-3000:]}")
    return out


def run_llama_bench(llama_bench, models, prompts, new, threads):
    """{outtype: {"pp{P}": prompt tokens/s, "tg": decode tokens/s}} from one llama-bench run."""
    cmd = [str(llama_bench), "-o", "json", "-t", str(threads), "-p", ",".join(map(str, prompts)), "-n", str(new),
           "-r", "3"]
    for path in models.values():
        cmd += ["-m", str(path)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"llama-bench failed:\n{done.stderr[-3000:]}")
    results = {outtype: {} for outtype in models}
    for test in json.loads(done.stdout):
        outtype = next(t for t, path in models.items() if Path(test["model_filename"]).name == path.name)
        key = f"pp{test['n_prompt']}" if test["n_prompt"] else "tg"
        results[outtype][key] = test["avg_ts"]
    return results


def run_ours(impl, model_dir, prompts, new, threads):
    """{"pp{P}": prompt tokens/s, "tg": decode tokens/s} of this project, each a fresh process of
    bench_generate.py's child run."""
    env = dict(os.environ, NUMBA_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads),
               TRANSFORMER_JIT_ADAPTIVE_THREADS="0")
    result = {}
    for prompt in prompts:
        cmd = [sys.executable, str(SCRIPTS / "bench_generate.py"), "--child", impl, "--model-dir", str(model_dir),
               "--prompt", str(prompt), "--new", str(new if prompt == min(prompts) else 1), "--repeats", "3",
               "--threads", str(threads), "--batch", "0"]
        done = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if done.returncode:
            sys.exit(f"{impl} run failed:\n{done.stderr[-3000:]}")
        run = json.loads(done.stdout.strip().splitlines()[-1])
        result[f"pp{prompt}"] = run["prefill_tok_s"]
        if prompt == min(prompts):
            result["tg"] = run["decode_tok_s"]
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False)
    parser.add_argument("--llama-bench", help="a built llama-bench (default: llama-bench on PATH)")
    parser.add_argument("--convert", help="llama.cpp's convert_hf_to_gguf.py (default: found above llama-bench)")
    parser.add_argument("--tokenizer", help="a directory with GPT-2's vocab.json and merges.txt (or encoder.json "
                        "and vocab.bpe); default: fetched by scripts/fetch_gpt2_files.py")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--prompts", default="32,512", help="prompt lengths for prompt tokens/s (default: 32,512)")
    parser.add_argument("--new", type=int, default=64, help="tokens decoded one at a time (default: 64)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    prompts = sorted({int(p) for p in args.prompts.split(",")})
    llama_bench = find_llama_bench(args.llama_bench)
    converter = find_converter(args.convert, llama_bench)
    rounds = []
    with tempfile.TemporaryDirectory(prefix="bench-llamacpp-") as model_dir:  # ~1 GB: removed at the end
        write_gpt2_directory(model_dir, args.tokenizer)
        models = {outtype: convert(converter, model_dir, outtype) for outtype in LLAMA_TYPES}
        for round_ in range(args.rounds):
            theirs = run_llama_bench(llama_bench, models, prompts, args.new, args.threads)
            ours = {impl: run_ours(impl, model_dir, prompts, args.new, args.threads) for impl in OURS}
            rounds.append(theirs | ours)
            print(f"round {round_ + 1}: {json.dumps(rounds[-1])}", file=sys.stderr)
    report(rounds, prompts, args)


def report(rounds, prompts, args):
    keys = [f"pp{p}" for p in prompts] + ["tg"]
    names = LLAMA_TYPES | OURS
    print(f"GPT-2 124M, random weights, batch 1, {args.threads} threads; {args.rounds} rounds; tokens/s "
          f"(pp: prompt tokens/s at that length; tg: decoding {args.new} tokens)")
    print(f"{'':28}" + "".join(f"{key:>10}" for key in keys))
    for name in names:
        print(f"{names[name]:28}" + "".join(f"{statistics.median(r[name][key] for r in rounds):10.1f}" for key in keys))
    for mine, theirs in PAIRS:
        parts = []
        for key in keys:
            ratios = [r[mine][key] / r[theirs][key] for r in rounds]
            parts.append(f"{key} {statistics.median(ratios):.2f}x {[round(x, 2) for x in ratios]}")
        print(f"{names[mine]} / {names[theirs]} (median of per-round ratios): " + ", ".join(parts))


if __name__ == "__main__":
    main()
