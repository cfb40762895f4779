"""Peak memory of BPE training per MB of text, for several kinds of text and sizes.

    python scripts/bench_bpe_memory.py                          # 1, 4 and 16 MB of each kind
    python scripts/bench_bpe_memory.py --sizes 8 --kinds acgt --vocab-size 4096

Each measurement runs in its own child process, which builds the text, trains once on a short
text (so that the kernels are loaded and every fixed cost is paid), and then trains on the whole
text. A second child does the same without the last step. The difference of their peak resident
memory (the kernel's ru_maxrss, read per child with os.wait4) is what training on the text costs;
the table gives it per MB of text, with the merges per second of the training call. The texts:

    english       tinyshakespeare repeated (ordinary text: few distinct pieces)
    random-words  random lower-case words of 1-12 letters between spaces (every piece new)
    acgt          random A, C, G, T with no white space (one piece as long as the text)
    cjk           random characters of 3,000 CJK ideographs, no white space (3 bytes each)
    one-word      "transformer" repeated with no white space (one long, periodic piece)
"""
import argparse
import os
import subprocess
import sys
import time
import warnings

import numpy as np

SHAKESPEARE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data",
                           "tinyshakespeare.txt")
KINDS = ("english", "random-words", "acgt", "cjk", "one-word")


def make_text(kind, n_bytes, seed=0):
    """About n_bytes of UTF-8 text of the given kind."""
    rng = np.random.default_rng(seed)
    if kind == "english":
        from transformer_jit.data import default_corpus
        base = open(SHAKESPEARE, encoding="utf-8").read() if os.path.exists(SHAKESPEARE) else default_corpus()
        return (base * (n_bytes // len(base) + 1))[:n_bytes]
    if kind == "random-words":
        letters = rng.integers(97, 123, n_bytes, dtype=np.uint8)
        letters[rng.random(n_bytes) < 1 / 7] = 32
        return letters.tobytes().decode("ascii")
    if kind == "acgt":
        return np.frombuffer(b"ACGT", np.uint8)[rng.integers(0, 4, n_bytes)].tobytes().decode("ascii")
    if kind == "cjk":
        return "".join(map(chr, 0x4E00 + rng.integers(0, 3000, n_bytes // 3)))
    if kind == "one-word":
        return ("transformer" * (n_bytes // 11 + 1))[:n_bytes]
    raise ValueError(f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}")


def child(kind, megabytes, vocab_size, train):
    """The child process: print the merges made and the seconds the training call took."""
    from transformer_jit import BPETokenizer
    warnings.simplefilter("ignore")  # a text that runs out of pairs: the table shows the merges per second
    text = make_text(kind, int(megabytes * (1 << 20)))
    BPETokenizer.train("a warm-up text, trained on once " * 50, 270, progress=False)
    merges, seconds = 0, 0.0
    if train:
        t0 = time.perf_counter()
        merges = len(BPETokenizer.train(text, vocab_size, progress=False).merges)
        seconds = time.perf_counter() - t0
    print(merges, seconds)


def peak_of_child(kind, megabytes, vocab_size, train):
    """(peak resident memory in bytes, merges, seconds) of one child."""
    cmd = [sys.executable, __file__, "--child", kind, str(megabytes), str(vocab_size), str(int(train))]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed with status {proc.returncode}")
    merges, seconds = out.split()
    return usage.ru_maxrss * 1024, int(merges), float(seconds)  # ru_maxrss is in KiB on Linux


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=float, nargs="+", default=[1, 4, 16], help="MB of text (default: 1 4 16)")
    parser.add_argument("--kinds", nargs="+", default=list(KINDS), choices=KINDS)
    parser.add_argument("--vocab-size", type=int, default=4096, help="(default: 4096)")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, megabytes, vocab_size, train = args.child
        return child(kind, float(megabytes), int(vocab_size), train == "1")
    print(f"BPE training, vocabulary {args.vocab_size:,}: peak memory above a child that does not train")
    print(f"{'text':<14}{'MB':>6}{'peak MB':>10}{'training MB':>13}{'per MB of text':>16}{'merges/s':>10}")
    for kind in args.kinds:
        for megabytes in args.sizes:
            base, _, _ = peak_of_child(kind, megabytes, args.vocab_size, False)
            peak, merges, seconds = peak_of_child(kind, megabytes, args.vocab_size, True)
            used = max(0, peak - base) / 2**20
            print(f"{kind:<14}{megabytes:>6g}{peak / 2**20:>10.0f}{used:>13.0f}{used / megabytes:>13.1f} MB"
                  f"{merges / max(seconds, 1e-9):>10.0f}", flush=True)


if __name__ == "__main__":
    main()
