"""Command line (also `python -m transformer_jit`):

    transformer-jit train | sample                         a character-level GPT
    transformer-jit train-seq2seq | translate              an encoder-decoder on a built-in task (dates)
    transformer-jit train-classifier | classify            an encoder classifier on a built-in task (brackets)
"""
import argparse
import sys

from . import encoders, gpt


def build_parser():
    parser = argparse.ArgumentParser(prog="transformer-jit", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    gpt.add_commands(commands)       # train, sample
    encoders.add_commands(commands)  # train-seq2seq, train-classifier, translate, classify
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
