"""Batches of similar-length examples, so that a step computes less padding.

A batch is padded to its longest sequence. Drawn uniformly from examples of lengths 1 to 24, a
batch of 64 almost always holds a 24, so every step pays for 24 positions even when the average
example has 17. Grouping the examples into buckets of similar length and drawing each batch from
one bucket (chosen with probability proportional to its size, so every example is still drawn
equally often) makes a step compute about the average length instead of the longest.

    data = LengthBuckets(examples, lambda part: LabelledDataset(part, tok, max_len, 0.05), n_buckets=6)
    src, ... = data.batch("train", 64, rng)

Each bucket is its own dataset (PairDataset or LabelledDataset, built by `make`), with its own
train/val split; the val split of the whole is the union of the buckets' val splits.
"""
import numpy as np


class LengthBuckets:
    def __init__(self, examples, make, n_buckets=6, length=lambda example: len(example[0])):
        """examples: list of (input text, target) pairs; make(list of examples) -> dataset;
        n_buckets: how many groups, of about equal size; length(example) -> its length."""
        examples = list(examples)
        if not examples:
            raise ValueError("LengthBuckets needs at least one example")
        n_buckets = max(1, min(int(n_buckets), len(examples) // 20 or 1))  # a bucket needs room for a val split
        order = sorted(range(len(examples)), key=lambda i: length(examples[i]))  # stable: ties keep their order
        # Equal-count chunks of the length order; inside a chunk, back to the original order, so a
        # bucket's val split (its last examples) is not simply its longest ones.
        chunks = [sorted(chunk) for chunk in np.array_split(np.array(order), n_buckets)]
        self.buckets = [make([examples[i] for i in chunk]) for chunk in chunks]
        sizes = np.array([len(chunk) for chunk in chunks], dtype=np.float64)
        self.weights = sizes / sizes.sum()

    def batch(self, split, batch_size, rng):
        """One dataset's batch(split, batch_size, rng), from a bucket chosen with probability ~ its size."""
        bucket = self.buckets[rng.choice(len(self.buckets), p=self.weights)]
        return bucket.batch(split, batch_size, rng)

    def examples(self, split):
        return [example for bucket in self.buckets for example in bucket.examples(split)]

    def __len__(self):
        return sum(len(bucket) for bucket in self.buckets)

    @property
    def num_classes(self):
        """For labelled data: the number of classes over all buckets."""
        return max(bucket.num_classes for bucket in self.buckets)
