"""Commands for the encoder models: train-seq2seq, train-classifier, translate, classify.

    transformer-jit train-seq2seq --task dates          human-written dates -> ISO 8601
    transformer-jit train-seq2seq --data pairs.tsv      the user's (source, target) pairs
    transformer-jit train-classifier --task brackets    balanced bracket strings or not
    transformer-jit train-classifier --data reviews.csv --val-data dev.csv   the user's (text, label) rows
    transformer-jit translate --out-dir out-dates "3rd of March 2021" "Mar 3, 21"
    transformer-jit classify --out-dir out-brackets --input texts.txt --output labels.txt

Training prints its configuration and progress like `transformer-jit train`, saves checkpoints,
config.json and metrics.csv in --out-dir, resumes with --resume, scores the validation split at
every evaluation, and ends by scoring the best checkpoint on the task's held-out test split (on
the validation split, for the user's files).
"""
from pathlib import Path

from ..data.file_tasks import classifier_files, file_digests, seq2seq_files
from ..data.table_files import MAX_TABLE_BYTES
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
from .common import (Options, RunSetup, add_checkpoint_args, add_optimisation_args, add_run_args, bpe_vocab_size,
                     flag_for, load_trained, non_negative_int, positive_int, train_command)
from .texts import add_input_output_args, input_texts, write_results

# Options of the user's files (a run with --data) and of the built-in tasks, each refused with the other.
FILE_OPTIONS = {"val_data", "val_fraction", "tokenizer", "vocab_size", "text_column", "label_column",
                "source_column", "target_column", "shared_vocab", "max_len", "max_src_len", "max_tgt_len"}
TASK_OPTIONS = {"task", "n_train", "n_test"}


def add_commands(commands, common):
    r = recipe("dates")
    s = commands.add_parser("train-seq2seq", help="train an encoder-decoder transformer on a built-in task",
                            parents=[common])
    options = Options(s)
    options.add(s, "--task", "dates", "dates: human-written dates in 20 formats -> ISO 8601 (YYYY-MM-DD)",
                choices=sorted(SEQ2SEQ_TASKS), fixed=True)
    add_run_args(s, "out-dates")
    _add_data_args(s, options, r["data"], "pairs")
    files = _add_file_args(s, options, "(source, target) pairs", ("--source-column", "source", "the source texts"),
                           ("--target-column", "target", "the target texts"))
    options.add(files, "--shared-vocab", False, "one tokenizer for source and target texts (a tokenizer DIR is "
                "always shared)", action="store_true", fixed=True)
    options.add(files, "--max-src-len", 0, "the longest source in tokens; 0: the longest in the files; a longer "
                "example is an error, not cut", type=non_negative_int, fixed=True)
    options.add(files, "--max-tgt-len", 0, "the longest target in tokens plus one (BOS/EOS); 0: the longest in "
                "the files; a longer example is an error, not cut", type=non_negative_int, fixed=True)
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
    files = _add_file_args(c, options, "(text, label) examples", ("--text-column", "text", "the texts"),
                           ("--label-column", "label", "the labels: any strings, kept by name"))
    options.add(files, "--max-len", 0, "the longest text in tokens; 0: the longest in the files; a longer "
                "example is an error, not cut", type=non_negative_int, fixed=True)
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
    t.add_argument("texts", nargs="*", help="texts to translate; none: --input, or one per line from stdin")
    add_checkpoint_args(t, "out-dates")
    add_input_output_args(t, "translations, one per line,")
    _add_decoding_args(t, beam_width=4)
    t.set_defaults(run=translate_cmd)

    k = commands.add_parser("classify", help="run a trained classifier on texts (arguments, or stdin lines)",
                            parents=[common])
    k.add_argument("texts", nargs="*", help="texts to classify; none: --input, or one per line from stdin")
    add_checkpoint_args(k, "out-brackets")
    add_input_output_args(k, "labels, one per line,")
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
    add(group, "--attn-window", 0, "local self-attention: each position attends to the positions within N of it "
        "(a decoder: the last N); 0: all of them", type=non_negative_int, fixed=True)
    add(group, "--post-ln", False, "layer norm after each residual, as in the paper (default: pre-LN)",
        action="store_true", fixed=True)
    add(group, "--activation", d.get("activation", "gelu"), choices=sorted(ACTIVATIONS), fixed=True)
    add(group, "--label-smoothing", d.get("label_smoothing", 0.0), type=float, fixed=True)
    add(group, "--no-bias", False, "no biases in linear and layer-norm layers", action="store_true", fixed=True)


def _architecture(args):
    return dict(n_head=args.n_head, n_embd=args.n_embd, n_inner=args.n_inner, dropout=args.dropout,
                attn_dropout=args.attn_dropout, attn_window=args.attn_window,
                positional=args.positional, norm_first=not args.post_ln, activation=args.activation,
                label_smoothing=args.label_smoothing, bias=not args.no_bias)


def _add_data_args(parser, options, d, what):
    data = parser.add_argument_group("data")
    options.add(data, "--n-train", d["n_train"], f"{what} generated for training and validation",
                type=positive_int, fixed=True)
    options.add(data, "--n-test", d["n_test"], f"held-out {what} scored at the end", type=positive_int, fixed=True)
    options.add(data, "--data-seed", d["seed"], "seed of the generated examples", type=non_negative_int, fixed=True)


def _add_file_args(parser, options, what, *columns):
    files = parser.add_argument_group(f"the user's files (instead of --task): {what}, one a row")
    options.add(files, "--data", "", "a CSV, TSV or JSON Lines file of training examples, at most "
                f"{MAX_TABLE_BYTES // 2**20} MiB (it is read into memory)")
    options.add(files, "--val-data", "", "a file of validation examples (default: hold out --val-fraction)")
    options.add(files, "--val-fraction", 0.1, "the share of --data held out for validation (for a classifier, "
                "of each label)", type=float, fixed=True)
    for flag, default, help in columns:
        options.add(files, flag, default, f"{help}: a column name in the header row, or a 0-based number for a "
                    "file without one (JSON Lines: a field name)", fixed=True)
    options.add(files, "--tokenizer", "char", "char: one token per character of the files; bpe: a byte-level BPE "
                "trained on --data; or a directory holding a BPE (vocab.json + merges.txt)", fixed=True)
    options.add(files, "--vocab-size", 4096, "the BPE vocabulary's size, <|endoftext|> included",
                type=bpe_vocab_size, fixed=True)
    return files


def _add_decoding_args(parser, beam_width):
    dec = parser.add_argument_group("decoding")
    dec.add_argument("--beam-width", type=int, default=beam_width, help=f"1: greedy decoding (default: {beam_width})")
    dec.add_argument("--alpha", type=float, default=0.6,
                     help="beam search length normalisation ((5+|Y|)/6)^alpha (default: 0.6)")


# -- training ------------------------------------------------------------------------------------
FROM_FILES = "files"  # info["task"] of a run on the user's files


def _train_on_task(args, kind, make_task, make_file_task, new_model_config, what, report):
    """Build (or, with --resume, rebuild) the task's data and the model, and train it. Returns
    (model with the best checkpoint's weights, the task, info, the best checkpoint's step), or None
    after Ctrl-C. report(task, model): the line logged after each evaluation."""
    built = {}

    def setup(args, meta):
        info = _run_info(args, meta)
        tokenizer = tokenizer_from_dict(meta["tokenizer"]) if meta is not None else None
        if info["task"] == FROM_FILES:
            task = make_file_task(info, tokenizer)
            spec = info["data"]
            val = spec["val_path"] or f"held out: --val-fraction {spec['val_fraction']}"
            described = (f"data: {spec['path']}, {len(task.dataset) - len(task.test):,} {what} for training, "
                         f"{len(task.test):,} for validation ({val})")
        else:
            task = make_task(info["task"], info["data"], tokenizer)
            described = (f"task: {info['task']}, {len(task.dataset):,} generated {what} for training and "
                         f"validation, {len(task.test):,} held out")
        if task.labels:
            info["labels"] = task.labels  # classify prints these names
        model_config = (new_model_config(task, info["data"]) if meta is None
                        else MODELS[kind].config_class.from_dict(meta["model_config"]))
        built["task"], built["info"] = task, info
        description = f"{described}; e.g. {task.test[0][0]!r} -> {task.test[0][1]!r}"
        val = task.dataset.examples("val")
        return RunSetup(model_config, task.dataset, task.tokenizer, description, info,
                        data_path=info["data"].get("path", ""), report=lambda model: report(task, val, model))

    trained = train_command(args, kind, setup)
    if trained is None:
        return None
    _, model = trained
    # Score what translate/classify use by default: the best checkpoint.
    arrays, meta = load_checkpoint(Path(args.out_dir) / "best.npz")
    model.load_state_dict(split_prefix(arrays, "model."))
    return model, built["task"], built["info"], meta["step"]


def _run_info(args, meta):
    """What the run trains on: a built-in task's settings, or the user's files (FROM_FILES); with
    --resume the saved run's, whose files must be the same (or have moved, given again by --data)."""
    given_files, given_task = sorted(args.given & FILE_OPTIONS), sorted(args.given & TASK_OPTIONS)
    if meta is not None:
        info = meta["info"]
        if info["task"] == FROM_FILES:
            if "data" in args.given:
                info["data"]["path"] = str(Path(args.data).resolve())
            if "val_data" in args.given:
                info["data"]["val_path"] = str(Path(args.val_data).resolve())
            changed = [option for option, digest in file_digests(info["data"]).items()
                       if info["data"]["sha256"].get(option) != digest]
            if changed:
                raise ValueError(f"{changed[0]} {info['data'][{'--data': 'path'}.get(changed[0], 'val_path')]} is "
                                 f"not the file the run in {args.out_dir} began with (its contents differ): "
                                 f"--resume trains on the same data")
        return info
    if not args.data:
        if given_files:
            raise ValueError(f"{flag_for(given_files[0])} is for the user's files: give --data FILE")
        return {"task": args.task, "data": {**recipe(args.task)["data"], "n_train": args.n_train,
                                            "n_test": args.n_test, "seed": args.data_seed}}
    if given_task:
        raise ValueError(f"--data trains on a file: {flag_for(given_task[0])} is for the built-in task")
    if args.val_data and "val_fraction" in args.given:
        raise ValueError("--val-data is the validation split: leave out --val-fraction")
    if not 0 < args.val_fraction < 1:
        raise ValueError(f"--val-fraction must be between 0 and 1, got {args.val_fraction}")
    tokenizer = args.tokenizer
    if tokenizer not in ("char", "bpe"):
        if not Path(tokenizer).is_dir():
            raise ValueError(f"--tokenizer {tokenizer}: not char, bpe, or a directory holding a BPE")
        tokenizer = str(Path(tokenizer).resolve())
    if "vocab_size" in args.given and tokenizer != "bpe":
        raise ValueError("--vocab-size is the size of a new BPE: give it with --tokenizer bpe")
    spec = {"path": str(Path(args.data).resolve()), "seed": args.data_seed, "tokenizer": tokenizer,
            "val_path": str(Path(args.val_data).resolve()) if args.val_data else "",
            "val_fraction": args.val_fraction, "vocab_size": args.vocab_size}
    for key in ("text_column", "label_column", "source_column", "target_column"):
        if hasattr(args, key):
            spec.setdefault("columns", []).append(getattr(args, key))
    for key in ("shared_vocab", "max_len", "max_src_len", "max_tgt_len"):
        if hasattr(args, key):
            spec[key] = getattr(args, key)
    spec["sha256"] = file_digests(spec)
    return {"task": FROM_FILES, "data": spec}


def train_seq2seq(args):
    check_beam_args(args.beam_width, args.alpha)  # before training, not after it

    def new_model_config(task, d):
        return Seq2SeqConfig(src_vocab_size=task.tokenizer.src.vocab_size, tgt_vocab_size=task.tokenizer.tgt.vocab_size,
                             max_src_len=d["max_src_len"] or task.dataset.max_src_len,
                             max_tgt_len=d["max_tgt_len"] or task.dataset.max_tgt_len,
                             n_encoder_layer=args.n_encoder_layer, n_decoder_layer=args.n_decoder_layer,
                             tie_weights=not args.untied, **_architecture(args))

    def report(task, val, model):
        return "val " + exact_match(model, task.tokenizer.src, task.tokenizer.tgt, val).summary("exact match")

    trained = _train_on_task(args, "seq2seq", seq2seq_task, lambda info, tok: seq2seq_files(info["data"], tok),
                             new_model_config, "pairs", report)
    if trained is None:
        return 130
    model, task, info, step = trained
    decoding = ("greedy decoding" if args.beam_width == 1
                else f"beam search (width {args.beam_width}, alpha {args.alpha})")
    score = exact_match(model, task.tokenizer.src, task.tokenizer.tgt, task.test, args.beam_width, args.alpha,
                        progress=True)
    print(f"held-out {score.summary('exact match')} on {_scored_split(info)}, {decoding}, best checkpoint "
          f"(step {step})")
    for source, target, got in score.mistakes:
        print(f"  wrong: {source!r} -> {got!r} (expected {target!r})")
    return 0


def train_classifier(args):
    def new_model_config(task, d):
        return ClassifierConfig(vocab_size=task.tokenizer.vocab_size,
                                max_len=d["max_len"] or task.dataset.max_len,
                                n_classes=len(task.labels), n_layer=args.n_layer, pooling=args.pooling,
                                position_shift=args.position_shift, cls_id=SeqTokenizer.BOS, **_architecture(args))

    def report(task, val, model):
        return "val " + accuracy(model, task.tokenizer, val).summary("accuracy")

    trained = _train_on_task(args, "classifier", classifier_task,
                             lambda info, tok: classifier_files(info["data"], tok, info.get("labels")),
                             new_model_config, "examples", report)
    if trained is None:
        return 130
    model, task, info, step = trained
    score = accuracy(model, task.tokenizer, task.test, progress=True, labels=task.labels)
    print(f"held-out {score.summary('accuracy')} on {_scored_split(info)}, best checkpoint (step {step})")
    if info["task"] != FROM_FILES:  # the built-in task holds out lengths: which ones fail
        print(score.lengths_line())
    for text, label, got in score.mistakes:
        print(f"  wrong: {text!r} -> {got} (expected {label})")
    return 0


def _scored_split(info):
    return "the validation split" if info["task"] == FROM_FILES else f"the {info['task']} test split"


# -- using a trained model -----------------------------------------------------------------------
def translate_cmd(args):
    check_beam_args(args.beam_width, args.alpha)
    texts = input_texts(args)
    model, tok = load_trained(args, "seq2seq")
    write_results(args, texts, translate(model, tok.src, tok.tgt, texts, args.beam_width, args.alpha))
    return 0


def classify_cmd(args):
    texts = input_texts(args)
    model, tok, meta = load_trained(args, "classifier", with_meta=True)
    # A run before label names (or one whose names do not fit the model) prints class numbers.
    names = (meta.get("info") or {}).get("labels")
    if not (isinstance(names, list) and len(names) == model.config.n_classes):
        names = None
    write_results(args, texts, [names[i] if names else int(i) for i in classify(model, tok, texts)])
    return 0
