"""Scores of the task metrics: counts, the first mistakes, and the per-length breakdown."""
from transformer_jit.train.evaluate import Score


def test_score_counts_mistakes_and_lengths():
    score = Score(0, 4)
    for text, expected, got in [("()", 1, 1), ("(]", 0, 1), ("([])", 1, 1), ("([)]", 0, 1)]:
        score.add(text, expected == got, expected, got, keep=1)
    assert (score.correct, score.total, score.fraction) == (2, 4, 0.5)
    assert score.mistakes == [("(]", 0, 1)]  # only the first `keep`
    assert score.by_length == {2: [1, 2], 4: [1, 2]}
    assert score.lengths_line() == "by input length: 2: 50.0%, 4: 50.0%"
