"""BPETokenizer: GPT-2's byte-level byte-pair encoding, trained here or read from GPT-2's files.

    tok = BPETokenizer.train(text, 4096)                 # or BPETokenizer.from_pretrained(directory)
    ids = tok.encode("Hello world")                      # uint16 array (uint32 past 65,536 tokens)
    tok.decode(ids) == "Hello world"
    tok.encode("a<|endoftext|>b", allowed_special="all") # the special token as its id
    tok.save_pretrained(directory)                       # vocab.json + merges.txt, as Hugging Face

Text is UTF-8 bytes; GPT-2's pattern cuts them into pieces (kernels/pretokenize.py); each piece
becomes tokens by the merges, in rank order (kernels/bpe.py). Ids are those of the vocabulary:
GPT-2 puts the 256 bytes first, then one token per merge, then <|endoftext|>.

Special tokens follow tiktoken: `encode` refuses text that contains a special token's string
unless the caller allows it (`allowed_special`: it becomes that token's id) or says to read it as
plain text (`disallowed_special=()`); `encode_ordinary` reads everything as plain text.
"""
from typing import NamedTuple

import numba
import numpy as np

from ...kernels.bpe import (bpe_decode, bpe_encode, bpe_encode_parallel, build_pair_table, build_piece_table,
                           compact_spans, decoded_length)
from ...kernels.hash_tables import table_size
from ...kernels.pretokenize import last_split_point, split_point
from .bpe_files import read_pretrained, write_pretrained
from .bpe_text import EOT, check_text, special_spans, utf8
from .bpe_train import learn_bpe
from .byte_unicode import bytes_to_text, text_to_bytes
from ..text import short
from .unicode_classes import code_point_classes

GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
PARALLEL_MIN_BYTES = 1 << 20  # shorter texts are encoded on one thread
CHUNKS_PER_THREAD = 8  # a long text is cut into about this many chunks per thread, to balance the load
MIN_CHUNK_BYTES = 1 << 16  # but not into chunks shorter than this


class _Tables(NamedTuple):
    """The arrays kernels/bpe.py encodes with, in the order its kernels take them."""
    classes: np.ndarray
    byte_id: np.ndarray
    pair_table: np.ndarray
    merge_out: np.ndarray
    piece_slots: np.ndarray
    token_bytes: np.ndarray
    token_starts: np.ndarray
    token_lengths: np.ndarray
    max_piece_token: int


class BPETokenizer:
    """Byte-level BPE with GPT-2's pre-tokenization.

    vocab           {bytes: id} of the ordinary tokens: the 256 single bytes and the tokens that
                    the merges make
    merges          [(left bytes, right bytes)] in rank order (the order they were learned)
    special_tokens  {str: id}; with vocab, the ids are 0 .. vocab_size - 1, each once
    `vocab`, `merges` and `special_tokens` read back what was given.
    """

    def __init__(self, vocab, merges, special_tokens=None):
        if not isinstance(vocab, dict):
            raise TypeError(f"vocab must be a dict of bytes to ids, not {type(vocab).__name__}")
        special_tokens = _check_specials(special_tokens)
        bad = [k for k, v in vocab.items() if not isinstance(k, bytes) or not _is_id(v)]
        if bad:
            raise TypeError(f"vocab must map bytes to int ids; {bad[0]!r} -> {vocab[bad[0]]!r} does not")
        ids = sorted([*vocab.values(), *special_tokens.values()])
        if ids != list(range(len(ids))):
            raise ValueError(f"token ids must be 0 .. {len(ids) - 1}, each once (vocab and special tokens together)")
        tokens = [b""] * len(ids)
        for b, i in vocab.items():
            tokens[i] = b
        merge_ids = []
        for r, pair in enumerate(merges):
            if not (isinstance(pair, (tuple, list)) and len(pair) == 2 and all(isinstance(p, bytes) for p in pair)):
                raise TypeError(f"merge {r} must be a pair of bytes, not {short(pair)}")
            missing = [p for p in pair if p not in vocab]
            if missing:
                raise ValueError(f"merge {r} ({pair[0]!r}, {pair[1]!r}): {missing[0]!r} is not in the vocabulary")
            merge_ids.append((vocab[pair[0]], vocab[pair[1]]))
        self._setup(tokens, merge_ids, special_tokens)

    @classmethod
    def _from_ids(cls, tokens, merges, special_tokens):
        """The tokenizer with token bytes `tokens` (a list by id; the entries of special tokens are
        ignored), merges as (left id, right id) pairs in rank order, and special tokens {str: id}."""
        self = cls.__new__(cls)
        self._setup(list(tokens), merges, _check_specials(special_tokens))
        return self

    def _setup(self, tokens, merges, special_tokens):
        """Check the vocabulary (see _check_vocabulary) and build the tables the kernels encode with."""
        index, merges, merge_out = _check_vocabulary(tokens, merges, special_tokens)
        self._tokens, self._special, self._merges = tokens, dict(special_tokens), merges
        self.dtype = np.dtype(np.uint16 if len(tokens) <= 1 << 16 else np.uint32)
        lengths = np.array([len(t) for t in tokens], np.int64)
        starts = np.zeros(len(tokens), np.int64)
        np.cumsum(lengths[:-1], out=starts[1:])
        store = np.frombuffer(b"".join(tokens), np.uint8)
        byte_id = np.array([index[bytes([b])] for b in range(256)], np.int32)
        pair_table = np.full((table_size(len(merges)), 2), -1, np.int64)
        build_pair_table(pair_table, merges)
        tables = _Tables(code_point_classes(), byte_id, pair_table, merge_out.astype(np.int32),
                         np.full(8, -1, np.int32), store, starts, lengths, 0)
        # The whole-piece lookup may return only the tokens that their own merges make: encode
        # each token's bytes without the lookup and keep those that come out as themselves.
        # Pieces are whole characters, so tokens that are not UTF-8 text (a character's first
        # bytes) are never looked up, and are not given to the pre-tokenizer, which reads UTF-8.
        longer = np.array([i for t, i in index.items() if len(t) > 1 and _is_utf8(t)], np.int64)
        direct = longer[self._encodes_to_itself(longer, tables)]
        piece_slots = np.full(table_size(len(direct)), -1, np.int32)
        build_piece_table(piece_slots, store, starts, lengths, direct)
        self._tables = tables._replace(piece_slots=piece_slots,
                                       max_piece_token=int(lengths[direct].max()) if len(direct) else 0)

    def _encodes_to_itself(self, ids, tables):
        """(len(ids),) bool: whether the bytes of token ids[i] encode to that token alone."""
        starts, lengths = tables.token_starts[ids], tables.token_lengths[ids]
        counts = np.empty(len(ids), np.int64)
        out = np.empty(int(lengths.sum()), self.dtype)
        bpe_encode(counts, out, tables.token_bytes, starts, starts + lengths, np.full(len(ids), -1, np.int64), *tables)
        return (counts == 1) & (out[np.cumsum(counts) - counts] == ids)

    # -- what the tokenizer holds ---------------------------------------------------------------

    @property
    def vocab_size(self):
        """The number of token ids, special tokens included."""
        return len(self._tokens)

    @property
    def special_tokens(self):
        """{text: id} of the special tokens (a copy)."""
        return dict(self._special)

    @property
    def eot_token(self):
        """The id of <|endoftext|>, or None if this tokenizer has no such special token."""
        return self._special.get(EOT)

    @property
    def vocab(self):
        """{bytes: id} of the ordinary tokens (a new dict)."""
        special = set(self._special.values())
        return {t: i for i, t in enumerate(self._tokens) if i not in special}

    @property
    def merges(self):
        """[(left bytes, right bytes)] in rank order (a new list)."""
        return [(self._tokens[a], self._tokens[b]) for a, b in self._merges.tolist()]

    def token_bytes(self, token):
        """The bytes of one token (a special token's are its UTF-8 text)."""
        if not _is_id(token) or not 0 <= token < self.vocab_size:
            raise ValueError(f"token id {token!r} is outside the vocabulary (size {self.vocab_size})")
        return self._tokens[token]

    def __repr__(self):
        return (f"BPETokenizer(vocab_size={self.vocab_size}, merges={len(self._merges)}, "
                f"special_tokens={sorted(self._special)})")

    # -- encoding ---------------------------------------------------------------------------------

    def encode(self, text, *, allowed_special=(), disallowed_special="all"):
        """Token ids of `text`, a 1-D array of `self.dtype`.

        allowed_special     special tokens (their texts, or "all") that become their ids where
                            the text holds them
        disallowed_special  special tokens whose text in `text` is an error ("all": every one
                            not allowed); the ones neither allowed nor disallowed are plain text
        Long texts are encoded on all of Numba's threads, with the same result.
        """
        allowed, disallowed = self._special_sets(allowed_special, disallowed_special)
        check_text(text)
        return self._encode(utf8(text), allowed, disallowed)

    def encode_ordinary(self, text):
        """Token ids of `text`, special tokens' texts read as plain text."""
        check_text(text)
        return self._encode(utf8(text), set(), set())

    def encode_chunks(self, chunks, *, allowed_special=(), disallowed_special="all"):
        """Token ids of the text that the strings of `chunks` make together, as a stream of arrays,
        for texts too long to hold at once: the arrays joined equal `encode("".join(chunks))`.
        Each array holds the tokens up to the last place in the text so far where a piece
        certainly ends (kernels/pretokenize.py's last_split_point) outside special tokens' texts;
        the text after it waits for the next chunk."""
        allowed, disallowed = self._special_sets(allowed_special, disallowed_special)
        pending = b""
        for chunk in chunks:
            check_text(chunk)
            pending += utf8(chunk)
            cut = self._last_cut(pending)
            if cut > 0:
                yield self._encode(pending[:cut], allowed, disallowed)
                pending = pending[cut:]
        yield self._encode(pending, allowed, disallowed)

    def _last_cut(self, data):
        """The last split point of `data` that is not inside a special token's text (0: none),
        nor in the last bytes, which may be the start of one that the next chunk completes."""
        text = np.frombuffer(data, np.uint8)
        longest = max((len(s.encode("utf-8")) for s in self._special), default=1)
        cut = last_split_point(text, 0, max(0, len(data) - longest + 1), self._tables.classes)
        while cut > 0:
            inside = [i for s in self._special for i in [_find_around(data, s.encode("utf-8"), cut)] if i >= 0]
            if not inside:
                break
            cut = last_split_point(text, 0, min(inside) + 1, self._tables.classes)
        return cut

    def _special_sets(self, allowed_special, disallowed_special):
        """(allowed, disallowed) special tokens' texts, checked."""
        allowed = self._special_set(allowed_special, "allowed_special")
        if disallowed_special == "all":
            return allowed, set(self._special) - allowed
        return allowed, self._special_set(disallowed_special, "disallowed_special")

    def _special_set(self, names, what):
        if names == "all":
            return set(self._special)
        if isinstance(names, str):
            raise TypeError(f"{what} must be 'all' or a collection of special tokens, not the string {names!r}")
        names = set(names)
        unknown = sorted(names - set(self._special))
        if unknown:
            raise ValueError(f"{what} names {unknown[0]!r}, which is not a special token of this tokenizer "
                             f"(it has {sorted(self._special)})")
        return names

    def _encode(self, data, allowed, disallowed):
        """The ids of the UTF-8 bytes `data`, with the special tokens of `allowed` as their ids;
        ValueError if the text holds one of `disallowed`."""
        for s in sorted(disallowed):
            i = data.find(s.encode("utf-8"))
            if i >= 0:
                raise ValueError(f"the text holds the special token {s!r} at character {len(data[:i].decode())}: "
                                 f"pass allowed_special={{{s!r}}} to encode it as token {self._special[s]}, or "
                                 f"disallowed_special=() to encode it as plain text")
        starts, ends, specials = special_spans(data, {s: self._special[s] for s in allowed})
        text = np.frombuffer(data, np.uint8)
        out = np.empty(len(data), self.dtype)
        threads = numba.get_num_threads()
        if len(data) >= PARALLEL_MIN_BYTES and threads > 1:
            starts, ends, specials, blocks = self._blocks(text, starts, ends, specials, threads)
            counts = np.empty(len(starts), np.int64)
            bpe_encode_parallel(counts, out, text, starts, ends, specials, blocks, *self._tables)
            n = compact_spans(out, starts, counts, blocks)
        else:
            n = bpe_encode(np.empty(len(starts), np.int64), out, text, starts, ends, specials, *self._tables)
        out.resize(n, refcheck=False)  # gives the unused end back without a copy
        return out

    def _blocks(self, text, starts, ends, specials, threads):
        """(starts, ends, specials, blocks) for bpe_encode_parallel: spans longer than a block cut
        where a piece certainly ends (kernels/pretokenize.py's split_point), then grouped into
        blocks of about len(text) / (threads * CHUNKS_PER_THREAD) bytes, MIN_CHUNK_BYTES at least."""
        size = max(MIN_CHUNK_BYTES, len(text) // (threads * CHUNKS_PER_THREAD))
        spans, blocks = ([], [], []), [0]

        def add(start, end, special):
            for column, value in zip(spans, (start, end, special)):
                column.append(value)
            if end - spans[0][blocks[-1]] >= size:
                blocks.append(len(spans[0]))

        for s, e, special in zip(starts.tolist(), ends.tolist(), specials.tolist()):
            while e - s > 2 * size:
                cut = split_point(text, s + size, e, self._tables.classes)
                if cut >= e:
                    break
                add(s, cut, -1)
                s = cut
            add(s, e, special)
        if blocks[-1] < len(spans[0]):
            blocks.append(len(spans[0]))
        return (*(np.array(column, np.int64) for column in spans), np.array(blocks, np.int64))

    # -- decoding ---------------------------------------------------------------------------------

    def decode_bytes(self, ids):
        """The bytes of the tokens `ids` (a 1-D array or sequence of ints), one after another."""
        ids = _check_ids(ids)
        n = decoded_length(ids, self._tables.token_lengths)
        if n < 0:
            raise ValueError(f"token id {ids[-n - 1]} (at index {-n - 1}) is outside the vocabulary "
                             f"(size {self.vocab_size})")
        out = np.empty(n, np.uint8)
        bpe_decode(out, ids, self._tables.token_bytes, self._tables.token_starts, self._tables.token_lengths)
        return out.tobytes()

    def decode(self, ids):
        """The text of the tokens `ids`; bytes that are not whole UTF-8 characters (a token sequence
        cut inside a character) become U+FFFD, as GPT-2 decodes (errors="replace")."""
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    # -- training, files, checkpoints -------------------------------------------------------------

    @classmethod
    def train(cls, text, vocab_size, special_tokens=(EOT,), progress=True):
        """Learn merges from `text` until there are vocab_size tokens (special tokens included,
        given ids after the ordinary tokens; 256 + len(special_tokens) to 2^20 tokens, else
        ValueError). A text that runs out of pairs to merge stops early, with fewer tokens and a
        warning. See bpe_train.py."""
        return cls._from_ids(*learn_bpe(text, vocab_size, special_tokens, progress))

    @classmethod
    def from_pretrained(cls, directory):
        """Read a directory in Hugging Face's layout (vocab.json + merges.txt) or OpenAI's
        (encoder.json + vocab.bpe). Vocabulary entries that are neither one of the 256 bytes nor
        made by a merge are the special tokens, and must be declared as such: named <|...|> as
        GPT-2's <|endoftext|>, or listed in an added_tokens.json beside them."""
        tokens, merges, specials, where = read_pretrained(directory)
        try:
            return cls._from_ids(tokens, merges, specials)
        except ValueError as e:
            raise ValueError(f"{where}: {e}") from None

    def save_pretrained(self, directory):
        """Write vocab.json and merges.txt (Hugging Face's layout, which transformers'
        GPT2Tokenizer and the tokenizers library read) into `directory`, created if needed."""
        names = [bytes_to_text(t) for t in self._tokens]
        for s, i in self._special.items():
            names[i] = s
        write_pretrained(directory, names, [(names[a], names[b]) for a, b in self._merges.tolist()])

    def to_dict(self):
        """Everything the tokenizer is, as JSON-ready data: tokens in byte-level text by id (None
        for special tokens), merges as a flat list of ids (left, right, left, right, ...)."""
        special = set(self._special.values())
        tokens = [None if i in special else bytes_to_text(t) for i, t in enumerate(self._tokens)]
        return {"type": "bpe", "tokens": tokens, "merges": self._merges.ravel().tolist(),
                "special_tokens": dict(self._special)}

    @classmethod
    def from_dict(cls, d):
        if not isinstance(d, dict) or d.get("type") != "bpe":
            raise ValueError(f"not a BPE tokenizer: {d.get('type') if isinstance(d, dict) else type(d).__name__!r}")
        tokens, merges, special = d.get("tokens"), d.get("merges"), d.get("special_tokens")
        if not (isinstance(tokens, list) and isinstance(merges, list) and len(merges) % 2 == 0
                and isinstance(special, dict)):
            raise ValueError("BPE tokenizer dict needs 'tokens' (a list), 'merges' (a list of an even length of ids) "
                             "and 'special_tokens' (a dict)")
        if not all(_is_id(m) for m in merges):
            raise ValueError("BPE tokenizer dict: 'merges' must hold int ids")
        try:
            data = [b"" if t is None else text_to_bytes(t) for t in tokens]
        except (TypeError, ValueError) as e:
            raise ValueError(f"BPE tokenizer dict: a token is not byte-level text ({e})") from None
        try:
            return cls._from_ids(data, list(zip(merges[::2], merges[1::2])), special)
        except TypeError as e:  # a special token that is not a str -> id pair
            raise ValueError(f"BPE tokenizer dict: {e}") from None


def _is_utf8(data):
    try:
        data.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def _is_id(x):
    return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))


def _check_specials(special_tokens):
    if special_tokens is None:
        return {}
    if not isinstance(special_tokens, dict):
        raise TypeError(f"special_tokens must be a dict of str to ids, not {type(special_tokens).__name__}")
    for s, i in special_tokens.items():
        if not isinstance(s, str) or not s or not _is_id(i):
            raise TypeError(f"special_tokens must map non-empty strings to int ids; {s!r} -> {i!r} does not")
    return {s: int(i) for s, i in special_tokens.items()}


def _show(token):
    return repr(bytes_to_text(token))


def _check_vocabulary(tokens, merges, special_tokens):
    """(index, merges, merge_out) for token bytes by id, merges as id pairs and special tokens
    {text: id} (whose entries of `tokens` become their UTF-8 text), if they make a vocabulary:
    index {bytes: id} of the ordinary tokens, merges as an (M, 2) int64 array, merge_out the token
    each merge makes. A clear ValueError otherwise."""
    n = len(tokens)
    for s, i in special_tokens.items():
        if not 0 <= i < n:
            raise ValueError(f"special token {s!r} has id {i}, outside 0 .. {n - 1}")
        tokens[i] = s.encode("utf-8")
    if len(set(special_tokens.values())) != len(special_tokens):
        raise ValueError("two special tokens have the same id")
    special_ids = set(special_tokens.values())
    index = {}
    for i in range(n):
        if i not in special_ids:
            if tokens[i] in index:
                raise ValueError(f"tokens {index[tokens[i]]} and {i} are both {tokens[i]!r}")
            index[tokens[i]] = i
    missing = [b for b in range(256) if bytes([b]) not in index]
    if missing:
        raise ValueError(f"the vocabulary lacks the single byte {bytes([missing[0]])!r} "
                         f"({len(missing)} of the 256 bytes missing)")
    clash = set(special_tokens) & set(map(bytes_to_text, index))
    if clash:
        raise ValueError(f"special token {min(clash)!r} reads as an ordinary token's name in vocabulary files")
    merges = np.array(merges, np.int64).reshape(-1, 2)
    merge_out = _merge_outputs(tokens, merges, index, special_ids)
    made = {index[bytes([b])] for b in range(256)} | set(merge_out.tolist())
    unmade = [i for i in index.values() if i not in made]
    if unmade:
        raise ValueError(f"token {unmade[0]} {tokens[unmade[0]]!r} is neither a byte nor made by a merge")
    return index, merges, merge_out


def _merge_outputs(tokens, merges, index, special_ids):
    """(M,) int64: the token each merge makes. Each merge must join two ordinary tokens that exist
    before it (bytes, or made by an earlier merge) into a token of the vocabulary, and join a pair
    no earlier merge joined; kernels/bpe.py relies on that order."""
    n = len(tokens)
    out = np.empty(len(merges), np.int64)
    made = {index[bytes([b])] for b in range(256)}
    seen = set()
    for r, (a, b) in enumerate(merges.tolist()):
        for t in (a, b):
            if not 0 <= t < n or t in special_ids:
                raise ValueError(f"merge {r} uses {t}, which is not the id of an ordinary token")
        for t in (a, b):
            if t not in made:
                raise ValueError(f"merge {r} ({_show(tokens[a])} {_show(tokens[b])}) uses {_show(tokens[t])}, "
                                 f"which no earlier merge makes")
        if (a, b) in seen:
            raise ValueError(f"merge {r} ({_show(tokens[a])} {_show(tokens[b])}) repeats an earlier merge")
        seen.add((a, b))
        c = index.get(tokens[a] + tokens[b])
        if c is None:
            raise ValueError(f"merge {r} ({_show(tokens[a])} {_show(tokens[b])}) makes "
                             f"{_show(tokens[a] + tokens[b])}, which is not in the vocabulary")
        out[r] = c
        made.add(c)
    return out


def _check_ids(ids):
    """ids as a 1-D uint16, uint32 or int64 array (the types decoding is compiled for)."""
    if isinstance(ids, (str, bytes)):
        raise TypeError(f"token ids must be a sequence of ints, not {type(ids).__name__}")
    arr = np.asarray(ids)
    if arr.ndim != 1:
        raise ValueError(f"token ids must be one-dimensional, got shape {arr.shape}")
    if arr.size == 0:
        return np.empty(0, np.int64)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"token ids must be integers, got {arr.dtype} ({short(ids)})")
    if arr.dtype in (np.uint16, np.uint32, np.int64):
        return np.ascontiguousarray(arr)
    if arr.dtype == np.uint64 and arr.max() > np.iinfo(np.int64).max:
        raise ValueError(f"token id {arr.max()} is outside the vocabulary")
    return arr.astype(np.int64)


def _find_around(data, pattern, cut):
    """The start of an occurrence of `pattern` in `data` that begins before `cut` and ends after
    it, or -1."""
    lo = max(0, cut - len(pattern) + 1)
    i = data.find(pattern, lo, cut + len(pattern) - 1)
    return i if 0 <= i < cut else -1
