"""The generated tasks: repeatable, correct, and with test splits that training never sees."""
import datetime
import re

import pytest

from transformer_jit.data.tasks import DATE_FORMATS, bracket_examples, date_pairs

# -- dates -------------------------------------------------------------------------------------
# An independent reading of the human-written dates with the standard library's strptime, after
# stripping ordinal suffixes, "the", "of", commas and apostrophes. It checks the answers without
# sharing any code with the generator.
STRPTIME_PATTERNS = [
    "%d %B %Y", "%b %d %y", "%A %B %d %Y", "%m/%d/%Y", "%B %d %Y", "%Y.%m.%d", "%d-%b-%Y",
    "%a %d %b %Y", "%m/%d/%y", "%d.%m.%Y", "%Y-%m-%d", "%A %d %B %Y", "%Y/%m/%d",
    "%d %b %y", "%Y%m%d",
]
WEEKDAY_NAMES = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]


def read_date(text):
    """{(pattern, date)} for every pattern that reads `text`; two-digit years mean 1950-2049."""
    t = re.sub(r"(\d)(st|nd|rd|th)\b", r"\1", text.lower())
    t = re.sub(r"\b(the|of)\b|[,']", " ", t)
    t = " ".join(t.split())
    found = set()
    for pattern in STRPTIME_PATTERNS:
        try:
            d = datetime.datetime.strptime(t, pattern).date()
        except ValueError:
            continue
        if "%y" in pattern:  # strptime's own century rule differs (69 -> 1969, 68 -> 2068)
            yy = d.year % 100
            d = d.replace(year=(1900 if yy >= 50 else 2000) + yy)
        found.add((pattern, d))
    return found


def test_dates_are_correct_in_every_format():
    pairs = date_pairs(3000, seed=0, split="train")
    used, with_weekday = set(), 0
    for text, iso in pairs:
        readings = read_date(text)
        assert readings, f"no pattern reads {text!r}"
        assert {d.isoformat() for _, d in readings} == {iso}, text
        date = datetime.date.fromisoformat(iso)
        assert datetime.date(1950, 1, 1) <= date <= datetime.date(2049, 12, 31)
        for name in WEEKDAY_NAMES:  # strptime ignores the weekday, so check it here
            if re.search(rf"\b{name[:3]}", text.lower()):
                assert name == WEEKDAY_NAMES[date.weekday()], text
                with_weekday += 1
        used |= {p for p, _ in readings}
        assert len(text) <= 40
    assert len(used) == len(STRPTIME_PATTERNS)  # every kind of format occurs
    assert with_weekday > 300
    for feature in (r"\d(st|nd|rd|th)\b", r"^the ", r" of ", r"'\d\d$", r"^\d{8}$", r"^\d{4}-\d\d-\d\d$"):
        assert any(re.search(feature, t.lower()) for t, _ in pairs), feature
    # many formats, in lower, upper and mixed case
    assert len(DATE_FORMATS) >= 15
    assert any(t.islower() for t, _ in pairs) and any(t.isupper() for t, _ in pairs)
    assert any(not t.islower() and not t.isupper() and any(c.isalpha() for c in t) for t, _ in pairs)


def test_dates_are_repeatable_per_seed():
    assert date_pairs(50, 3, "train") == date_pairs(50, 3, "train")
    assert date_pairs(50, 3, "train") != date_pairs(50, 4, "train")
    assert date_pairs(50, 3, "train") != date_pairs(50, 3, "test")


def test_no_date_is_in_both_splits():
    train = {iso for _, iso in date_pairs(20000, 0, "train")}
    test = {iso for _, iso in date_pairs(5000, 0, "test")}
    assert len(test) > 2500 and len(train) > 10000  # enough dates that an overlap would show
    assert not train & test
    assert not {iso for _, iso in date_pairs(5000, 1, "train")} & test  # whatever the seeds


# -- brackets ----------------------------------------------------------------------------------
def balanced(text):
    """The test's own stack checker."""
    closer_of = {"(": ")", "[": "]"}
    expected = []
    for ch in text:
        if ch in closer_of:
            expected.append(closer_of[ch])
        elif not expected or expected.pop() != ch:
            return False
    return not expected


@pytest.mark.parametrize("split", ["train", "test"])
def test_bracket_labels_are_correct_and_balanced(split):
    examples = bracket_examples(2001, seed=0, split=split)
    assert len(examples) == 2001
    assert len({t for t, _ in examples}) == 2001  # no duplicates
    assert sum(label for _, label in examples) == 1000  # half positive
    for text, label in examples:
        assert set(text) <= set("()[]") and text
        assert label == int(balanced(text)), text
    # shuffled: both labels in the last tenth, where a dataset's validation split comes from
    assert {label for _, label in examples[-200:]} == {0, 1}
    negatives = [t for t, label in examples if label == 0]
    same_counts = [t for t in negatives if t.count("(") == t.count(")") and t.count("[") == t.count("]")]
    # hard negatives (right counts, wrong order) and simple ones (a bracket removed or changed)
    assert 0.4 * len(negatives) < len(same_counts) < 0.8 * len(negatives)
    assert any(len(t) % 2 for t in negatives)
    assert max(len(t) for t, _ in examples) <= 24


def test_bracket_splits_share_no_length():
    train = {len(t) for t, _ in bracket_examples(3000, 0, "train")}
    test = {len(t) for t, _ in bracket_examples(3000, 0, "test")}
    assert not train & test
    assert test == {9, 10, 15, 16, 21, 22}
    assert max(train) == 24 and min(train) == 1  # the test lengths lie inside the training range


def test_brackets_are_repeatable_per_seed():
    assert bracket_examples(100, 7, "test") == bracket_examples(100, 7, "test")
    assert bracket_examples(100, 7, "test") != bracket_examples(100, 8, "test")


# -- arguments ---------------------------------------------------------------------------------
@pytest.mark.parametrize("make", [date_pairs, bracket_examples])
def test_arguments_are_checked(make):
    with pytest.raises(ValueError, match="n must be an integer >= 1"):
        make(0, 0, "train")
    with pytest.raises(ValueError, match="n must be"):
        make(2.5, 0, "train")
    with pytest.raises(ValueError, match="split must be 'train' or 'test'"):
        make(5, 0, "val")
    with pytest.raises(ValueError, match="seed"):
        make(5, -1, "train")
