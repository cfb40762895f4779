"""BPETokenizer encoding and decoding: ids equal to tiktoken's for the same merges and pattern,
round trips, special tokens, the parallel and streaming paths, bad input."""
import os
from pathlib import Path

import numba
import numpy as np
import pytest

from transformer_jit import BPETokenizer
from transformer_jit.data.tokenizers import bpe as bpe_module
from transformer_jit.data import default_corpus, tokenizer_from_dict
from transformer_jit.data.tokenizers.bpe import EOT, GPT2_PATTERN
from transformer_jit.kernels._jit import interpreted
from transformer_jit.kernels.bpe import bpe_encode

SHAKESPEARE = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinyshakespeare.txt"
# Where scripts/bench_tokenizer.py puts GPT-2's own files.
GPT2_FILES = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "transformer-jit" / "gpt2"

STRINGS = [
    "", " ", "a", "hello world", "Hello, World!", "héllo wörld, café", "naïve résumé Ångström",
    "日本語のテキストです。", "中文 汉字 한국어", "emoji 🎉🎉 ok 👍🏽 🇫🇷", "123 4567 89.0 1,000,000 3.14159", "٣٤٥ Ⅻ ½",
    "I'm we'll they've she's it'd you're can't", "SHE'S DON'T I'M 'S 'T", "'s 't ''s '''", "\ttab\t\tx\t",
    "a   b    c     d", "\n\n\nx\n", "line one\r\nline two\r\n", "trailing spaces   ", "   leading",
    "\u00a0nbsp\u00a0 x",
    "ideographic\u3000space", "mixed Ελληνικά русский 中文 العربية हिन्दी", "a" * 3000, "1" * 2000 + " x",
    " " * 1500 + "y", "!?" * 700, "\x00\x01\x1c\x7f", "e\u0301 combining", "z" * 10 + "\n" * 10 + "\t" * 10,
]


def tiktoken_of(tok):
    """tiktoken built offline from this tokenizer's ranks (token bytes -> id), pattern and specials."""
    tiktoken = pytest.importorskip("tiktoken")
    return tiktoken.Encoding(f"bpe-{id(tok)}", pat_str=GPT2_PATTERN, mergeable_ranks=tok.vocab,
                             special_tokens=tok.special_tokens)


@pytest.fixture(scope="module")
def tok():
    return BPETokenizer.train(default_corpus()[:150_000] + "\n".join(STRINGS), 700, progress=False)


@pytest.fixture(scope="module")
def shakespeare():
    if not SHAKESPEARE.is_file():
        pytest.skip(f"{SHAKESPEARE} is not there")
    return SHAKESPEARE.read_text(encoding="utf-8")


def test_ids_equal_tiktoken_and_round_trip(tok):
    enc = tiktoken_of(tok)
    for s in STRINGS:
        ids = tok.encode(s)
        assert ids.dtype == np.uint16
        assert ids.tolist() == enc.encode_ordinary(s), repr(s[:50])
        assert tok.decode(ids) == s


def test_random_strings_equal_tiktoken(tok):
    enc = tiktoken_of(tok)
    rng = np.random.default_rng(1)
    alphabet = list("etaoins hrdlu'sStTmr\n\t.,!1é日🎉") + ["\u00a0", "\r\n", "  ", "the", " the", "'ll"]
    for _ in range(2000):
        s = "".join(rng.choice(alphabet, size=rng.integers(0, 30)))
        assert tok.encode(s).tolist() == enc.encode_ordinary(s), repr(s)


def test_shakespeare_equals_tiktoken(shakespeare):
    text = shakespeare[:200_000]
    tok = BPETokenizer.train(text, 1024, progress=False)
    ids = tok.encode(shakespeare[200_000:400_000])
    assert ids.tolist() == tiktoken_of(tok).encode_ordinary(shakespeare[200_000:400_000])
    assert tok.decode(ids) == shakespeare[200_000:400_000]


@pytest.mark.interop
@pytest.mark.skipif(not (GPT2_FILES / "encoder.json").is_file(), reason="GPT-2's files are not in the cache "
                    "(python scripts/fetch_gpt2_files.py fetches them)")
def test_gpt2_vocabulary_equals_tiktoken():
    tok = BPETokenizer.from_pretrained(GPT2_FILES)
    assert (tok.vocab_size, tok.eot_token) == (50257, 50256)
    enc = tiktoken_of(tok)
    for s in STRINGS:
        assert tok.encode(s).tolist() == enc.encode_ordinary(s), repr(s[:50])
    assert tok.encode("Hello world").tolist() == [15496, 995]


def test_special_tokens_follow_tiktoken(tok):
    enc = tiktoken_of(tok)
    eot = tok.eot_token
    assert eot == tok.vocab_size - 1 and tok.special_tokens == {EOT: eot}
    text = f"one{EOT}two {EOT}{EOT} three"
    with pytest.raises(ValueError, match="special token '<\\|endoftext\\|>'"):
        tok.encode(text)
    allowed = tok.encode(text, allowed_special="all")
    assert allowed.tolist() == enc.encode(text, allowed_special="all")
    assert tok.encode(text, allowed_special={EOT}).tolist() == allowed.tolist()
    assert allowed.tolist().count(eot) == 3
    plain = tok.encode(text, disallowed_special=())
    assert plain.tolist() == tok.encode_ordinary(text).tolist() == enc.encode(text, disallowed_special=())
    assert eot not in plain.tolist()
    assert tok.decode(allowed) == tok.decode(plain) == text
    assert tok.decode([eot]) == EOT and tok.token_bytes(eot) == EOT.encode()
    with pytest.raises(ValueError, match="not a special token"):
        tok.encode("x", allowed_special={"<|pad|>"})
    with pytest.raises(TypeError, match="not the string"):
        tok.encode("x", allowed_special=EOT)


def test_several_special_tokens_overlapping():
    tok = BPETokenizer.train(default_corpus()[:20_000], 300, special_tokens=(EOT, "<|end", "<|pad|>"), progress=False)
    assert tok.special_tokens == {EOT: 297, "<|end": 298, "<|pad|>": 299}
    ids = tok.encode(f"a{EOT}<|end<|pad|>", allowed_special="all").tolist()
    assert ids[-3:] == [297, 298, 299]  # the longest of those starting at one place wins
    ids = tok.encode(f"a{EOT}", allowed_special={"<|end"}, disallowed_special=()).tolist()
    assert ids[:2] == [tok.vocab[b"a"], 298] and tok.decode(ids) == f"a{EOT}"


def test_decode_replaces_partial_utf8_as_gpt2(tok):
    ids = tok.encode("é日🎉")
    data = "é日🎉".encode()
    byte_ids = [tok.vocab[bytes([b])] for b in data]
    for cut in range(len(data) + 1):
        assert tok.decode(byte_ids[:cut]) == data[:cut].decode("utf-8", errors="replace")
    assert tok.decode(byte_ids[:1]) == "\ufffd"
    assert tok.decode_bytes(ids) == data
    assert tok.decode(byte_ids) == tiktoken_of(tok).decode(byte_ids)


def test_tokens_that_are_parts_of_characters():
    """b"\xe2\x80" is the first two bytes of many characters, never a piece of its own."""
    vocab = {bytes([b]): b for b in range(256)} | {b"\xe2\x80": 256, "…".encode(): 257}
    tok = BPETokenizer(vocab, [(b"\xe2", b"\x80"), (b"\xe2\x80", b"\xa6")])
    for text in ("…", "—", "a…b— …"):
        assert tok.encode(text).tolist() == tiktoken_of(tok).encode_ordinary(text)
    assert tok.encode("—").tolist() == [256, 0x94]
    assert tok.decode([256]) == "\ufffd"


def test_uint32_past_65536_tokens():
    """All 65,536 two-byte tokens plus the bytes: ids need 32 bits."""
    singles = {bytes([b]): i for i, b in enumerate(range(256))}
    pairs = [(bytes([a]), bytes([b])) for a in range(256) for b in range(256)]
    vocab = {**singles, **{a + b: 256 + i for i, (a, b) in enumerate(pairs)}}
    tok = BPETokenizer(vocab, pairs)
    ids = tok.encode("hello world, 65,536!")
    assert tok.vocab_size == 65792 and ids.dtype == np.uint32
    assert ids.tolist() == tiktoken_of(tok).encode_ordinary("hello world, 65,536!")
    assert tok.decode(ids) == "hello world, 65,536!"


def test_parallel_chunks_equal_one_thread(tok, monkeypatch, fixed_threads):
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("Numba has one thread")
    corpus = default_corpus()
    # Documents of 20 to 2,000 characters between special tokens, then one long span: blocks of
    # many spans, and a span cut into several.
    text = EOT.join(corpus[i:i + 20 + i % 1980] for i in range(0, 40_000, 2_000)) + EOT + corpus[150_000:200_000]
    serial = tok.encode(text, allowed_special="all")
    monkeypatch.setattr(bpe_module, "PARALLEL_MIN_BYTES", 1000)
    monkeypatch.setattr(bpe_module, "MIN_CHUNK_BYTES", 500)
    fixed_threads(2)
    chunked = tok.encode(text, allowed_special="all")
    assert chunked.dtype == serial.dtype and np.array_equal(chunked, serial)


def test_encode_chunks_equals_encode(tok):
    text = default_corpus()[:20_000] + f"end{EOT}start  \n\n x"
    rng = np.random.default_rng(2)
    cuts = sorted(rng.integers(0, len(text), size=40).tolist()) + [text.index(EOT) + 5]
    chunks = [text[a:b] for a, b in zip([0, *sorted(cuts)], [*sorted(cuts), len(text)])]
    streamed = list(tok.encode_chunks(chunks, allowed_special="all"))
    assert len(streamed) > 5
    assert np.concatenate(streamed).tolist() == tok.encode(text, allowed_special="all").tolist()


def test_encode_chunks_keeps_special_tokens_with_spaces_whole():
    tok = BPETokenizer.train(default_corpus()[:5_000], 300, special_tokens=("<| a b |>",), progress=False)
    text = "one two <| a b |> three four"
    chunks = [text[:12], text[12:14], text[14:]]  # ".. <| a", " b", " |> .."
    streamed = np.concatenate(list(tok.encode_chunks(chunks, allowed_special="all")))
    assert streamed.tolist() == tok.encode(text, allowed_special="all").tolist()
    assert streamed.tolist().count(tok.special_tokens["<| a b |>"]) == 1


def test_checkpoint_dict_round_trip(tok):
    import json

    d = json.loads(json.dumps(tok.to_dict()))
    again = tokenizer_from_dict(d)
    assert isinstance(again, BPETokenizer)
    assert again.vocab == tok.vocab and again.merges == tok.merges and again.special_tokens == tok.special_tokens
    assert again.encode(STRINGS[7]).tolist() == tok.encode(STRINGS[7]).tolist()
    with pytest.raises(ValueError, match="not a BPE tokenizer"):
        BPETokenizer.from_dict({"type": "char"})
    with pytest.raises(ValueError, match="byte-level"):
        BPETokenizer.from_dict({**d, "tokens": ["a b", *d["tokens"][1:]]})
    with pytest.raises(ValueError, match="even length"):
        BPETokenizer.from_dict({**d, "merges": d["merges"][:-1]})


def test_constructor_round_trip_and_checks(tok):
    again = BPETokenizer(tok.vocab, tok.merges, tok.special_tokens)
    assert again.encode(STRINGS[5]).tolist() == tok.encode(STRINGS[5]).tolist()
    vocab, merges = tok.vocab, tok.merges
    with pytest.raises(ValueError, match="lacks the single byte"):
        BPETokenizer({(b"QQ" if k == b"Q" else k): v for k, v in vocab.items()}, [], {})
    with pytest.raises(ValueError, match="no earlier merge makes"):
        BPETokenizer(vocab, merges[1:] + merges[:1], tok.special_tokens)
    with pytest.raises(ValueError, match="repeats"):
        BPETokenizer(vocab, merges + merges[:1], tok.special_tokens)
    with pytest.raises(ValueError, match="ids must be 0"):
        BPETokenizer(vocab, merges, {EOT: tok.vocab_size + 3})
    with pytest.raises(ValueError, match="neither a byte nor made by a merge"):
        BPETokenizer(vocab, merges[:-1], tok.special_tokens)
    with pytest.raises(ValueError, match="ordinary token's name"):
        BPETokenizer(vocab, merges, {"Ġt": tok.vocab_size - 1})
    with pytest.raises(TypeError, match="dict"):
        BPETokenizer(list(vocab), merges)


@pytest.mark.parametrize("bad, error, match", [
    (b"bytes", TypeError, "must be a str"), (None, TypeError, "must be a str"), (["a"], TypeError, "must be a str"),
    ("lone \ud800 surrogate", ValueError, "lone surrogate"),
])
def test_encode_rejects(tok, bad, error, match):
    with pytest.raises(error, match=match):
        tok.encode(bad)


@pytest.mark.parametrize("bad, error, match", [
    ([700], ValueError, "token id 700 .* outside the vocabulary"), ([1, -1], ValueError, "token id -1 .*index 1"),
    ([[1, 2]], ValueError, "one-dimensional"), (["a"], TypeError, "integers"), ([1.5], TypeError, "integers"),
    ("abc", TypeError, "not str"), (np.array([2**40], np.uint64), ValueError, "outside the vocabulary"),
])
def test_decode_rejects(tok, bad, error, match):
    with pytest.raises(error, match=match):
        tok.decode(bad)


def test_decode_accepts_any_integer_array(tok):
    ids = tok.encode("any integer type")
    for dtype in (np.uint16, np.int32, np.int64, np.uint32, np.uint64):
        assert tok.decode(ids.astype(dtype)) == "any integer type"
    assert tok.decode(ids.tolist()) == tok.decode(tuple(ids)) == "any integer type"
    assert tok.decode([]) == ""


def test_encode_kernel_runs_interpreted(tok):
    text = "Hi there's 12 é\n\n  naïveté"
    data = np.frombuffer(text.encode(), np.uint8)
    out = np.zeros(len(data), tok.dtype)
    args = (np.zeros(1, np.int64), out, data, np.array([0]), np.array([len(data)]), np.array([-1]), *tok._tables)
    with np.errstate(over="ignore"), interpreted(bpe_encode) as f:  # FNV's multiply wraps on purpose
        n = f(*args)
    assert out[:n].tolist() == tok.encode(text).tolist()
