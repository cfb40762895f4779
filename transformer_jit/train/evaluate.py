"""Task metrics for the encoder models: exact match of decoded translations, classification accuracy.

Both run the model in batches over held-out texts with dropout off (models.translation.translate,
models.classifier.classify), and both say what they got wrong, since "97%" is much easier to act
on next to three of the failures.
"""
from dataclasses import dataclass, field

from ..models.classifier import classify
from ..models.translation import translate


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


def exact_match(model, src_tok, tgt_tok, pairs, beam_width=1, alpha=0.6, batch_size=256, progress=False, keep=5):
    """Fraction of (source, target) pairs whose decoded output equals the target exactly."""
    sources = [s for s, _ in pairs]
    got = translate(model, src_tok, tgt_tok, sources, beam_width, alpha, batch_size, progress)
    score = Score(0, len(pairs))
    for (source, target), output in zip(pairs, got):
        score.add(source, output == target, target, output, keep)
    return score


def accuracy(model, tok, examples, batch_size=256, progress=False, keep=5):
    """Fraction of (text, label) examples the classifier gets right."""
    preds = classify(model, tok, [t for t, _ in examples], batch_size, progress)
    score = Score(0, len(examples))
    for (text, label), pred in zip(examples, preds):
        score.add(text, bool(pred == label), label, int(pred), keep)
    return score
