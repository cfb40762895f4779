"""Runs of the encoder models on the built-in tasks: their data, and trained models from checkpoints.

    data = seq2seq_task("dates", recipe("dates")["data"])      tokenizers, PairDataset, held-out pairs
    data = classifier_task("brackets", recipe("brackets")["data"])
    model, tokenizer, meta = load_trained("out-dates/best.npz")
"""
from dataclasses import dataclass

from . import tasks
from .bucketing import LengthBuckets
from .checkpoint import load_checkpoint, split_prefix
from .classifier import EncoderClassifier
from .configs import ClassifierConfig, Seq2SeqConfig
from .recipes import TokenizerPair
from .seqdata import LabelledDataset, PairDataset, SeqTokenizer
from .seq2seq import Seq2SeqTransformer

SEQ2SEQ_TASKS = {"dates": tasks.date_pairs}
CLASSIFIER_TASKS = {"brackets": tasks.bracket_examples}


@dataclass
class TaskData:
    tokenizer: object   # TokenizerPair for seq2seq, SeqTokenizer for classification
    dataset: object     # PairDataset or LabelledDataset: "train" and "val" splits
    test: list          # held-out examples: (source, target) or (text, label)


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

    return TaskData(tokenizer, _maybe_bucketed(examples, make, data), test)


def _maybe_bucketed(examples, make, data):
    """data["buckets"] > 1: batches of similar length (see bucketing.py); else one dataset."""
    n_buckets = data.get("buckets", 0)
    return LengthBuckets(examples, make, n_buckets) if n_buckets > 1 else make(examples)


def load_trained(path):
    """(model, tokenizer, meta) from a checkpoint written by the Trainer for a "seq2seq" or
    "classifier" run; the tokenizer is a TokenizerPair or a SeqTokenizer accordingly."""
    arrays, meta = load_checkpoint(path)
    kind = meta.get("kind")
    if kind in ("seq2seq", "classifier") and not meta.get("tokenizer"):
        raise ValueError(f"{path} has no tokenizer: it was not written by a Trainer given one")
    if kind == "seq2seq":
        model = Seq2SeqTransformer(Seq2SeqConfig.from_dict(meta["model_config"]))
        tokenizer = TokenizerPair.from_dict(meta["tokenizer"])
    elif kind == "classifier":
        model = EncoderClassifier(ClassifierConfig.from_dict(meta["model_config"]))
        tokenizer = SeqTokenizer.from_dict(meta["tokenizer"])
    else:
        raise ValueError(f"{path} holds a {kind!r} model, not a seq2seq model or a classifier")
    model.load_state_dict(split_prefix(arrays, "model."))
    model.eval()
    return model, tokenizer, meta
