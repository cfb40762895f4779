"""Tokenizers: text to token ids and back, and back again from the dict saved in a checkpoint.

    chars            CharTokenizer (one token per character), SeqTokenizer (with PAD, BOS, EOS),
                     TokenizerPair (a seq2seq model's two)
    bpe              BPETokenizer: GPT-2's byte-level BPE, trained here or read from GPT-2's files;
                     bpe_text (special tokens), bpe_files (vocab.json + merges.txt, encoder.json +
                     vocab.bpe), bpe_train (learning merges), byte_unicode (GPT-2's byte table),
                     unicode_classes (the letter/number/space classes of its pattern)
    seq_bpe          SeqBPETokenizer: a BPE with the encoder models' PAD, BOS and EOS in front
    tokenizer_from_dict(d)   whichever of these `to_dict()` wrote
    encode_text, end_of_text   a GPT's text in and out, whichever tokenizer it has
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


def encode_text(tokenizer, text):
    """The ids of a text for a GPT: with a BPE, special tokens' texts (<|endoftext|> between
    documents) are those tokens; characters are characters."""
    if isinstance(tokenizer, BPETokenizer):
        return tokenizer.encode(text, allowed_special="all")
    return tokenizer.encode(text)


def end_of_text(tokenizer):
    """The token that ends a generated text: a BPE's <|endoftext|>, or None for characters."""
    return tokenizer.eot_token if isinstance(tokenizer, BPETokenizer) else None


__all__ = ["BPETokenizer", "CharTokenizer", "SeqBPETokenizer", "SeqTokenizer", "TokenizerPair", "TOKENIZERS",
           "tokenizer_from_dict", "encode_text", "end_of_text"]
