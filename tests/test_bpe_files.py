"""BPETokenizer's files: Hugging Face's layout (vocab.json + merges.txt) written and read back, and
read by Hugging Face's own readers when they are installed; OpenAI's layout (encoder.json +
vocab.bpe) read; missing and damaged files named in the error."""
import json
import shutil

import pytest

from transformer_jit import BPETokenizer
from transformer_jit.data import default_corpus
from transformer_jit.data.tokenizers.bpe import EOT

TEXTS = ["Hello world, it's me!", "naïve café 日本 🎉", "  spaces\tand\nlines\r\n", "x" * 100, f"a{EOT}b"]


@pytest.fixture(scope="module")
def tok():
    return BPETokenizer.train(default_corpus()[:100_000], 600, progress=False)


@pytest.fixture
def saved(tok, tmp_path):
    tok.save_pretrained(tmp_path / "tok")
    return tmp_path / "tok"


def same(a, b):
    return a.vocab == b.vocab and a.merges == b.merges and a.special_tokens == b.special_tokens


def test_hugging_face_layout_round_trip(tok, saved):
    assert sorted(p.name for p in saved.iterdir()) == ["merges.txt", "vocab.json"]
    lines = (saved / "merges.txt").read_text(encoding="utf-8").split("\n")
    assert lines[0] == "#version: 0.2" and lines[-1] == "" and len(lines) == len(tok.merges) + 2
    vocab = json.loads((saved / "vocab.json").read_text(encoding="utf-8"))
    assert vocab[EOT] == tok.eot_token and vocab["Ġ"] == tok.vocab[b" "] and len(vocab) == tok.vocab_size
    again = BPETokenizer.from_pretrained(saved)
    assert same(again, tok)
    for text in TEXTS:
        assert again.encode(text, allowed_special="all").tolist() == tok.encode(text, allowed_special="all").tolist()


def test_openai_layout(tok, saved):
    shutil.move(saved / "vocab.json", saved / "encoder.json")
    shutil.move(saved / "merges.txt", saved / "vocab.bpe")
    assert same(BPETokenizer.from_pretrained(saved), tok)


@pytest.mark.interop
def test_transformers_gpt2_tokenizer_reads_the_files(tok, saved):
    transformers = pytest.importorskip("transformers", reason="transformers is a benchmark-only package")
    theirs = transformers.GPT2Tokenizer.from_pretrained(str(saved))
    for text in TEXTS[:4]:
        assert theirs.encode(text) == tok.encode(text).tolist()
    assert theirs.convert_tokens_to_ids(EOT) == tok.eot_token


@pytest.mark.interop
def test_tokenizers_library_reads_the_files(tok, saved):
    tokenizers = pytest.importorskip("tokenizers", reason="tokenizers is a benchmark-only package")
    theirs = tokenizers.ByteLevelBPETokenizer(str(saved / "vocab.json"), str(saved / "merges.txt"))
    for text in TEXTS[:4]:
        assert theirs.encode(text).ids == tok.encode(text).tolist()


def test_entries_neither_byte_nor_merged_are_special(tok, saved):
    vocab = json.loads((saved / "vocab.json").read_text(encoding="utf-8"))
    vocab["<|pad|>"] = len(vocab)
    (saved / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    again = BPETokenizer.from_pretrained(saved)
    assert again.special_tokens == {EOT: tok.eot_token, "<|pad|>": tok.vocab_size}


def damage(path, text):
    path.write_text(text, encoding="utf-8")


@pytest.mark.parametrize("harm, error, match", [
    (lambda d: shutil.rmtree(d), FileNotFoundError, "tokenizer directory not found"),
    (lambda d: shutil.rmtree(d) or d.write_text("x"), ValueError, "is a file, not a tokenizer directory"),
    (lambda d: [p.unlink() for p in list(d.iterdir())], FileNotFoundError, "holds no tokenizer"),
    (lambda d: (d / "merges.txt").unlink(), FileNotFoundError, "merges file not found: .*merges.txt"),
    (lambda d: damage(d / "vocab.json", "{not json"), ValueError, "vocab.json is not valid JSON"),
    (lambda d: damage(d / "vocab.json", "[1, 2]"), ValueError, "vocab.json must hold a JSON object"),
    (lambda d: damage(d / "vocab.json", '{"a": 0, "b": 2}'), ValueError, "vocab.json: 'b' has id 2"),
    (lambda d: damage(d / "vocab.json", '{"a": 0, "b": 0}'), ValueError, "vocab.json: 'a' and 'b' both have id 0"),
    (lambda d: damage(d / "vocab.json", '{"a": "0"}'), ValueError, "vocab.json: the id of 'a' is '0'"),
    (lambda d: damage(d / "merges.txt", "#version: 0.2\nĠ t\nthree parts here\n"), ValueError,
     "merges.txt line 3: expected two tokens"),
    (lambda d: damage(d / "merges.txt", "#version: 0.2\nĠ t\nq\u4e00 x\n"), ValueError,
     "merges.txt line 3: '一' .* not a character of GPT-2's byte-level alphabet"),
    (lambda d: damage(d / "merges.txt", "#version: 0.2\nĠ t\nzzzq zzzr\n"), ValueError,
     "merges.txt line 3: 'zzzq' is not a token of vocab.json"),
    (lambda d: (d / "merges.txt").write_bytes(b"\xff\xfe"), ValueError, "merges.txt is not UTF-8"),
    (lambda d: (d / "merges.txt").mkdir() if (d / "merges.txt").unlink() is None else None, ValueError,
     "merges file .* is a directory"),
])
def test_damaged_files_are_named(saved, harm, error, match):
    harm(saved)
    with pytest.raises(error, match=match):
        BPETokenizer.from_pretrained(saved)


def test_inconsistent_files_are_named(tok, saved):
    lines = (saved / "merges.txt").read_text(encoding="utf-8").split("\n")
    first = lines[1].replace(" ", "")
    (saved / "merges.txt").write_text("\n".join([lines[0], *lines[2:-1], lines[1], ""]), encoding="utf-8")
    with pytest.raises(ValueError, match=f"{saved}: merge .* uses '{first}', which no earlier merge makes"):
        BPETokenizer.from_pretrained(saved)  # the first merge moved to the end
    (saved / "merges.txt").write_text("\n".join([lines[0], *lines[2:]]), encoding="utf-8")
    with pytest.raises(ValueError, match=f"merges.txt line .*: '{first}' is neither a byte nor made by any merge"):
        BPETokenizer.from_pretrained(saved)  # the first merge gone


@pytest.mark.interop
def test_reads_files_that_hugging_face_trained(tmp_path):
    """Hugging Face's trainer puts the special tokens first (id 0); they are still found."""
    tokenizers = pytest.importorskip("tokenizers", reason="tokenizers is a benchmark-only package")
    hf = tokenizers.Tokenizer(tokenizers.models.BPE())
    hf.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    trainer = tokenizers.trainers.BpeTrainer(vocab_size=400, special_tokens=[EOT, "<|pad|>"], show_progress=False,
                                             initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet())
    hf.train_from_iterator([default_corpus()[:50_000]], trainer)
    hf.model.save(str(tmp_path))
    tok = BPETokenizer.from_pretrained(tmp_path)
    assert tok.special_tokens == {EOT: 0, "<|pad|>": 1} and tok.vocab_size == 400
    for text in TEXTS[:4]:
        assert tok.encode(text).tolist() == hf.encode(text).ids
