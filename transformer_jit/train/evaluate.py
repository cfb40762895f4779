"""Task metrics for the encoder models: exact match of decoded translations, classification accuracy.

Both run the model in batches over held-out texts with dropout off, and both say what they got
wrong, since "97%" is much easier to act on next to three of the failures.
"""
from dataclasses import dataclass, field

import numpy as np
from tqdm.auto import tqdm

from ..data.sequences import pad_batch
from ..data.text import short
from ..models.decoding import beam_search, greedy_decode


@dataclass
class Score:
    correct: int
    total: int
    mistakes: list = field(default_factory=list)  # (input, expected, got), the first few
    by_length: dict = field(default_factory=dict)  # input length -> [correct, total]

    @property
    def fraction(self):
        return self.correct / self.total if self.total else 0.0

    def __str__(self):
        return f"{100 * self.fraction:.2f}% ({self.correct}/{self.total})"

    def add(self, example, right, expected, got, keep):
        """Count one example; remember its input if it is among the first `keep` mistakes."""
        self.correct += right
        counts = self.by_length.setdefault(len(example), [0, 0])
        counts[0] += right
        counts[1] += 1
        if not right and len(self.mistakes) < keep:
            self.mistakes.append((example, expected, got))

    def lengths_line(self):
        """'by input length: 9: 98.2%, 10: 97.7%, ...': where a held-out split varies length, the
        lengths a model fails on."""
        parts = [f"{n}: {100 * c / t:.1f}%" for n, (c, t) in sorted(self.by_length.items())]
        return "by input length: " + ", ".join(parts)


def _batches(items, batch_size, desc, progress):
    starts = range(0, len(items), batch_size)
    # disable=None: shown on a terminal, quiet when output is redirected
    for start in tqdm(starts, desc=desc, unit="batch", leave=False, disable=None if progress else True):
        yield items[start:start + batch_size]


def translate(model, src_tok, tgt_tok, texts, beam_width=1, alpha=0.6, batch_size=256, progress=False):
    """Decode each text with the seq2seq model: greedy for beam_width 1, else beam search.

    Characters outside the source vocabulary and texts longer than the model's max_src_len raise
    a ValueError that names the text.
    """
    texts = list(texts)
    if not texts:
        raise ValueError("nothing to translate: no input texts")
    max_len = model.config.max_src_len
    encoded = []
    for text in texts:
        if not text:
            raise ValueError("cannot translate an empty text")
        try:
            ids = src_tok.encode(text)
        except ValueError as e:
            raise ValueError(f"{short(text)}: {e}") from None
        if len(ids) > max_len:
            raise ValueError(f"{short(text)} has {len(ids):,} characters; this model reads at most {max_len}")
        encoded.append(ids)
    outputs = []
    for chunk in _batches(encoded, batch_size, "decoding", progress):
        src = pad_batch(chunk)
        tokens = greedy_decode(model, src) if beam_width == 1 else beam_search(model, src, beam_width, alpha)
        outputs.extend(tgt_tok.decode(t) for t in tokens)
    return outputs


def exact_match(model, src_tok, tgt_tok, pairs, beam_width=1, alpha=0.6, batch_size=256, progress=False, keep=5):
    """Fraction of (source, target) pairs whose decoded output equals the target exactly."""
    sources = [s for s, _ in pairs]
    got = translate(model, src_tok, tgt_tok, sources, beam_width, alpha, batch_size, progress)
    score = Score(0, len(pairs))
    for (source, target), output in zip(pairs, got):
        score.add(source, output == target, target, output, keep)
    return score


def classify(model, tok, texts, batch_size=256, progress=False):
    """Predicted class of each text, (n,) int64. A CLS token, if the model uses one, is its own
    business: it is added inside the model."""
    texts = list(texts)
    if not texts:
        raise ValueError("nothing to classify: no input texts")
    preds = []
    for chunk in _batches(texts, batch_size, "classifying", progress):
        try:
            ids = pad_batch([tok.encode(t) for t in chunk])
        except ValueError as e:
            raise ValueError(f"cannot classify: {e}") from None
        preds.append(model.predict(ids))
    return np.concatenate(preds)


def accuracy(model, tok, examples, batch_size=256, progress=False, keep=5):
    """Fraction of (text, label) examples the classifier gets right."""
    preds = classify(model, tok, [t for t, _ in examples], batch_size, progress)
    score = Score(0, len(examples))
    for (text, label), pred in zip(examples, preds):
        score.add(text, bool(pred == label), label, int(pred), keep)
    return score
