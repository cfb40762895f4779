"""BPETokenizer.train against a plain Python BPE trainer, and against Hugging Face's trainer when
the `tokenizers` package is installed (a benchmark-only package)."""
import warnings
from collections import Counter

import numpy as np
import pytest

from transformer_jit import BPETokenizer
from transformer_jit.data import default_corpus
from transformer_jit.data.tokenizers.bpe import EOT, GPT2_PATTERN
from transformer_jit.data.tokenizers.byte_unicode import BYTE_ORDER, bytes_to_text


def reference_bpe(text, vocab_size, specials):
    """(tokens, merges) by the definition: count every adjacent pair of every piece, merge the most
    frequent (ties: smallest (left id, right id)) left to right in each piece, repeat; a merge that
    spells an existing token reuses it."""
    regex = pytest.importorskip("regex")
    for s in specials:
        text = text.replace(s, "\0")  # special tokens' text is cut out, never learned from
    pieces = Counter(p.encode() for part in text.split("\0") for p in regex.findall(GPT2_PATTERN, part))
    tokens = [bytes([b]) for b in BYTE_ORDER]
    index = {t: i for i, t in enumerate(tokens)}
    words = Counter({tuple(index[bytes([b])] for b in p): n for p, n in pieces.items()})
    merges = []
    while len(tokens) < vocab_size - len(specials):
        pairs = Counter()
        for w, n in words.items():
            for pair in zip(w, w[1:]):
                pairs[pair] += n
        if not pairs:
            break
        a, b = min(pairs, key=lambda p: (-pairs[p], p))
        if tokens[a] + tokens[b] not in index:
            index[tokens[a] + tokens[b]] = len(tokens)
            tokens.append(tokens[a] + tokens[b])
        c = index[tokens[a] + tokens[b]]
        merges.append((tokens[a], tokens[b]))
        merged = Counter()
        for w, n in words.items():
            out, i = [], 0
            while i < len(w):
                if w[i:i + 2] == (a, b):
                    out.append(c)
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            merged[tuple(out)] += n
        words = merged
    return tokens, merges


CORPUS = (default_corpus()[:12_000] + " aaaa aaaaa aaaaaaa aaaaaaaaaaa baaab abab ababab 1111 111111  \n\n\t\t "
          + EOT + "x")


@pytest.mark.parametrize("vocab_size, specials", [(400, (EOT,)), (700, ()), (330, (EOT, "<|pad|>"))])
def test_merges_equal_the_reference(vocab_size, specials):
    tokens, merges = reference_bpe(CORPUS, vocab_size, specials)
    tok = BPETokenizer.train(CORPUS, vocab_size, special_tokens=specials, progress=False)
    assert tok.merges == merges
    assert tok.vocab == {t: i for i, t in enumerate(tokens)}
    assert tok.special_tokens == {s: len(tokens) + i for i, s in enumerate(specials)}
    assert tok.vocab_size == vocab_size
    assert tok.decode(tok.encode(CORPUS, allowed_special="all")) == CORPUS


def test_runs_of_one_byte_merge_left_to_right():
    """(a, a) overlaps itself: in "aaa" the left pair is merged, as a word is read."""
    tokens, merges = reference_bpe("aaa " * 5 + "aaaaa " * 3, 260, ())
    tok = BPETokenizer.train("aaa " * 5 + "aaaaa " * 3, 260, special_tokens=(), progress=False)
    # " aaaaa" becomes " " aa aa a, so (aa, a) counts 8 and (aa, aa) only 3; then the tie of
    # (" ", aa) and (aa, aaa) at 3 goes to the smaller ids, " " (220) before aa (256).
    assert tok.merges == merges == [(b"a", b"a"), (b"aa", b"a"), (b" ", b"aaa"), (b" ", b"aa")]
    assert tok.encode(" aaaaa").tolist() == [tok.vocab[b" aa"], tok.vocab[b"aaa"]]


def test_special_tokens_are_not_learned():
    tok = BPETokenizer.train((EOT + "abc ") * 50, 259, progress=False)
    assert not any(b"<|" in t or b"|>" in t for t in tok.vocab if len(t) > 1)


def test_out_of_pairs_warns_and_stops():
    with pytest.warns(UserWarning, match="no pair left to merge after 3 merges: the vocabulary has 260 tokens"):
        tok = BPETokenizer.train("abcd", 1000, progress=False)
    assert tok.vocab_size == 260 and tok.eot_token == 259
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert BPETokenizer.train("abcd", 259, progress=False).vocab_size == 259


@pytest.mark.parametrize("args, error, match", [
    (("text", 256), ValueError, r"at least 257 \(the 256 bytes \+ 1 special token\)"),
    (("text", 255, ()), ValueError, r"at least 256 \(the 256 bytes \+ 0 special tokens\)"), (("text", 258, ("a", "b", "c")), ValueError, "at least 259"),
    (("text", 2**20 + 1), ValueError, "at most 1,048,576, got 1048577"),
    (("text", 2**31 - 1), ValueError, "at most 1,048,576"), (("text", True), TypeError, "must be an int, not bool"),
    (("text", 300.0), TypeError, "vocab_size must be an int"), ((b"text", 300), TypeError, "must be a str"),
    (("text", 300, EOT), TypeError, "not the string"), (("text", 300, ("a", "a")), ValueError, "distinct"),
    (("text", 300, ("",)), TypeError, "non-empty"),
])
def test_train_rejects(args, error, match):
    with pytest.raises(error, match=match):
        BPETokenizer.train(*args, progress=False)


@pytest.mark.interop
def test_merges_equal_hugging_face_trainer():
    """Hugging Face's BpeTrainer breaks ties the same way, so both learn the same merges."""
    tokenizers = pytest.importorskip("tokenizers", reason="tokenizers is a benchmark-only package")
    text = default_corpus()[:100_000]
    hf = tokenizers.Tokenizer(tokenizers.models.BPE())
    hf.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    trainer = tokenizers.trainers.BpeTrainer(vocab_size=1000, special_tokens=[EOT], show_progress=False,
                                             initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet())
    hf.train_from_iterator([text], trainer)
    theirs = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in hf.get_vocab() and
              __import__("json").loads(hf.to_str())["model"]["merges"]]
    tok = BPETokenizer.train(text, 1000, progress=False)
    assert [(bytes_to_text(a), bytes_to_text(b)) for a, b in tok.merges] == theirs


def test_training_kernels_run_interpreted(monkeypatch):
    from transformer_jit.data.tokenizers import bpe_train as driver
    from transformer_jit.kernels._jit import interpreted
    from transformer_jit.kernels.bpe_train import bpe_train_init, bpe_train_merges, count_pieces

    text = "aaaa abab the then there's 12 12 " * 3
    compiled = BPETokenizer.train(text, 270, special_tokens=(), progress=False)
    with np.errstate(over="ignore"), interpreted(count_pieces) as count, interpreted(bpe_train_init) as init, \
            interpreted(bpe_train_merges) as merge:  # FNV's multiply wraps on purpose
        for name, fn in (("count_pieces", count), ("bpe_train_init", init), ("bpe_train_merges", merge)):
            monkeypatch.setattr(driver, name, fn)
        tokens, merges, _ = driver.learn_bpe(text, 270, (), False)
    assert [(tokens[a], tokens[b]) for a, b in merges] == compiled.merges
