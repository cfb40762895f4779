"""Commands for the encoder models: train-seq2seq, train-classifier, translate, classify.

    transformer-jit train-seq2seq --task dates          human-written dates -> ISO 8601
    transformer-jit train-classifier --task brackets    balanced bracket strings or not
    transformer-jit translate --out-dir out-dates "3rd of March 2021" "Mar 3, 21"
    transformer-jit classify --out-dir out-brackets "([])" "([)]"

Training prints its configuration and progress like `transformer-jit train`, saves checkpoints,
config.json and metrics.csv in --out-dir, resumes with --resume, and ends by scoring the best
checkpoint on the task's held-out test split.
"""
import sys
from pathlib import Path

from ..data.task_data import CLASSIFIER_TASKS, SEQ2SEQ_TASKS, classifier_task, seq2seq_task
from ..data.tokenizers import SeqTokenizer, tokenizer_from_dict
from ..models import ClassifierConfig, Seq2SeqConfig
from ..models.classifier import classify
from ..models.configs import POOLINGS
from ..models.registry import MODELS
from ..models.translation import check_beam_args, translate
from ..nn.layers import ACTIVATIONS, POSITIONALS
from ..train.checkpoint import load_checkpoint, split_prefix
from ..train.evaluate import accuracy, exact_match
from ..train.recipes import recipe
from .common import (Options, RunSetup, add_checkpoint_args, add_optimisation_args, add_run_args, load_trained,
                     non_negative_int, positive_int, train_command)


def add_commands(commands, common):
    r = recipe("dates")
    s = commands.add_parser("train-seq2seq", help="train an encoder-decoder transformer on a built-in task",
                            parents=[common])
    options = Options(s)
    options.add(s, "--task", "dates", "dates: human-written dates in 20 formats -> ISO 8601 (YYYY-MM-DD)",
                choices=sorted(SEQ2SEQ_TASKS), fixed=True)
    add_run_args(s, "out-dates")
    _add_data_args(s, options, r["data"], "pairs")
    model = s.add_argument_group("model")
    options.add(model, "--n-encoder-layer", r["model"]["n_encoder_layer"], type=int, fixed=True)
    options.add(model, "--n-decoder-layer", r["model"]["n_decoder_layer"], type=int, fixed=True)
    _add_architecture_args(model, options, r["model"])
    options.add(model, "--untied", False, "an output projection of its own instead of the target embedding matrix",
                action="store_true", fixed=True)
    add_optimisation_args(s, options, r["train"])
    _add_decoding_args(s, beam_width=1)
    s.set_defaults(run=train_seq2seq)

    r = recipe("brackets")
    c = commands.add_parser("train-classifier", help="train a transformer encoder classifier on a built-in task",
                            parents=[common])
    options = Options(c)
    options.add(c, "--task", "brackets", "brackets: is a string of ()[] balanced? (held-out lengths)",
                choices=sorted(CLASSIFIER_TASKS), fixed=True)
    add_run_args(c, "out-brackets")
    _add_data_args(c, options, r["data"], "examples")
    model = c.add_argument_group("model")
    options.add(model, "--n-layer", r["model"]["n_layer"], type=int, fixed=True)
    _add_architecture_args(model, options, r["model"])
    options.add(model, "--pooling", r["model"]["pooling"], "mean over non-padding positions, or the state of a "
                "classification token", choices=POOLINGS, fixed=True)
    options.add(model, "--position-shift", r["model"].get("position_shift", 0), "training batches number their "
                "positions from a random start in [0, N]", type=int, fixed=True)
    add_optimisation_args(c, options, r["train"])
    c.set_defaults(run=train_classifier)

    t = commands.add_parser("translate", help="run a trained seq2seq model on texts (arguments, or stdin lines)",
                            parents=[common])
    t.add_argument("texts", nargs="*", help="texts to translate; none: read one per line from stdin")
    add_checkpoint_args(t, "out-dates")
    _add_decoding_args(t, beam_width=4)
    t.set_defaults(run=translate_cmd)

    k = commands.add_parser("classify", help="run a trained classifier on texts (arguments, or stdin lines)",
                            parents=[common])
    k.add_argument("texts", nargs="*", help="texts to classify; none: read one per line from stdin")
    add_checkpoint_args(k, "out-brackets")
    k.set_defaults(run=classify_cmd)


def _add_architecture_args(group, options, d):
    add = options.add
    add(group, "--n-head", d["n_head"], type=int, fixed=True)
    add(group, "--n-embd", d["n_embd"], "d_model", type=int, fixed=True)
    add(group, "--n-inner", d.get("n_inner", 0), "feed-forward width; 0: 4 * n_embd", type=int, fixed=True)
    add(group, "--dropout", d.get("dropout", 0.0), "on the embeddings and every residual branch", type=float,
        fixed=True)
    add(group, "--attn-dropout", d.get("attn_dropout", 0.0), "on the attention probabilities", type=float,
        fixed=True)
    add(group, "--positional", d.get("positional", "sinusoidal"), choices=POSITIONALS, fixed=True)
    add(group, "--post-ln", False, "layer norm after each residual, as in the paper (default: pre-LN)",
        action="store_true", fixed=True)
    add(group, "--activation", d.get("activation", "gelu"), choices=sorted(ACTIVATIONS), fixed=True)
    add(group, "--label-smoothing", d.get("label_smoothing", 0.0), type=float, fixed=True)
    add(group, "--no-bias", False, "no biases in linear and layer-norm layers", action="store_true", fixed=True)


def _architecture(args):
    return dict(n_head=args.n_head, n_embd=args.n_embd, n_inner=args.n_inner, dropout=args.dropout,
                attn_dropout=args.attn_dropout,
                positional=args.positional, norm_first=not args.post_ln, activation=args.activation,
                label_smoothing=args.label_smoothing, bias=not args.no_bias)


def _add_data_args(parser, options, d, what):
    data = parser.add_argument_group("data")
    options.add(data, "--n-train", d["n_train"], f"{what} generated for training and validation",
                type=positive_int, fixed=True)
    options.add(data, "--n-test", d["n_test"], f"held-out {what} scored at the end", type=positive_int, fixed=True)
    options.add(data, "--data-seed", d["seed"], "seed of the generated examples", type=non_negative_int, fixed=True)


def _add_decoding_args(parser, beam_width):
    dec = parser.add_argument_group("decoding")
    dec.add_argument("--beam-width", type=int, default=beam_width, help=f"1: greedy decoding (default: {beam_width})")
    dec.add_argument("--alpha", type=float, default=0.6,
                     help="beam search length normalisation ((5+|Y|)/6)^alpha (default: 0.6)")


# -- training ------------------------------------------------------------------------------------
def _train_on_task(args, kind, make_task, new_model_config, what):
    """Build (or, with --resume, rebuild) the task's data and the model, and train it. Returns
    (model with the best checkpoint's weights, the task, info, the best checkpoint's step), or None
    after Ctrl-C."""
    built = {}

    def setup(args, meta):
        if meta is None:
            info = {"task": args.task, "data": {**recipe(args.task)["data"], "n_train": args.n_train,
                                                "n_test": args.n_test, "seed": args.data_seed}}
            task = make_task(args.task, info["data"])
            model_config = new_model_config(task, info["data"])
        else:
            info = meta["info"]
            task = make_task(info["task"], info["data"], tokenizer_from_dict(meta["tokenizer"]))
            model_config = MODELS[kind].config_class.from_dict(meta["model_config"])
        built["task"], built["info"] = task, info
        description = (f"task: {info['task']}, {len(task.dataset):,} generated {what} for training and "
                       f"validation, {len(task.test):,} held out; e.g. {task.test[0][0]!r} -> {task.test[0][1]!r}")
        return RunSetup(model_config, task.dataset, task.tokenizer, description, info)

    trained = train_command(args, kind, setup)
    if trained is None:
        return None
    _, model = trained
    # Score what translate/classify use by default: the best checkpoint.
    arrays, meta = load_checkpoint(Path(args.out_dir) / "best.npz")
    model.load_state_dict(split_prefix(arrays, "model."))
    return model, built["task"], built["info"], meta["step"]


def train_seq2seq(args):
    check_beam_args(args.beam_width, args.alpha)  # before training, not after it

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
    check_beam_args(args.beam_width, args.alpha)
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
