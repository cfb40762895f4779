"""Commands for the encoder models: train-seq2seq, train-classifier, translate, classify.

    transformer-jit train-seq2seq --task dates          human-written dates -> ISO 8601
    transformer-jit train-classifier --task brackets    balanced bracket strings or not
    transformer-jit translate --out-dir out-dates "3rd of March 2021" "Mar 3, 21"
    transformer-jit classify --out-dir out-brackets "([])" "([)]"

Training prints its configuration and progress like `transformer-jit train`, saves checkpoints,
config.json and metrics.csv in --out-dir, resumes with --resume, and ends by scoring the best
checkpoint on the task's held-out test split.
"""
import argparse
import sys
from pathlib import Path

from ..data.task_data import CLASSIFIER_TASKS, SEQ2SEQ_TASKS, classifier_task, seq2seq_task
from ..data.tokenizers import SeqTokenizer, tokenizer_from_dict
from ..models import ClassifierConfig, Seq2SeqConfig
from ..train.checkpoint import MODEL_KINDS, load_checkpoint, split_prefix
from ..train.evaluate import accuracy, classify, exact_match, translate
from ..train.recipes import recipe
from .common import add_optimisation_args, load_trained, resume_meta, run_training, train_config_from_args


def _add_architecture_args(group, d):
    group.add_argument("--n-head", type=int, default=d["n_head"])
    group.add_argument("--n-embd", type=int, default=d["n_embd"], help="d_model")
    group.add_argument("--n-inner", type=int, default=d.get("n_inner", 0), help="feed-forward width; 0: 4 * n_embd")
    group.add_argument("--dropout", type=float, default=d.get("dropout", 0.0))
    group.add_argument("--positional", choices=["sinusoidal", "learned"], default=d.get("positional", "sinusoidal"))
    group.add_argument("--post-ln", action="store_true", help="layer norm after each residual, as in the paper "
                                                              "(default: pre-LN)")
    group.add_argument("--activation", choices=["gelu", "relu"], default=d.get("activation", "gelu"))
    group.add_argument("--label-smoothing", type=float, default=d.get("label_smoothing", 0.0))
    group.add_argument("--no-bias", action="store_true", help="no biases in linear and layer-norm layers")


def _architecture(args):
    return dict(n_head=args.n_head, n_embd=args.n_embd, n_inner=args.n_inner, dropout=args.dropout,
                positional=args.positional, norm_first=not args.post_ln, activation=args.activation,
                label_smoothing=args.label_smoothing, bias=not args.no_bias)


def _add_data_args(parser, d, what):
    data = parser.add_argument_group("data")
    data.add_argument("--n-train", type=int, default=d["n_train"], help=f"{what} generated for training and validation")
    data.add_argument("--n-test", type=int, default=d["n_test"], help=f"held-out {what} scored at the end")
    data.add_argument("--data-seed", type=int, default=d["seed"], help="seed of the generated examples")


def add_commands(commands):
    fmt = argparse.ArgumentDefaultsHelpFormatter
    r = recipe("dates")
    s = commands.add_parser("train-seq2seq", help="train an encoder-decoder transformer on a built-in task",
                            formatter_class=fmt)
    s.add_argument("--task", choices=sorted(SEQ2SEQ_TASKS), default="dates",
                   help="dates: human-written dates in 20 formats -> ISO 8601 (YYYY-MM-DD)")
    s.add_argument("--out-dir", default="out-dates", help="where checkpoints, config.json and metrics.csv go")
    s.add_argument("--resume", action="store_true", help="continue the run saved in --out-dir")
    _add_data_args(s, r["data"], "pairs")
    model = s.add_argument_group("model")
    model.add_argument("--n-encoder-layer", type=int, default=r["model"]["n_encoder_layer"])
    model.add_argument("--n-decoder-layer", type=int, default=r["model"]["n_decoder_layer"])
    _add_architecture_args(model, r["model"])
    model.add_argument("--untied", action="store_true", help="an output projection of its own instead of the "
                                                             "target embedding matrix")
    add_optimisation_args(s, r["train"])
    _add_decoding_args(s, beam_width=1)

    r = recipe("brackets")
    c = commands.add_parser("train-classifier", help="train a transformer encoder classifier on a built-in task",
                            formatter_class=fmt)
    c.add_argument("--task", choices=sorted(CLASSIFIER_TASKS), default="brackets",
                   help="brackets: is a string of ()[] balanced? (held-out lengths)")
    c.add_argument("--out-dir", default="out-brackets", help="where checkpoints, config.json and metrics.csv go")
    c.add_argument("--resume", action="store_true", help="continue the run saved in --out-dir")
    _add_data_args(c, r["data"], "examples")
    model = c.add_argument_group("model")
    model.add_argument("--n-layer", type=int, default=r["model"]["n_layer"])
    _add_architecture_args(model, r["model"])
    model.add_argument("--pooling", choices=["mean", "cls"], default=r["model"]["pooling"],
                       help="mean over non-padding positions, or the state of a classification token")
    model.add_argument("--position-shift", type=int, default=r["model"].get("position_shift", 0),
                       help="training batches number their positions from a random start in [0, N]")
    add_optimisation_args(c, r["train"])

    t = commands.add_parser("translate", help="run a trained seq2seq model on texts (arguments, or stdin lines)",
                            formatter_class=fmt)
    t.add_argument("texts", nargs="*", help="texts to translate; none: read one per line from stdin")
    t.add_argument("--out-dir", default="out-dates")
    t.add_argument("--checkpoint", choices=["best", "last"], default="best")
    _add_decoding_args(t, beam_width=4)

    k = commands.add_parser("classify", help="run a trained classifier on texts (arguments, or stdin lines)",
                            formatter_class=fmt)
    k.add_argument("texts", nargs="*", help="texts to classify; none: read one per line from stdin")
    k.add_argument("--out-dir", default="out-brackets")
    k.add_argument("--checkpoint", choices=["best", "last"], default="best")
    for parser, run in ((s, train_seq2seq), (c, train_classifier), (t, translate_cmd), (k, classify_cmd)):
        parser.set_defaults(run=run)


def _add_decoding_args(parser, beam_width):
    dec = parser.add_argument_group("decoding")
    dec.add_argument("--beam-width", type=int, default=beam_width, help="1: greedy decoding")
    dec.add_argument("--alpha", type=float, default=0.6, help="beam search length normalisation ((5+|Y|)/6)^alpha")


# -- training ------------------------------------------------------------------------------------
def _train_on_task(args, kind, make_task, new_model_config, what):
    """Build (or, with --resume, rebuild) the task's data and the model, and train it. Returns
    (model with the best checkpoint's weights, the task, info, the best checkpoint's step), or None
    after Ctrl-C."""
    out_dir = Path(args.out_dir)
    model_class, config_class = MODEL_KINDS[kind]
    if args.resume:
        meta, config = resume_meta(out_dir, args.max_iters)
        info = meta["info"]
        model_config = config_class.from_dict(meta["model_config"])
        task = make_task(info["task"], info["data"], tokenizer_from_dict(meta["tokenizer"]))
    else:
        info = {"task": args.task, "data": {**recipe(args.task)["data"], "n_train": args.n_train,
                                            "n_test": args.n_test, "seed": args.data_seed}}
        task = make_task(args.task, info["data"])
        model_config = new_model_config(task, info["data"])
        config = train_config_from_args(args, out_dir)
    model = model_class(model_config, seed=config.seed)
    description = (f"task: {info['task']}, {len(task.dataset):,} generated {what} for training and validation, "
                   f"{len(task.test):,} held out; e.g. {task.test[0][0]!r} -> {task.test[0][1]!r}")
    if run_training(args, model, task.dataset, config, task.tokenizer, kind, description, info) is None:
        return None
    # Score what translate/classify use by default: the best checkpoint.
    arrays, meta = load_checkpoint(out_dir / "best.npz")
    model.load_state_dict(split_prefix(arrays, "model."))
    return model, task, info, meta["step"]


def train_seq2seq(args):
    def new_model_config(task, d):
        return Seq2SeqConfig(src_vocab_size=task.tokenizer.src.vocab_size, tgt_vocab_size=task.tokenizer.tgt.vocab_size,
                             max_src_len=d["max_src_len"], max_tgt_len=d["max_tgt_len"],
                             n_encoder_layer=args.n_encoder_layer, n_decoder_layer=args.n_decoder_layer,
                             tie_weights=not args.untied, **_architecture(args))

    trained = _train_on_task(args, "seq2seq", seq2seq_task, new_model_config, "pairs")
    if trained is None:
        return 130
    model, task, info, step = trained
    decoding = ("greedy decoding" if args.beam_width == 1
                else f"beam search (width {args.beam_width}, alpha {args.alpha})")
    score = exact_match(model, task.tokenizer.src, task.tokenizer.tgt, task.test, args.beam_width, args.alpha,
                        progress=True)
    print(f"held-out exact match: {score} on the {info['task']} test split, {decoding}, best checkpoint (step {step})")
    for source, target, got in score.mistakes:
        print(f"  wrong: {source!r} -> {got!r} (expected {target!r})")
    return 0


def train_classifier(args):
    def new_model_config(task, d):
        return ClassifierConfig(vocab_size=task.tokenizer.vocab_size, max_len=d["max_len"],
                                n_classes=task.dataset.num_classes, n_layer=args.n_layer, pooling=args.pooling,
                                position_shift=args.position_shift, cls_id=SeqTokenizer.BOS, **_architecture(args))

    trained = _train_on_task(args, "classifier", classifier_task, new_model_config, "examples")
    if trained is None:
        return 130
    model, task, info, step = trained
    score = accuracy(model, task.tokenizer, task.test, progress=True)
    print(f"held-out accuracy: {score} on the {info['task']} test split, best checkpoint (step {step})")
    print(score.lengths_line())
    for text, label, got in score.mistakes:
        print(f"  wrong: {text!r} -> {got} (expected {label})")
    return 0


# -- using a trained model -----------------------------------------------------------------------
def _texts(args):
    texts = args.texts or [line.rstrip("\n") for line in sys.stdin]
    if not texts:
        raise ValueError("no input: pass texts as arguments or one per line on stdin")
    return texts


def translate_cmd(args):
    model, tok = load_trained(args, "seq2seq")
    texts = _texts(args)
    for text, out in zip(texts, translate(model, tok.src, tok.tgt, texts, args.beam_width, args.alpha)):
        print(f"{text} -> {out}")
    return 0


def classify_cmd(args):
    model, tok = load_trained(args, "classifier")
    texts = _texts(args)
    for text, label in zip(texts, classify(model, tok, texts)):
        print(f"{text} -> {label}")
    return 0
