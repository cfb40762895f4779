"""Command line (also `python -m transformer_jit`):

    transformer-jit prepare                                a text file to token files (characters or BPE)
    transformer-jit train | sample                         a GPT on text (characters or BPE) or token files
    transformer-jit eval                                   a GPT's loss, perplexity and bits per byte on a text
    transformer-jit export                                 a run's GPT or ViT for Hugging Face, a GPT for llm.c
    transformer-jit serve                                  a GPT behind an OpenAI-compatible HTTP API
    transformer-jit train-seq2seq | translate              an encoder-decoder on a built-in task (dates)
    transformer-jit train-classifier | classify            an encoder classifier on a built-in task (brackets)
    transformer-jit train-vit | classify-image             a vision transformer on images (marks, digits, yours)
    transformer-jit plot                                   the loss curves of one or several runs (PNG)

Every error is one line on stderr: exit status 2 for a bad input or option, 1 for a failure while
running (training diverged, a checkpoint could not be written), 130 when interrupted. --debug (or
TRANSFORMER_JIT_DEBUG=1) shows the traceback instead. Under mpiexec (data-parallel training) an
error line starts with the rank that met it, and ends every rank. The first command on a new
install says when Numba compiles the kernels for this CPU, and how long it took (once: later
runs load them from its cache).
"""
import argparse
import os
import signal
import sys
from contextlib import nullcontext

from .. import __version__
from ..train import distributed
from ..train.distributed import DistributedError
from ..train.trainer import CheckpointError, TrainingDiverged
from ..util.config import ConfigError
from ..util.extras import MissingExtra
from . import encoders, evaluate, gpt, plot, prepare, serve, vision
from .common import flag_for
from .compile_notice import CompileNotice


class Parser(argparse.ArgumentParser):
    """argparse, with a usage error on one line (the usage itself is one --help away), and no
    abbreviated flags: a mistyped flag must not silently become another one that shares its prefix."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, allow_abbrev=False, **kwargs)

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser():
    parser = Parser(prog="transformer-jit", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"transformer-jit {__version__}")
    common = Parser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show the traceback of an error")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    prepare.add_commands(commands, common)   # prepare
    gpt.add_commands(commands, common)       # train, sample, export
    evaluate.add_commands(commands, common)  # eval
    encoders.add_commands(commands, common)  # train-seq2seq, train-classifier, translate, classify
    vision.add_commands(commands, common)    # train-vit, classify-image
    plot.add_commands(commands, common)      # plot
    serve.add_commands(commands, common)     # serve
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    if hasattr(args, "options"):
        args.options.resolve(args)
    debug = args.debug or os.environ.get("TRANSFORMER_JIT_DEBUG", "") not in ("", "0")
    previous = signal.signal(signal.SIGTERM, _interrupt)  # a polite kill stops like Ctrl-C: training saves first
    try:
        # under mpiexec every rank would say it: the notice is for a single process
        with CompileNotice() if distributed.launched_size() <= 1 else nullcontext():
            return args.run(args)
    except KeyboardInterrupt:
        fail(130, "interrupted")
        return 130
    except Exception as e:
        if debug:
            raise
        status, message = explain(e, args.command)
        fail(status, f"error: {message}")
        return status
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def fail(status, message):
    """Report an error that ends this process: one line on stderr, or, under MPI, prefixed with the
    rank, after which every rank is aborted with `status` (this call does not return then)."""
    world = distributed.current()
    if world is None:
        print(message, file=sys.stderr)
    else:
        world.abort(status, message)


def explain(error, command):
    """(exit status, one line) for an error that reached the command line."""
    if isinstance(error, ConfigError):
        return 2, error.naming(flag_for(error.field))
    if isinstance(error, (ValueError, FileNotFoundError)):
        return 2, _one_line(error)
    if isinstance(error, (TrainingDiverged, CheckpointError, DistributedError, MissingExtra)):
        return 1, _one_line(error)
    if isinstance(error, MemoryError):
        return 1, "out of memory: make the model, the batch or the text smaller"
    if isinstance(error, OSError):
        return 1, f"{error.strerror or error}" + (f": {error.filename}" if error.filename else "")
    return 1, (f"unexpected {type(error).__name__} in {command}: {_one_line(error)} "
               f"(run again with --debug to see where)")


def _one_line(error):
    text = " ".join(str(error).split())
    return text if len(text) <= 500 else text[:500] + "..."
