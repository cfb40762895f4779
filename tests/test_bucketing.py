"""Length buckets: batches of similar length, every example still drawn, splits kept apart."""
import numpy as np
import pytest

from transformer_jit.data.bucketing import LengthBuckets
from transformer_jit.data import LabelledDataset, PairDataset, SeqTokenizer

TOK = SeqTokenizer("ab")


def labelled(n=200, seed=0):
    rng = np.random.default_rng(seed)
    return [("".join(rng.choice(["a", "b"], size=rng.integers(1, 25))), int(rng.integers(2))) for _ in range(n)]


def test_buckets_partition_the_examples_by_length():
    examples = labelled()
    data = LengthBuckets(examples, lambda part: LabelledDataset(part, TOK, 24, 0.1), n_buckets=4)
    assert len(data.buckets) == 4 and len(data) == len(examples)
    assert data.weights.sum() == pytest.approx(1.0)
    train, val = data.examples("train"), data.examples("val")
    assert sorted(train + val) == sorted(examples) and len(val) >= 4  # every bucket has a val split
    spans = [(min(len(t) for t, _ in b.examples("train")), max(len(t) for t, _ in b.examples("train")))
             for b in data.buckets]
    assert all(hi <= lo2 for (_, hi), (lo2, _) in zip(spans, spans[1:]))  # ordered, non-overlapping lengths
    assert data.num_classes == 2


def test_a_batch_comes_from_one_bucket_so_it_is_padded_less():
    examples = labelled(400)
    data = LengthBuckets(examples, lambda part: LabelledDataset(part, TOK, 24, 0.1), n_buckets=4)
    plain = LabelledDataset(examples, TOK, 24, 0.1)
    rng_a, rng_b = np.random.default_rng(1), np.random.default_rng(1)
    bucketed = [data.batch("train", 16, rng_a)[0].shape[1] for _ in range(200)]
    uniform = [plain.batch("train", 16, rng_b)[0].shape[1] for _ in range(200)]
    assert np.mean(bucketed) < 0.8 * np.mean(uniform)
    # each bucket is drawn about as often as its share of the examples
    counts = np.zeros(4)
    rng = np.random.default_rng(2)
    for _ in range(2000):
        ids, _ = data.batch("train", 1, rng)
        length = int((ids[0] != 0).sum())
        counts[next(i for i, b in enumerate(data.buckets)
                    if length <= max(len(t) for t, _ in b.examples("train")))] += 1
    np.testing.assert_allclose(counts / counts.sum(), data.weights, atol=0.05)


def test_pairs_bucket_by_source_length_and_batches_repeat_with_a_seed():
    pairs = [(t, t[::-1]) for t, _ in labelled(100)]
    data = LengthBuckets(pairs, lambda part: PairDataset(part, TOK, TOK, 24, 26, 0.1), n_buckets=3)
    a = data.batch("val", 5, np.random.default_rng(3))
    b = data.batch("val", 5, np.random.default_rng(3))
    assert len(a) == 3 and all(np.array_equal(x, y) for x, y in zip(a, b))
    with pytest.raises(ValueError):
        LengthBuckets([], lambda part: None)
