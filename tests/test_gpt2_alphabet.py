"""GPT-2's byte-level alphabet and pre-tokenizing pattern against GPT-2's published files
(tests/data/gpt2_published.json says where each value comes from), not against this project's
own constants."""
import json
from pathlib import Path

from transformer_jit import BPETokenizer
from transformer_jit.data.tokenizers.bpe import GPT2_PATTERN
from transformer_jit.data.tokenizers.byte_unicode import bytes_to_text, text_to_bytes

PUBLISHED = json.loads((Path(__file__).parent / "data" / "gpt2_published.json").read_text(encoding="utf-8"))
BYTE_TOKENS = PUBLISHED["byte_tokens"]  # the token of GPT-2's id i, for ids 0-255


def test_the_published_byte_tokens_are_one_per_byte():
    assert len(BYTE_TOKENS) == len(set(BYTE_TOKENS)) == 256
    # GPT-2's documented anchors: the space is 'Ġ' (id 220), the newline 'Ċ' (id 198), NUL 'Ā' (id 188)
    assert (BYTE_TOKENS[220], BYTE_TOKENS[198], BYTE_TOKENS[188]) == ("Ġ", "Ċ", "Ā")


def gpt2_byte(token):
    """The byte GPT-2's encoder.py writes as `token`: a printable Latin-1 character stands for its
    own byte; the other 68 bytes, in increasing order, are written U+0100, U+0101, ..."""
    code = ord(token)
    if code < 256:
        return code
    others = [b for b in range(256) if chr(b) not in BYTE_TOKENS]
    return others[code - 256]


def test_the_alphabet_writes_each_byte_as_gpt2_does():
    expected = {gpt2_byte(token): token for token in BYTE_TOKENS}
    assert sorted(expected) == list(range(256))
    assert [bytes_to_text(bytes([b])) for b in range(256)] == [expected[b] for b in range(256)]
    assert [text_to_bytes(token) for token in BYTE_TOKENS] == [bytes([gpt2_byte(t)]) for t in BYTE_TOKENS]


def test_a_new_vocabulary_numbers_the_bytes_as_gpt2_does():
    tok = BPETokenizer.train("some text to learn a few merges from, some text", 260, progress=False)
    assert [tok.decode_bytes([i]) for i in range(256)] == [bytes([gpt2_byte(t)]) for t in BYTE_TOKENS]


def test_the_pre_tokenizing_pattern_is_gpt2s():
    assert GPT2_PATTERN == PUBLISHED["pattern"]
