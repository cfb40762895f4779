"""The encoder models' data from the user's files (table_files.py): a classifier's (text, label)
examples or a seq2seq model's (source, target) pairs, a tokenizer, and a validation split.

    data = classifier_files(spec)     TaskData; data.labels names the classes, data.test is the val split
    data = seq2seq_files(spec)

spec, saved with the run so that --resume reads the same files the same way:
    path, val_path          the training file; a validation file, or "" to hold out val_fraction
    val_fraction, seed      the held-out share (stratified by label for a classifier) and its draw
    columns                 [text, label] or [source, target]: names or 0-based numbers
    tokenizer, vocab_size   "char", "bpe" (trained on the training file) or a BPE's directory
    shared_vocab            seq2seq: one tokenizer for source and target
    max_len / max_src_len, max_tgt_len   0: the longest example's; a longer example is an error
    sha256                  {option: digest} of the files read (file_digests), checked again on resume
"""
import hashlib
from collections import defaultdict

import numpy as np

from ..util.regular_file import read_regular_file
from .sequences import LabelledDataset, PairDataset
from .table_files import MAX_TABLE_BYTES, read_table
from .task_data import TaskData
from .tokenizers import BPETokenizer, SeqBPETokenizer, SeqTokenizer, TokenizerPair

CLASSIFIER_COLUMNS = ("--text-column", "--label-column")
SEQ2SEQ_COLUMNS = ("--source-column", "--target-column")


def classifier_files(spec, tokenizer=None, labels=None):
    """TaskData of a classifier's files; `tokenizer` and `labels` are a resumed run's own."""
    train, val = _read(spec, CLASSIFIER_COLUMNS)
    labels = labels or label_names(label for _, (_, label) in train)
    index = {name: i for i, name in enumerate(labels)}
    _check_labels(train + val, index)
    if not spec["val_path"]:
        train, val = stratified_split(train, spec["val_fraction"], spec["seed"], spec["path"])
    tokenizer = tokenizer or _new_tokenizer(spec, [t for _, (t, _) in train + val], [t for _, (t, _) in train])
    max_len = _max_length(spec, "max_len", "--max-len", tokenizer, train + val, 0, "text")
    examples = [(text, index[label]) for _, (text, label) in train + val]
    dataset = LabelledDataset(examples, tokenizer, max_len, len(val) / len(examples))
    return TaskData(tokenizer, dataset, examples[len(train):], labels)


def seq2seq_files(spec, tokenizer=None):
    """TaskData of a seq2seq model's files; `tokenizer` is a resumed run's TokenizerPair."""
    train, val = _read(spec, SEQ2SEQ_COLUMNS)
    if not spec["val_path"]:
        train, val = _held_out(train, spec["val_fraction"], spec["seed"], spec["path"])
    if tokenizer is None:
        sources, targets = ([row[side] for _, row in train + val] for side in (0, 1))
        if spec["shared_vocab"]:
            shared = _new_tokenizer(spec, sources + targets, [f for _, row in train for f in row])
            tokenizer = TokenizerPair(shared, shared)
        else:
            tokenizer = TokenizerPair(_new_tokenizer(spec, sources, [s for _, (s, _) in train]),
                                      _new_tokenizer(spec, targets, [t for _, (_, t) in train]))
    max_src = _max_length(spec, "max_src_len", "--max-src-len", tokenizer.src, train + val, 0, "source")
    max_tgt = _max_length(spec, "max_tgt_len", "--max-tgt-len", tokenizer.tgt, train + val, 1, "target")
    pairs = [row for _, row in train + val]
    dataset = PairDataset(pairs, tokenizer.src, tokenizer.tgt, max_src, max_tgt, len(val) / len(pairs))
    return TaskData(tokenizer, dataset, pairs[len(train):])


def file_digests(spec):
    """{option: sha256} of the files a spec reads: saved with a new run, compared on resume."""
    return {option: hashlib.sha256(read_regular_file(path, option, MAX_TABLE_BYTES)).hexdigest()
            for option, path in (("--data", spec["path"]), ("--val-data", spec["val_path"])) if path}


def label_names(labels):
    """The distinct labels in class order: by value when all are integers ("0" < "2" < "10"),
    else alphabetical."""
    names = set(labels)
    if all(name.strip().lstrip("-").isdigit() for name in names):
        return sorted(names, key=int)
    return sorted(names)


def stratified_split(rows, fraction, seed, path):
    """(train, val) of (line, (text, label)) rows: each label gives val its share, rounded, and at
    least one example when it has two or more; both keep the file's order."""
    by_label = defaultdict(list)
    for i, (_, (_, label)) in enumerate(rows):
        by_label[label].append(i)
    rng = np.random.default_rng(seed)
    held = set()
    for indices in by_label.values():
        n = round(len(indices) * fraction)
        if len(indices) >= 2:
            n = min(max(n, 1), len(indices) - 1)
        held.update(rng.permutation(indices)[:n].tolist())
    return _parts(rows, held, fraction, path)


def _held_out(rows, fraction, seed, path):
    """(train, val): a random val_fraction of the rows (at least one), both in the file's order."""
    n = max(1, round(len(rows) * fraction))
    return _parts(rows, set(np.random.default_rng(seed).permutation(len(rows))[:n].tolist()), fraction, path)


def _parts(rows, held, fraction, path):
    if len(rows) < 2:
        raise ValueError(f"--data {path} holds {len(rows)} example: holding out --val-fraction {fraction} needs at "
                         f"least 2 (one to train on, one to validate), or give --val-data")
    train = [row for i, row in enumerate(rows) if i not in held]
    val = [row for i, row in enumerate(rows) if i in held]
    return train, val


def _read(spec, options):
    columns = list(zip(options, spec["columns"]))
    train = _rows(spec["path"], columns, "--data")
    val = _rows(spec["val_path"], columns, "--val-data") if spec["val_path"] else []
    return train, val


def _rows(path, columns, option):
    """(where, fields) rows: `where` ("--data reviews.tsv line 7") names each row in errors."""
    return [(f"{option} {path} line {line}", fields) for line, fields in read_table(path, columns, option)]


def _check_labels(rows, index):
    for where, (_, label) in rows:
        if label not in index:
            raise ValueError(f"{where}: label {label!r} does not occur in the training data, whose labels are "
                             f"{', '.join(index)}")


def _new_tokenizer(spec, texts, training_texts):
    """Characters of all `texts` (so that no validation character is unknown), or a BPE learned
    from the training texts, or one read from a directory."""
    kind = spec["tokenizer"]
    if kind == "char":
        return SeqTokenizer.from_texts(texts)
    if kind == "bpe":
        return SeqBPETokenizer.train(training_texts, spec["vocab_size"])
    return SeqBPETokenizer(BPETokenizer.from_pretrained(kind))


def _max_length(spec, key, option, tokenizer, rows, extra, side):
    """The positions a model needs: spec[key], or (0) the longest encoded example plus `extra`
    (BOS/EOS of a target); an example longer than a given bound is refused by its line."""
    column = {"text": 0, "source": 0, "target": 1}[side]
    lengths = [len(tokenizer.encode(row[column])) + extra for _, row in rows]
    if not spec[key]:
        return max(lengths)
    for (where, _), n in zip(rows, lengths):
        if n > spec[key]:
            raise ValueError(f"{where}: the {side} has {n - extra} tokens"
                             f"{' (plus one for BOS/EOS)' if extra else ''}, more than {option} {spec[key]}: raise "
                             f"{option}, or shorten or drop that example")
    return spec[key]
