"""Texts in and results out for the commands that run a trained model (classify, translate,
sample): inputs from the arguments, from --input (one per line) or from stdin; results printed,
or written whole to --output once all are done."""
import sys
from pathlib import Path

from ..data.table_files import MAX_TABLE_BYTES, decode_lines
from ..util.atomic import atomic_write
from ..util.overlap import check_apart
from ..util.regular_file import read_regular_file


def add_input_output_args(parser, what, inputs="texts"):
    parser.add_argument("--input", default=None, help=f"a UTF-8 file of {inputs}, one per line")
    parser.add_argument("--output", default=None, help=f"write the {what} to this file (replaced whole, once all are "
                        "done) instead of printing them")


def check_output(args):
    """Refuse an --output that is a directory or would overwrite an input (--input, the run
    directory or a pretrained directory, and any file in them), before anything is read or
    computed."""
    if not args.output:
        return
    inputs = [("--input", args.input or "")]
    for option in ("out_dir", "pretrained"):
        directory = getattr(args, option, None)
        if directory:
            flag = "--" + option.replace("_", "-")
            inputs.append((flag, directory))
            if Path(directory).is_dir():
                inputs += [(f"{flag}'s", path) for path in sorted(Path(directory).iterdir()) if path.is_file()]
    check_apart("--output", args.output, inputs)
    if Path(args.output).is_dir():
        raise ValueError(f"--output {args.output} is a directory: give a file")


def read_lines(path):
    """The lines of the UTF-8 file given as --input."""
    return decode_lines(read_regular_file(path, "--input", MAX_TABLE_BYTES), f"--input {path}").splitlines()


def input_texts(args):
    """The texts to run the model on: the arguments, --input's lines, or stdin's lines."""
    check_output(args)
    if args.texts and args.input:
        raise ValueError("give texts as arguments or --input FILE, not both")
    texts = read_lines(args.input) if args.input else args.texts or [line.rstrip("\n") for line in sys.stdin]
    if not texts:
        raise ValueError(f"no input: pass texts as arguments, --input FILE{' (empty)' if args.input else ''}, or "
                         f"one per line on stdin")
    return texts


def write_results(args, texts, outputs):
    """`text -> output` lines on stdout, or the outputs alone, one a line, in --output."""
    if not args.output:
        for text, out in zip(texts, outputs):
            print(f"{text} -> {out}")
        return
    write_output(args.output, "".join(f"{out}\n" for out in outputs), f"{len(outputs):,} lines")


def write_output(path, text, what):
    with atomic_write(path) as f:
        f.write(text.encode("utf-8"))
    print(f"wrote {what} to {path}")
