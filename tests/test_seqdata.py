"""Sequence tokenizer, padding and the pair / labelled datasets."""
import json

import numpy as np
import pytest

from transformer_jit.data import LabelledDataset, PairDataset, SeqTokenizer, pad_batch

PAD, BOS, EOS = SeqTokenizer.PAD, SeqTokenizer.BOS, SeqTokenizer.EOS


# -- tokenizer ---------------------------------------------------------------------------------
def test_special_ids_and_character_ids():
    assert (PAD, BOS, EOS) == (0, 1, 2)
    tok = SeqTokenizer("cab")
    assert tok.vocab_size == 6
    np.testing.assert_array_equal(tok.encode("cab"), [3, 4, 5])  # ids from 3, in the given order
    assert tok.encode("abc").dtype == np.int64


def test_encode_decode_round_trip_with_specials():
    tok = SeqTokenizer.from_texts(["hello world", "2021-03-03"])
    assert tok.chars == sorted(set("hello world2021-03-03"))
    ids = tok.encode("hello 2021", bos=True, eos=True)
    assert ids[0] == BOS and ids[-1] == EOS and len(ids) == 12
    assert tok.decode(ids) == "hello 2021"
    assert tok.decode(tok.encode("")) == ""


def test_decode_stops_at_eos_and_skips_pad_and_bos():
    tok = SeqTokenizer("ab")
    a, b = tok.encode("ab")
    assert tok.decode([BOS, a, PAD, b, EOS, a, a]) == "ab"
    assert tok.decode(np.array([PAD, PAD])) == ""
    with pytest.raises(ValueError, match="outside the vocabulary"):
        tok.decode([a, 99])


def test_unknown_characters_are_named():
    tok = SeqTokenizer("abc")
    with pytest.raises(ValueError, match=r"'xz'"):
        tok.encode("abzx")


def test_bad_character_lists_are_refused():
    with pytest.raises(ValueError, match="at least one"):
        SeqTokenizer("")
    with pytest.raises(ValueError, match="distinct"):
        SeqTokenizer("aba")
    with pytest.raises(ValueError, match="single-character"):
        SeqTokenizer(["ab", "c"])


def test_dict_round_trip_through_json():
    tok = SeqTokenizer("x1 -")
    d = json.loads(json.dumps(tok.to_dict()))
    assert d["type"] == "seq"
    again = SeqTokenizer.from_dict(d)
    assert again.chars == tok.chars and again.vocab_size == tok.vocab_size
    with pytest.raises(ValueError, match="not a sequence tokenizer"):
        SeqTokenizer.from_dict({"type": "char", "chars": "ab"})


# -- padding -----------------------------------------------------------------------------------
def test_pad_batch_pads_to_the_longest():
    ids = pad_batch([[5, 6, 7], [8], [], [9, 9]])
    assert ids.dtype == np.int64
    np.testing.assert_array_equal(ids, [[5, 6, 7], [8, PAD, PAD], [PAD, PAD, PAD], [9, 9, PAD]])


def test_pad_batch_errors():
    with pytest.raises(ValueError, match="at least one"):
        pad_batch([])
    with pytest.raises(ValueError, match="sequence 1 has length 4, more than max_len=3"):
        pad_batch([[1, 2], [1, 2, 3, 4]], max_len=3)
    assert pad_batch([[1, 2, 3]], max_len=3).shape == (1, 3)


# -- pair dataset ------------------------------------------------------------------------------
PAIRS = [(f"{i} + {i % 7}", str(i + i % 7)) for i in range(1, 101)]  # sources and targets of varied length
TOK = SeqTokenizer.from_texts([s + t for s, t in PAIRS])


def test_pair_batches_have_the_documented_layout():
    data = PairDataset(PAIRS, TOK, TOK, max_src_len=10, max_tgt_len=5)
    src, tgt_in, tgt_out = data.batch("train", 64, np.random.default_rng(0))
    assert src.shape[0] == tgt_in.shape[0] == tgt_out.shape[0] == 64
    assert tgt_in.shape == tgt_out.shape
    for a in (src, tgt_in, tgt_out):
        assert a.dtype == np.int64 and a.flags.c_contiguous
    assert np.all(tgt_in[:, 0] == BOS)
    train = set(data.examples("train"))
    for s_row, i_row, o_row in zip(src, tgt_in, tgt_out):
        s, t = TOK.decode(s_row), TOK.decode(o_row)
        assert (s, t) in train
        np.testing.assert_array_equal(s_row[len(s):], PAD)
        n = len(t)
        np.testing.assert_array_equal(i_row[1:n + 1], o_row[:n])  # same target, shifted by one
        assert o_row[n] == EOS and np.all(o_row[n + 1:] == PAD) and np.all(i_row[n + 1:] == PAD)
    # padded to the longest in the batch, not to the maximum allowed
    assert np.any(src[:, -1] != PAD) and np.any(tgt_out[:, -1] != PAD)


def test_pair_split_is_the_last_fraction_and_batches_are_repeatable():
    data = PairDataset(PAIRS, TOK, TOK, max_src_len=10, max_tgt_len=5, val_fraction=0.2)
    assert data.examples("train") == PAIRS[:80] and data.examples("val") == PAIRS[80:]
    one = data.batch("val", 16, np.random.default_rng(5))
    two = data.batch("val", 16, np.random.default_rng(5))
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)
    assert {TOK.decode(row) for row in one[0]} <= {s for s, _ in PAIRS[80:]}
    other = data.batch("val", 16, np.random.default_rng(6))
    assert not np.array_equal(one[0][:, :3], other[0][:, :3])


def test_pair_dataset_names_the_example_that_is_too_long():
    with pytest.raises(ValueError, match=r"pair 99 \('100 \+ 2' -> '102'\): the source has 7 tokens"):
        PairDataset(PAIRS, TOK, TOK, max_src_len=6, max_tgt_len=5)
    # a target of 3 characters needs 4 decoder positions: BOS + target / target + EOS
    with pytest.raises(ValueError, match=r"pair 95 .*decoder sees 4 .* max_tgt_len=3"):
        PairDataset(PAIRS, TOK, TOK, max_src_len=10, max_tgt_len=3)
    with pytest.raises(ValueError, match=r"pair 0 .*not in the vocabulary"):
        PairDataset([("?", "1")], TOK, TOK, 10, 5)


def test_dataset_argument_errors():
    data = PairDataset(PAIRS, TOK, TOK, 10, 5, val_fraction=0.0)
    with pytest.raises(ValueError, match="'val' split is empty"):
        data.batch("val", 4, np.random.default_rng(0))
    with pytest.raises(ValueError, match="unknown split 'test'"):
        data.batch("test", 4, np.random.default_rng(0))
    with pytest.raises(ValueError, match="batch_size"):
        data.batch("train", 0, np.random.default_rng(0))
    with pytest.raises(ValueError, match="val_fraction"):
        PairDataset(PAIRS, TOK, TOK, 10, 5, val_fraction=1.0)
    assert len(PairDataset(PAIRS[:3], TOK, TOK, 10, 5, val_fraction=0.1).examples("val")) == 1


# -- labelled dataset --------------------------------------------------------------------------
EXAMPLES = [("ab" * (i % 5 + 1), i % 3) for i in range(50)]
LTOK = SeqTokenizer("ab")


@pytest.mark.parametrize("cls", [False, True])
def test_labelled_batches(cls):
    data = LabelledDataset(EXAMPLES, LTOK, max_len=11, cls=cls)
    assert data.num_classes == 3
    ids, labels = data.batch("train", 32, np.random.default_rng(1))
    assert ids.dtype == labels.dtype == np.int64 and ids.flags.c_contiguous
    assert ids.shape[0] == 32 and labels.shape == (32,)
    assert ids.shape[1] == 10 + cls  # the longest text is 10 characters and some batch row has it
    assert np.all(ids[:, 0] == BOS) == cls
    train = set(data.examples("train"))
    for row, label in zip(ids, labels):
        text = LTOK.decode(row)
        assert (text, label) in train
        assert np.all(row[cls + len(text):] == PAD)
    again = data.batch("train", 32, np.random.default_rng(1))
    np.testing.assert_array_equal(again[0], ids)
    np.testing.assert_array_equal(again[1], labels)


def test_labelled_split_and_errors():
    data = LabelledDataset(EXAMPLES, LTOK, max_len=10)
    assert data.examples("val") == EXAMPLES[45:] and len(data.examples("train")) == 45
    with pytest.raises(ValueError, match=r"example 4 \('ababababab'\): 11 tokens with CLS.*max_len=10"):
        LabelledDataset(EXAMPLES, LTOK, max_len=10, cls=True)
    with pytest.raises(ValueError, match="example 1 .*label must be an integer >= 0"):
        LabelledDataset([("a", 0), ("b", -1)], LTOK, 5)
    with pytest.raises(ValueError, match="example 0 .*label"):
        LabelledDataset([("a", "yes")], LTOK, 5)
