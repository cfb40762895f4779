"""The bounds of BPE training: the vocabulary size (API and commands), the length of the pieces it
learns from, and the memory its arrays take."""
import numpy as np
import pytest
from refusals import assert_refused
from test_bpe_train import CORPUS, reference_bpe

from transformer_jit import BPETokenizer
from transformer_jit.data.tokenizers import bpe_train as driver
from transformer_jit.data.tokenizers.bpe import EOT
from transformer_jit.data.tokenizers.bpe_train import MAX_PIECE_BYTES, MAX_VOCAB_SIZE
from transformer_jit.kernels.hash_tables import table_size


@pytest.mark.parametrize("command", ["train", "prepare"])
@pytest.mark.parametrize("size, message", [
    ("1000000000", "the vocabulary size must be at least 257 (the 256 bytes + 1 special token) and at most "
                   "1,048,576, got 1000000000"),
    (str(MAX_VOCAB_SIZE + 1), "at most 1,048,576, got 1048577"), ("256", "at least 257"), ("-5", "at least 257"),
    ("4k", "invalid integer value: '4k'"), ("300.0", "invalid integer value: '300.0'"),
])
def test_commands_refuse_vocabulary_sizes_out_of_bounds(tmp_path, capsys, monkeypatch, command, size, message):
    (tmp_path / "input.txt").write_text("some text to learn a vocabulary from\n" * 20)
    argv = [command, "--data", str(tmp_path / "input.txt"), "--tokenizer", "bpe", "--vocab-size", size,
            "--out-dir", str(tmp_path / "out")]
    err = assert_refused(argv, message, tmp_path, capsys, monkeypatch)
    assert "--vocab-size" in err


def test_vocabulary_bounds_are_inclusive():
    assert driver.check_vocab_size(MAX_VOCAB_SIZE) == MAX_VOCAB_SIZE
    assert driver.check_vocab_size(np.int64(257)) == 257


def chunked(piece, size):
    """`piece` cut where count_pieces cuts it: chunks of at most `size` bytes, each ending before
    a character's first byte."""
    data, chunks = piece.encode(), []
    while data:
        end = size if len(data) > size else len(data)
        while end < len(data) and data[end] & 0xC0 == 0x80:
            end -= 1
        chunks.append(data[:end].decode())
        data = data[end:]
    return chunks


@pytest.mark.parametrize("piece", ["ab" * 1000, "中" * 300, "x" + "é" * 400, "a" * 513])
def test_long_pieces_are_learned_from_as_chunks(piece):
    """A piece longer than MAX_PIECE_BYTES learns what its chunks, given as separate texts, learn."""
    chunks = chunked(piece, MAX_PIECE_BYTES)
    assert len(chunks) > 1 and all(len(c.encode()) <= MAX_PIECE_BYTES for c in chunks)
    with pytest.warns(UserWarning, match="no pair left"):
        whole = BPETokenizer.train(piece, 2000, special_tokens=(), progress=False)
    with pytest.warns(UserWarning, match="no pair left"):
        apart = BPETokenizer.train(EOT.join(chunks), 2000, special_tokens=(EOT,), progress=False)
    assert whole.merges == apart.merges
    assert max(len(t) for t in whole.vocab) <= MAX_PIECE_BYTES


def test_pieces_up_to_the_cap_are_learned_whole():
    with pytest.warns(UserWarning, match="no pair left"):
        tok = BPETokenizer.train("a" * MAX_PIECE_BYTES + " " + "a" * (2 * MAX_PIECE_BYTES), 300, special_tokens=(),
                                 progress=False)
    assert b"a" * MAX_PIECE_BYTES in tok.vocab  # the whole first piece, and the chunks of the second
    assert max(len(t) for t in tok.vocab) == MAX_PIECE_BYTES


class _Recorded(driver._State):
    """The training state, kept for the test to look at."""
    last = None

    def __init__(self, *args):
        super().__init__(*args)
        _Recorded.last = self


def acgt(n):
    """n random A, C, G, T: no white space, so one piece as long as the text, every chunk distinct."""
    return np.frombuffer(b"ACGT", np.uint8)[np.random.default_rng(0).integers(0, 4, n)].tobytes().decode()


def test_memory_is_bounded_per_byte_of_text(monkeypatch):
    """The arrays of training, as allocated, stay under 64 bytes per byte of the worst text."""
    monkeypatch.setattr(driver, "_State", _Recorded)
    text = acgt(1 << 19)
    BPETokenizer.train(text, 1024, progress=False)
    arrays = [v for v in vars(_Recorded.last).values() if isinstance(v, np.ndarray)]
    assert sum(a.nbytes for a in arrays) < 64 * len(text)


def test_rebuilt_occurrence_lists_give_the_same_merges(monkeypatch):
    rebuilt = []
    rebuild = driver.rebuild_occurrences
    monkeypatch.setattr(driver, "rebuild_occurrences", lambda *args: (rebuilt.append(1), rebuild(*args)))
    assert BPETokenizer.train(CORPUS, 700, special_tokens=(), progress=False).merges == reference_bpe(CORPUS, 700, ())[1]
    assert rebuilt


def test_grown_pair_table_gives_the_same_merges(monkeypatch):
    monkeypatch.setattr(driver, "_State", _Recorded)
    text = acgt(2048)
    reference = reference_bpe(EOT.join(chunked(text, MAX_PIECE_BYTES)), 901, (EOT,))[1]
    assert BPETokenizer.train(text, 900, special_tokens=(), progress=False).merges == reference
    assert len(_Recorded.last.pair_table) > table_size(4 * 4 + 1)  # more than A, C, G, T's pairs need
