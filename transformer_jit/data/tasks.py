"""Built-in generated tasks: no download, the same examples for the same seed.

    date_pairs(n, seed, split)        ("3rd of March 2021", "2021-03-03")      sequence to sequence
    bracket_examples(n, seed, split)  ("([])[]", 1), ("([)]", 0)               classification

Each has a "train" and a held-out "test" split that a model cannot have memorised: test dates
never occur in training in any format, and test bracket strings have lengths training never shows.
(A validation split for early stopping is carved out of "train" by the datasets in sequences.py.)
"""
import datetime
import zlib
from functools import lru_cache

import numpy as np

SPLITS = ("train", "test")


def _check_args(n, seed, split):
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be an integer >= 1, got {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    if split not in SPLITS:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")


def _rng(seed, split, task):
    # train and test draw from unrelated streams, and so do the two tasks
    return np.random.default_rng([int(seed), SPLITS.index(split), task])


# == dates =====================================================================================
FIRST_DATE, LAST_DATE = datetime.date(1950, 1, 1), datetime.date(2049, 12, 31)
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December")
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")  # date.weekday() order

# Each format: a str.format template over the fields made in _date_fields, and a case to apply.
# Numeric formats are unambiguous by their separators: "/" with the year last is the US order
# month/day/year; "." with the year last is day.month.year (as in Germany); the year first is
# always year, month, day. Two-digit years ("21", "'21") mean 1950-2049: 50-99 -> 19xx, 00-49 -> 20xx.
DATE_FORMATS = (
    ("{D} of {Month} {Y}", None),           # 3rd of March 2021
    ("{Mon} {d}, {yy}", None),              # Mar 3, 21
    ("{Weekday}, {Month} {d}, {Y}", None),  # Wednesday, March 3, 2021
    ("{mm}/{dd}/{Y}", None),                # 03/03/2021   (US: month/day/year)
    ("{d} {Month} {Y}", None),              # 3 March 2021
    ("{Month} {D}, {Y}", None),             # March 3rd, 2021
    ("{Y}.{mm}.{dd}", None),                # 2021.03.03
    ("{d}-{Mon}-{Y}", None),                # 3-Mar-2021
    ("{Wdy} {d} {Mon} {Y}", "lower"),       # wed 3 mar 2021
    ("{Month} {d} {Y}", "upper"),           # MARCH 3 2021
    ("{m}/{d}/{yy}", None),                 # 3/3/21       (US: month/day/year)
    ("{Wdy}, {d} {Mon} {Y}", None),         # Wed, 3 Mar 2021
    ("the {D} of {Month}, {Y}", None),      # the 3rd of March, 2021
    ("{dd}.{mm}.{Y}", None),                # 03.03.2021   (day.month.year)
    ("{Y}-{mm}-{dd}", None),                # 2021-03-03   (already ISO: the model must copy it)
    ("{Mon} {D} '{yy}", None),              # Mar 3rd '21
    ("{Weekday} {d} {Month} {Y}", None),    # Wednesday 3 March 2021
    ("{Y}/{m}/{d}", None),                  # 2021/3/3
    ("{d} {Mon} {yy}", "lower"),            # 3 mar 21
    ("{Y}{mm}{dd}", None),                  # 20210303
)


def _ordinal(day):
    suffix = "th" if 11 <= day <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return f"{day}{suffix}"


def _date_fields(date):
    # English names from our own tables: strftime's %B and %A follow the process locale
    month, weekday = MONTHS[date.month - 1], WEEKDAYS[date.weekday()]
    return {"d": date.day, "dd": f"{date.day:02d}", "D": _ordinal(date.day), "m": date.month,
            "mm": f"{date.month:02d}", "Month": month, "Mon": month[:3], "Y": date.year,
            "yy": f"{date.year % 100:02d}", "Weekday": weekday, "Wdy": weekday[:3]}


def format_date(date, fmt_index, case=None):
    """`date` written in DATE_FORMATS[fmt_index]; `case` ("lower"/"upper") overrides the format's own."""
    template, own_case = DATE_FORMATS[fmt_index]
    text = template.format(**_date_fields(date))
    case = case or own_case
    return {"lower": text.lower(), "upper": text.upper(), None: text}[case]


def date_split(date):
    """"test" for about one date in five, "train" for the rest.

    The rule is a CRC-32 of the ISO string, so it depends on the date alone: a test date never
    appears in training in any format, while every year, month and day number still does.
    """
    return "test" if zlib.crc32(date.isoformat().encode()) % 5 == 0 else "train"


@lru_cache(maxsize=None)
def _dates_of(split):
    days = range(FIRST_DATE.toordinal(), LAST_DATE.toordinal() + 1)
    return np.array([o for o in days if date_split(datetime.date.fromordinal(o)) == split])


def date_pairs(n, seed, split):
    """n (human-written date, "YYYY-MM-DD") pairs, dates uniform over 1950-2049 within the split.

    Each pair draws a date, one of the 20 DATE_FORMATS uniformly, and in one case of ten forces
    the whole text to lower case, in one of ten to upper case. Inputs are at most 29 characters.
    Pairs are independent draws, so for large n the same input can occur twice.
    """
    _check_args(n, seed, split)
    rng = _rng(seed, split, 0)
    ordinals = _dates_of(split)
    pairs = []
    for o, fmt, r in zip(rng.choice(ordinals, size=n), rng.integers(len(DATE_FORMATS), size=n), rng.random(n)):
        date = datetime.date.fromordinal(int(o))
        case = "lower" if r < 0.1 else "upper" if r < 0.2 else None
        pairs.append((format_date(date, int(fmt), case), date.isoformat()))
    return pairs


# == brackets ==================================================================================
OPEN, CLOSE = "([", ")]"
MATCH = {")": "(", "]": "["}
# The split is by the number of bracket pairs k a string has (k = (length + 1) // 2): balanced
# strings have length 2k, and removing one bracket gives length 2k - 1, so each k owns two lengths
# and the two splits share no length. Test holds out k = 5, 8, 11 (lengths 9-10, 15-16, 21-22)
# INSIDE the training range 1..12 (lengths up to 24): every position a test string uses has been
# trained, which a model with learned position embeddings needs, and the held-out lengths still
# check that it learned the rule rather than the strings. Up to 24 tokens (25 with a CLS token)
# fits a max_len of 32.
BRACKET_PAIRS = {"test": (5, 8, 11), "train": (1, 2, 3, 4, 6, 7, 9, 10, 12)}


def is_balanced(text):
    """True if every bracket of "()[]" is closed by its own kind, properly nested."""
    stack = []
    for ch in text:
        if ch in OPEN:
            stack.append(ch)
        elif ch in CLOSE:
            if not stack or stack.pop() != MATCH[ch]:
                return False
        else:
            raise ValueError(f"not a bracket: {ch!r}")
    return not stack


@lru_cache(maxsize=None)
def _completions(steps, depth):
    """Ways to close `depth` open brackets in exactly `steps` more brackets (a ballot number)."""
    if depth < 0 or depth > steps:
        return 0
    if steps == 0:
        return 1
    return _completions(steps - 1, depth + 1) + _completions(steps - 1, depth - 1)


def _random_balanced(k, rng):
    """A balanced string of k pairs, uniform over all of them: at each step open a bracket with
    probability (completions after opening) / (completions from here), else close the innermost;
    each opened bracket is "(" or "[" with equal odds."""
    text, stack = [], []
    for step in range(2 * k):
        left = 2 * k - step - 1
        if rng.random() < _completions(left, len(stack) + 1) / _completions(left + 1, len(stack)):
            t = int(rng.integers(2))
            text.append(OPEN[t])
            stack.append(CLOSE[t])
        else:
            text.append(stack.pop())
    return "".join(text)


# Ways to spoil a balanced string. The first four keep the count of every character, so only the
# order is wrong ("([)]", ")(") -- hard negatives that counting cannot catch; the last three change
# one bracket -- simple negatives. Each returns None when it does not apply to the string.
def _swap_adjacent(s, rng):
    spots = [i for i in range(len(s) - 1) if s[i] != s[i + 1]]
    if not spots:
        return None
    i = spots[rng.integers(len(spots))]
    return s[:i] + s[i + 1] + s[i] + s[i + 2:]


def _swap_closers(s, rng):  # "([])" -> "([)]": a closer of each kind trade places
    a = [i for i, c in enumerate(s) if c == ")"]
    b = [i for i, c in enumerate(s) if c == "]"]
    if not a or not b:
        return None
    i, j = a[rng.integers(len(a))], b[rng.integers(len(b))]
    t = list(s)
    t[i], t[j] = t[j], t[i]
    return "".join(t)


def _swap_any(s, rng):
    i, j = rng.choice(len(s), size=2, replace=False)
    t = list(s)
    t[i], t[j] = t[j], t[i]
    return "".join(t)


def _shuffle(s, rng):
    return "".join(rng.permutation(list(s)))


def _flip(s, rng):  # one bracket turned round: "(" <-> ")"
    i = rng.integers(len(s))
    return s[:i] + {"(": ")", ")": "(", "[": "]", "]": "["}[s[i]] + s[i + 1:]


def _retype(s, rng):  # one bracket of the other kind: "(" <-> "["
    i = rng.integers(len(s))
    return s[:i] + {"(": "[", "[": "(", ")": "]", "]": ")"}[s[i]] + s[i + 1:]


def _remove(s, rng):
    i = rng.integers(len(s))
    return s[:i] + s[i + 1:]


CORRUPTIONS = (_swap_adjacent, _swap_closers, _swap_any, _shuffle, _flip, _retype, _remove)


def bracket_examples(n, seed, split):
    """n distinct (bracket string, label) examples, label 1 = balanced, shuffled.

    n // 2 are balanced (uniform over the balanced strings with k pairs, k uniform over the
    split's BRACKET_PAIRS); the rest are a balanced string spoiled by one of CORRUPTIONS, chosen
    uniformly (4 of the 7 keep every character count). A spoiled string that happens to be
    balanced is drawn again, and so is any string the split already holds.
    """
    _check_args(n, seed, split)
    rng = _rng(seed, split, 1)
    pairs = BRACKET_PAIRS[split]
    seen = set()
    examples = []
    for label, count in ((1, n // 2), (0, n - n // 2)):
        made = 0
        for _ in range(100 * count + 10_000):  # short lengths run out of new strings: retry
            if made == count:
                break
            text = _random_balanced(pairs[rng.integers(len(pairs))], rng)
            if label == 0:
                text = CORRUPTIONS[rng.integers(len(CORRUPTIONS))](text, rng)
                if text is None or is_balanced(text):
                    continue
            if text not in seen:
                seen.add(text)
                examples.append((text, label))
                made += 1
        if made < count:
            raise ValueError(f"could not make {count} distinct {'balanced' if label else 'unbalanced'} "
                             f"{split} strings; ask for fewer")
    order = rng.permutation(len(examples))  # mix the labels: datasets take their val split from the end
    return [examples[i] for i in order]
