"""The reader of the user's example files (data/table_files.py) and what is built from them
(data/file_tasks.py): every format, and every problem as one line naming the file and line."""
import random

import pytest

from transformer_jit.data.file_tasks import classifier_files, label_names, stratified_split
from transformer_jit.data.table_files import read_table
from transformer_jit.train.evaluate import chrf, macro_f1

TEXT_LABEL = [("--text-column", "text"), ("--label-column", "label")]


def write(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


def test_tsv_with_a_header_takes_the_named_columns_in_any_order(tmp_path):
    path = write(tmp_path, "a.tsv", "id\tlabel\ttext\n1\tpos\tgood film\n2\tneg\tbad film\n")
    assert read_table(path, TEXT_LABEL, "--data") == [(2, ("good film", "pos")), (3, ("bad film", "neg"))]


def test_numbered_columns_mean_no_header(tmp_path):
    path = write(tmp_path, "a.csv", "good film,pos\nbad film,neg\n")
    columns = [("--text-column", "0"), ("--label-column", "1")]
    assert read_table(path, columns, "--data") == [(1, ("good film", "pos")), (2, ("bad film", "neg"))]


def test_quoted_fields_hold_tabs_newlines_and_quotes_and_lines_count_physically(tmp_path):
    path = write(tmp_path, "a.csv", 'text,label\n"a\tb\nc ""d""",x\n\n"e, f",y\n')
    assert read_table(path, TEXT_LABEL, "--data") == [(2, ('a\tb\nc "d"', "x")), (5, ("e, f", "y"))]


def test_empty_lines_are_skipped(tmp_path):
    path = write(tmp_path, "a.tsv", "\ntext\tlabel\n\n\nhi\tx\n\n")
    assert read_table(path, TEXT_LABEL, "--data") == [(5, ("hi", "x"))]


def test_json_lines_with_string_and_integer_labels(tmp_path):
    path = write(tmp_path, "a.jsonl", '{"text": "hi", "label": "x"}\n\n{"text": "yo", "label": 3}\n')
    assert read_table(path, TEXT_LABEL, "--data") == [(1, ("hi", "x")), (3, ("yo", "3"))]


def test_an_unknown_suffix_is_sniffed(tmp_path):
    assert read_table(write(tmp_path, "a.txt", "text\tlabel\na,b\tc\n"), TEXT_LABEL, "--data") == [(2, ("a,b", "c"))]
    assert read_table(write(tmp_path, "b.txt", '{"text": "a", "label": "c"}\n'), TEXT_LABEL, "--data") == [
        (1, ("a", "c"))]


@pytest.mark.parametrize("name, content, message", [
    ("a.tsv", "text\tsentiment\nhi\tx\n", "--data {path} line 1: no column named 'label' (--label-column) in the "
                                          "header row (text, sentiment)"),
    ("a.tsv", "text\tlabel\nhi\tx\nyo\n", "--data {path} line 3 has 1 field, so no column 'label' (--label-column)"),
    ("a.tsv", "text\tlabel\n\tx\n", "--data {path} line 2: the 'text' field (--text-column) is empty"),
    ("a.tsv", "text\tlabel\n", "--data {path} holds no examples"),
    ("a.tsv", b"text\tlabel\ncaf\xc3\xa9\tx\ncaf\xe9\ty\n", "--data {path} line 3 is not UTF-8 (byte 0xe9)"),
    ("a.jsonl", '{"text": "hi"}\n', "--data {path} line 1 has no field 'label' (--label-column); it has 'text'"),
    ("a.jsonl", '{"text": "hi", "label": null}\n', "field 'label' (--label-column) is a NoneType"),
    ("a.jsonl", '["hi", "x"]\n', "--data {path} line 1 is not a JSON object"),
    ("a.jsonl", '{"text": "hi",\n', "--data {path} line 1 is not valid JSON"),
    ("a.csv", 'text,label\n"open,x\n', "--data {path} line 2: unexpected end of data"),
])
def test_every_problem_is_one_line_naming_the_file_and_line(tmp_path, name, content, message):
    path = write(tmp_path, name, content)
    with pytest.raises(ValueError) as e:
        read_table(path, TEXT_LABEL, "--data")
    assert message.format(path=path) in str(e.value)
    assert "\n" not in str(e.value)


def test_json_lines_need_field_names(tmp_path):
    path = write(tmp_path, "a.jsonl", '{"text": "hi", "label": "x"}\n')
    with pytest.raises(ValueError, match="give --label-column a field name"):
        read_table(path, [("--text-column", "text"), ("--label-column", "1")], "--data")


def spec(path, val_path="", **changes):
    return {"path": str(path), "val_path": str(val_path) if val_path else "", "val_fraction": 0.25, "seed": 0,
            "columns": ["text", "label"], "tokenizer": "char", "vocab_size": 300, "max_len": 0, **changes}


def test_labels_are_named_and_ordered_numerically_when_numbers(tmp_path):
    assert label_names(["10", "2", "0"]) == ["0", "2", "10"]
    assert label_names(["pos", "neg", "10"]) == ["10", "neg", "pos"]
    data = classifier_files(spec(write(tmp_path, "a.tsv", "text\tlabel\n" + "good\tpos\nbad\tneg\n" * 4)))
    assert data.labels == ["neg", "pos"]
    assert sorted(data.test) == [("bad", 0), ("good", 1)]  # one of each label held out


def test_the_split_is_stratified(tmp_path):
    rows = [(f"line {i}", (str(i), "a" if i < 80 else "b")) for i in range(100)]
    train, val = stratified_split(rows, 0.1, 0, "f")
    assert [label for _, (_, label) in val].count("a") == 8 and [label for _, (_, label) in val].count("b") == 2
    assert len(train) == 90 and not {r[0] for r in train} & {r[0] for r in val}
    rare = rows[:10] + rows[-2:]  # 10 "a", 2 "b": a tenth of "b" rounds to none, yet one is held out
    _, val = stratified_split(rare, 0.1, 0, "f")
    assert sorted(label for _, (_, label) in val) == ["a", "b"]


def test_an_unknown_label_in_validation_is_refused_by_its_line(tmp_path):
    train = write(tmp_path, "a.tsv", "text\tlabel\ngood\tpos\nbad\tneg\n")
    val = write(tmp_path, "v.tsv", "text\tlabel\nok\tpos\nmeh\tneutral\n")
    with pytest.raises(ValueError, match=f"--val-data {val} line 3: label 'neutral' does not occur in the training "
                                         f"data, whose labels are neg, pos"):
        classifier_files(spec(train, val))


def test_a_one_row_file_is_refused_without_val_data_and_trains_with_it(tmp_path):
    one = write(tmp_path, "one.tsv", "text\tlabel\ngood\tpos\n")
    with pytest.raises(ValueError, match="holds 1 example: holding out --val-fraction 0.25 needs at least 2"):
        classifier_files(spec(one))
    data = classifier_files(spec(one, write(tmp_path, "v.tsv", "text\tlabel\ngood\tpos\n")))
    assert data.test == [("good", 0)]


def test_a_text_longer_than_max_len_is_refused_by_its_line(tmp_path):
    path = write(tmp_path, "a.tsv", "text\tlabel\ngood\tpos\nbad\tneg\nterrible\tneg\n")
    with pytest.raises(ValueError, match=f"--data {path} line 4: the text has 8 tokens, more than --max-len 5"):
        classifier_files(spec(path, max_len=5))


def test_macro_f1_averages_the_classes_f1():
    # class 0: P 1, R 1/2 -> F1 2/3; class 1: P 2/3, R 1 -> F1 4/5
    assert macro_f1([0, 0, 1, 1], [0, 1, 1, 1]) == pytest.approx((2 / 3 + 4 / 5) / 2)
    assert macro_f1([0, 1], [0, 1]) == 1.0


def test_chrf_of_a_perfect_and_a_disjoint_corpus():
    assert chrf(["2021-03-03"], ["2021-03-03"]) == pytest.approx(100)
    assert chrf(["abc"], ["xyz"]) == 0.0


@pytest.mark.interop
def test_chrf_equals_sacrebleu():
    sacrebleu = pytest.importorskip("sacrebleu")
    rng = random.Random(0)
    for _ in range(200):
        hyps, refs = ([("".join(rng.choice("ab c") for _ in range(rng.randint(0, 12)))) for _ in range(5)]
                      for _ in range(2))
        assert chrf(hyps, refs) == pytest.approx(sacrebleu.corpus_chrf(hyps, [refs]).score, abs=1e-9)
