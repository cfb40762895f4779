"""Examples in the user's own files: CSV, TSV and JSON Lines, one example a row.

    rows = read_table("reviews.tsv", [("--text-column", "text"), ("--label-column", "label")], "--data")
    rows -> [(2, ("a fine film", "positive")), (3, ("dull", "negative")), ...]   (line, fields)

The format follows the file's name: .jsonl/.ndjson/.json are JSON Lines (one object a line,
columns are its keys); .tsv/.tab are tab-separated; .csv is comma-separated; any other name is
JSON Lines if it starts with "{", else TSV if its first line holds a tab, else CSV. CSV and TSV
follow Python's csv module: a quoted field may hold the separator, quotes ("") and newlines.

A column is a name or a 0-based number. A name needs a header row: the file's first row, which
must hold every named column. Numbers alone mean that the file has no header, so its first row
is an example. Empty lines are skipped; an empty field is an error, and so is every other
problem, as one ValueError naming the file, the line and the column.

Files are read whole into memory, so one may hold at most MAX_TABLE_BYTES.
"""
import csv
import io
from pathlib import Path

from ..util.json_file import parse_json
from ..util.regular_file import read_regular_file

MAX_TABLE_BYTES = 256 * 1024 * 1024
JSON_LINES_SUFFIXES = {".jsonl", ".ndjson", ".json"}
SEPARATORS = {".tsv": "\t", ".tab": "\t", ".csv": ","}


def read_table(path, columns, what):
    """(line number, (field, ...)) for each example of the file `path`; `columns`: (option, name or
    number) pairs, the fields to take in that order; `what` names the file's option in errors."""
    data = read_regular_file(path, what, MAX_TABLE_BYTES)
    where = f"{what} {path}"
    text = decode_lines(data, where)
    kind = _format(path, text)
    rows = _json_rows(text, columns, where) if kind == "jsonl" else _delimited_rows(text, kind, columns, where)
    if not rows:
        raise ValueError(f"{where} holds no examples")
    return rows


def decode_lines(data, where):
    """The UTF-8 text of a file of lines; an error names the line of the first bad byte."""
    try:
        return data.decode("utf-8-sig")  # a byte-order mark, as some editors write, is not text
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise ValueError(f"{where} line {line} is not UTF-8 (byte 0x{data[e.start]:02x}): save the whole file as "
                         f"UTF-8 (a file mixing encodings cannot be read)") from None


def _format(path, text):
    suffix = Path(path).suffix.lower()
    if suffix in JSON_LINES_SUFFIXES:
        return "jsonl"
    if suffix in SEPARATORS:
        return SEPARATORS[suffix]
    if text.lstrip().startswith("{"):
        return "jsonl"
    return "\t" if "\t" in text.split("\n", 1)[0] else ","


def _json_rows(text, columns, where):
    numbered = [option for option, column in columns if _is_number(column)]
    if numbered:
        raise ValueError(f"{where} is JSON Lines, whose fields have names: give {numbered[0]} a field name, not a "
                         f"number")
    rows = []
    for line, raw in enumerate(text.split("\n"), 1):
        if not raw.strip():
            continue
        value = parse_json(raw, f"{where} line {line}")
        if not isinstance(value, dict):
            raise ValueError(f"{where} line {line} is not a JSON object ({{\"text\": ..., \"label\": ...}})")
        fields = []
        for option, column in columns:
            if column not in value:
                raise ValueError(f"{where} line {line} has no field {column!r} ({option}); it has "
                                 f"{', '.join(map(repr, value)) or 'none'}")
            field = value[column]
            if isinstance(field, int) and not isinstance(field, bool):
                field = str(field)  # a numeric label names its class as well as a string does
            if not isinstance(field, str):
                raise ValueError(f"{where} line {line}: field {column!r} ({option}) is a "
                                 f"{type(field).__name__}, not a string")
            fields.append(_non_empty(field, where, line, option, column))
        rows.append((line, tuple(fields)))
    return rows


def _delimited_rows(text, separator, columns, where):
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=separator, strict=True)  # a stray quote is an error
    indices, rows, header = None, [], None
    if all(_is_number(column) for _, column in columns):
        indices = [int(column) for _, column in columns]
    last = 0
    try:
        for fields in reader:
            line, last = last + 1, reader.line_num  # a quoted field's newlines make a row span lines
            if not any(f.strip() for f in fields):
                continue
            if indices is None:
                header, indices = fields, _header_indices(fields, columns, where, line)
                continue
            rows.append((line, tuple(_field(fields, i, where, line, columns[n], header)
                                     for n, i in enumerate(indices))))
    except csv.Error as e:
        raise ValueError(f"{where} line {last + 1}: {e}") from None
    return rows


def _header_indices(header, columns, where, line):
    names = [name.strip() for name in header]
    indices = []
    for option, column in columns:
        if _is_number(column):
            indices.append(int(column))
        elif column in names:
            indices.append(names.index(column))
        else:
            raise ValueError(f"{where} line {line}: no column named {column!r} ({option}) in the header row "
                             f"({', '.join(names)}); name its column with {option}, or give 0-based column "
                             f"numbers for a file without a header row")
    return indices


def _field(fields, index, where, line, column, header):
    option, name = column
    if index >= len(fields):
        raise ValueError(f"{where} line {line} has {len(fields)} field{'s' * (len(fields) != 1)}, so no column "
                         f"{name!r} ({option}); a missing separator?")
    return _non_empty(fields[index], where, line, option, header[index] if header else name)


def _non_empty(field, where, line, option, name):
    if not field.strip():
        raise ValueError(f"{where} line {line}: the {name!r} field ({option}) is empty")
    return field


def _is_number(column):
    return isinstance(column, int) or column.isdigit()
