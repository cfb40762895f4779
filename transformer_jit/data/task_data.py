"""The built-in tasks as datasets: tokenizers, train/val splits and held-out test examples.

    data = seq2seq_task("dates", recipe("dates")["data"])      tokenizers, PairDataset, held-out pairs
    data = classifier_task("brackets", recipe("brackets")["data"])
"""
from dataclasses import dataclass

from . import tasks
from .bucketing import LengthBuckets
from .sequences import LabelledDataset, PairDataset
from .tokenizers import SeqTokenizer, TokenizerPair

SEQ2SEQ_TASKS = {"dates": tasks.date_pairs}
CLASSIFIER_TASKS = {"brackets": tasks.bracket_examples}
CLASSIFIER_LABELS = {"brackets": ["unbalanced", "balanced"]}


@dataclass
class TaskData:
    tokenizer: object   # TokenizerPair for seq2seq, SeqTokenizer for classification
    dataset: object     # PairDataset or LabelledDataset: "train" and "val" splits
    test: list          # held-out examples: (source, target) or (text, label)
    labels: list = None  # a classifier's class names, by class number


def _task(registry, name):
    try:
        return registry[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; choose from {sorted(registry)}") from None


def seq2seq_task(name, data, tokenizer=None):
    """Generate a seq2seq task's train/val dataset and held-out test pairs.

    data: {"n_train", "n_test", "seed", "val_fraction", "max_src_len", "max_tgt_len"} and optionally
    "buckets" (> 1: batches of similar source length).
    The tokenizers cover the training texts' characters unless given (when resuming).
    """
    generate = _task(SEQ2SEQ_TASKS, name)
    pairs = generate(data["n_train"], data["seed"], "train")
    test = generate(data["n_test"], data["seed"], "test")
    if tokenizer is None:
        tokenizer = TokenizerPair(SeqTokenizer.from_texts(s for s, _ in pairs),
                                  SeqTokenizer.from_texts(t for _, t in pairs))

    def make(part):
        return PairDataset(part, tokenizer.src, tokenizer.tgt, data["max_src_len"], data["max_tgt_len"],
                           data["val_fraction"])

    return TaskData(tokenizer, _maybe_bucketed(pairs, make, data), test)


def classifier_task(name, data, tokenizer=None):
    """Generate a classification task's train/val dataset and held-out test examples.

    data: {"n_train", "n_test", "seed", "val_fraction", "max_len"} and optionally "buckets".
    """
    generate = _task(CLASSIFIER_TASKS, name)
    examples = generate(data["n_train"], data["seed"], "train")
    test = generate(data["n_test"], data["seed"], "test")
    tokenizer = tokenizer or SeqTokenizer.from_texts(t for t, _ in examples)

    def make(part):  # no CLS in the data: a classifier with pooling="cls" puts its own in front
        return LabelledDataset(part, tokenizer, data["max_len"], data["val_fraction"])

    return TaskData(tokenizer, _maybe_bucketed(examples, make, data), test, CLASSIFIER_LABELS[name])


def _maybe_bucketed(examples, make, data):
    """data["buckets"] > 1: batches of similar length (see bucketing.py); else one dataset."""
    n_buckets = data.get("buckets", 0)
    return LengthBuckets(examples, make, n_buckets) if n_buckets > 1 else make(examples)

