"""Tokenizers: text to token ids and back, and back again from the dict saved in a checkpoint.

    chars            CharTokenizer (one token per character), SeqTokenizer (with PAD, BOS, EOS),
                     TokenizerPair (a seq2seq model's two)
    bpe              BPETokenizer: GPT-2's byte-level BPE, trained here or read from GPT-2's files;
                     bpe_text (special tokens), bpe_files (vocab.json + merges.txt, encoder.json +
                     vocab.bpe), bpe_train (learning merges), byte_unicode (GPT-2's byte table),
                     unicode_classes (the letter/number/space classes of its pattern)
    seq_bpe          SeqBPETokenizer: a BPE with the encoder models' PAD, BOS and EOS in front
    tokenizer_from_dict(d)   whichever of these `to_dict()` wrote
"""
from .bpe import BPETokenizer
from .chars import CharTokenizer, SeqTokenizer, TokenizerPair
from .seq_bpe import SeqBPETokenizer

TOKENIZERS = {"char": CharTokenizer, "seq": SeqTokenizer, "pair": TokenizerPair, "bpe": BPETokenizer,
              "seq_bpe": SeqBPETokenizer}


def tokenizer_from_dict(d):
    """The tokenizer a checkpoint saved with `to_dict()`, whatever its type."""
    if not isinstance(d, dict) or not isinstance(d.get("type"), str) or d["type"] not in TOKENIZERS:
        kind = d.get("type") if isinstance(d, dict) else type(d).__name__
        raise ValueError(f"unknown tokenizer {kind!r}; expected one of {sorted(TOKENIZERS)}")
    return TOKENIZERS[d["type"]].from_dict(d)


__all__ = ["BPETokenizer", "CharTokenizer", "SeqBPETokenizer", "SeqTokenizer", "TokenizerPair", "TOKENIZERS",
           "tokenizer_from_dict"]
