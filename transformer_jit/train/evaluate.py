"""Task metrics for the encoder models: exact match and chrF of decoded translations,
classification accuracy and macro-F1, of texts and of images.

Both run the model in batches over held-out texts with dropout off (models.translation.translate,
models.classifier.classify), and both say what they got wrong, since "97%" is much easier to act
on next to three of the failures.
"""
from collections import Counter
from dataclasses import dataclass, field

from ..models.classifier import classify
from ..models.image_classification import classify_images
from ..models.translation import translate


@dataclass
class Score:
    correct: int
    total: int
    mistakes: list = field(default_factory=list)  # (input, expected, got), the first few
    by_length: dict = field(default_factory=dict)  # input length -> [correct, total]
    extra: dict = field(default_factory=dict)  # the task's other metric: {"macro-F1": 0.93} or {"chrF": 91.2}

    @property
    def fraction(self):
        return self.correct / self.total if self.total else 0.0

    def __str__(self):
        return f"{100 * self.fraction:.2f}% ({self.correct}/{self.total})"

    def summary(self, name):
        """"accuracy: 93.10% (931/1000), macro-F1 0.9302": `name` is what the fraction counts."""
        return ", ".join([f"{name}: {self}", *(f"{k} {v:.4f}" for k, v in self.extra.items())])

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
    score = Score(0, len(pairs), extra={"chrF": chrf(got, [t for _, t in pairs])})
    for (source, target), output in zip(pairs, got):
        score.add(source, output == target, target, output, keep)
    return score


def accuracy(model, tok, examples, batch_size=256, progress=False, keep=5, labels=None):
    """Fraction of (text, label) examples the classifier gets right, and the macro-F1. Mistakes
    show the `labels` names of the classes, if given."""
    preds = classify(model, tok, [t for t, _ in examples], batch_size, progress)
    expected = [label for _, label in examples]
    score = Score(0, len(examples), extra={"macro-F1": macro_f1(expected, preds.tolist())})
    name = (lambda i: labels[i]) if labels else int
    for (text, label), pred in zip(examples, preds):
        score.add(text, bool(pred == label), name(label), name(pred), keep)
    return score


def image_accuracy(model, images, batch_size=256, progress=False, keep=5):
    """accuracy() for a vision transformer over LabelledImages; a mistake shows where the image
    came from (its file, or #index) and the class names."""
    preds = classify_images(model, images.images, batch_size, progress)
    expected = images.labels.tolist()
    score = Score(0, len(images), extra={"macro-F1": macro_f1(expected, preds.tolist())})
    for source, label, pred in zip(images.sources, expected, preds.tolist()):
        score.add(source, label == pred, images.names[label], images.names[pred], keep)
    return score


def macro_f1(expected, got):
    """The mean over classes of F1 = 2 precision recall / (precision + recall), over the classes
    that occur in `expected` or `got` (as scikit-learn's f1_score(average="macro") does)."""
    f1s = []
    for c in set(expected) | set(got):
        tp = sum(e == c and g == c for e, g in zip(expected, got))
        n_expected, n_got = expected.count(c), got.count(c)
        f1s.append(2 * tp / (n_expected + n_got))  # = 2PR / (P + R); never 0/0: c occurs somewhere
    return sum(f1s) / len(f1s) if f1s else 0.0


def chrf(hypotheses, references, order=6, beta=2.0):
    """Corpus chrF (Popović 2015) in [0, 100], as sacrebleu's CHRF() computes it by default:
    character n-grams of orders 1..6 without whitespace, their matches summed over the corpus,
    precision and recall averaged over the orders that both sides have n-grams of, then the F-beta of the
    two (beta 2: recall weighs more)."""
    stats = [[0, 0, 0] for _ in range(order)]  # per order: hypothesis n-grams, reference n-grams, matches
    for hyp, ref in zip(hypotheses, references):
        hyp, ref = "".join(hyp.split()), "".join(ref.split())
        for n in range(1, order + 1):
            h, r = _ngrams(hyp, n), _ngrams(ref, n)
            stats[n - 1][0] += sum(h.values()) if r else 0  # a reference too short for n-grams: no penalty
            stats[n - 1][1] += sum(r.values())
            stats[n - 1][2] += sum((h & r).values())
    orders = [(n_match / n_hyp, n_match / n_ref) for n_hyp, n_ref, n_match in stats if n_hyp and n_ref]
    if not orders:
        return 0.0
    precision, recall = (sum(values) / len(orders) for values in zip(*orders))
    if not precision + recall:
        return 0.0
    b2 = beta ** 2
    return 100 * (1 + b2) * precision * recall / (b2 * precision + recall)


def _ngrams(text, n):
    return Counter(text[i:i + n] for i in range(len(text) - n + 1))
