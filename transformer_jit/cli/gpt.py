"""Commands for the GPT: train (on text, token files, or from GPT-2's weights), sample, export.

    transformer-jit train --data input.txt                          a new model, characters or BPE
    transformer-jit train --init-from gpt2 --data input.txt         fine-tune GPT-2's weights
    transformer-jit train --init-from gpt2 --block-size 256 ...     at a context of its first 256 positions
    transformer-jit sample --out-dir out | --pretrained gpt2        continue a prompt
    transformer-jit export --out-dir out --format hf|llmc DEST      a run's model for other tools (a ViT: hf)
"""
from pathlib import Path

from ..data.tokenizers import BPETokenizer
from ..data.text import TextDataset, default_corpus, load_text
from ..data.token_files import is_token_dir, open_token_dir
from ..data.tokenizers import CharTokenizer, encode_text, end_of_text, tokenizer_from_dict
from ..models import GPTConfig
from ..models.pretrained import load_pretrained, pretrained_config, pretrained_tokenizer
from ..nn.layers import POSITIONALS
from ..train.run_dir import LOCK, RUN_FILES
from ..util.atomic import check_replaceable, replaced_directory
from ..util.overlap import check_apart
from .common import (Options, RunSetup, add_checkpoint_args, add_optimisation_args, add_run_args, bpe_vocab_size,
                     load_trained, non_negative_int, train_command)
from .texts import add_input_output_args, check_output, read_lines, write_output

SHAPE = {"n_layer", "n_head", "n_embd", "block_size", "no_bias", "positional", "tokenizer", "vocab_size",
         "attn_window"}
HF_EXPORT_FILES = ("config.json", "model.safetensors", "vocab.json", "merges.txt", "preprocessor_config.json")
SAMPLE_WEIGHTS = ("float32", "bfloat16", "int8")  # float32: the model's own (generate's weights=None)


def add_commands(commands, common):
    train = commands.add_parser("train", help="train a GPT on text or token files, or fine-tune GPT-2",
                                parents=[common])
    options = Options(train)
    add_run_args(train, "out")
    data = train.add_argument_group("data")
    options.add(data, "--data", "", "a UTF-8 text file, or a directory of token files made by `prepare`; empty: "
                "the built-in corpus (Python's help topics)")
    options.add(data, "--tokenizer", "char", "for a text file: one token per character, or a byte-level BPE "
                "trained on it", choices=["char", "bpe"], fixed=True)
    options.add(data, "--vocab-size", 4096, "the BPE vocabulary's size, <|endoftext|> included", type=bpe_vocab_size,
                fixed=True)
    model = train.add_argument_group("model")
    options.add(model, "--init-from", "", "start from pretrained weights: a Hugging Face GPT-2 directory or an "
                "llm.c file, with the tokenizer stored beside them", fixed=True)
    options.add(model, "--n-layer", 4, type=int, fixed=True)
    options.add(model, "--n-head", 4, type=int, fixed=True)
    options.add(model, "--n-embd", 128, type=int, fixed=True)
    options.add(model, "--block-size", 64, "the context in tokens; with --init-from, the first N of the "
                "pretrained positions (default there: all of them)", type=int, fixed=True)
    options.add(model, "--dropout", 0.0, "on the embeddings and every residual branch", type=float, fixed=True)
    options.add(model, "--attn-dropout", 0.0, "on the attention probabilities (GPT-2's attn_pdrop)", type=float,
                fixed=True)
    options.add(model, "--no-bias", False, "no biases in linear and layer-norm layers", action="store_true",
                fixed=True)
    options.add(model, "--positional", "learned", choices=POSITIONALS, fixed=True)
    options.add(model, "--attn-window", 0, "local attention: each position attends to the last N positions "
                "only (itself included); 0: all of them", type=non_negative_int, fixed=True)
    opt = add_optimisation_args(train, options, {"max_iters": 1000})
    opt.add_argument("--sample-tokens", type=non_negative_int, default=300,
                     help="length of the sample printed at the end (default: 300)")
    train.set_defaults(run=train_gpt)

    sample = commands.add_parser("sample", help="generate text from a trained or a pretrained model",
                                 parents=[common])
    add_checkpoint_args(sample, "out")
    sample.add_argument("--pretrained", default=None, help="sample from pretrained weights instead of a run: a "
                        "Hugging Face GPT-2 directory or an llm.c file, with its tokenizer beside it")
    sample.add_argument("--prompt", action="append", default=None,
                        help="text to continue; repeat it for several, sampled together (default: a newline, or "
                             "the vocabulary's first character)")
    add_input_output_args(sample, "samples", inputs="prompts")
    sample.add_argument("--max-new-tokens", type=non_negative_int, default=500, help="(default: 500)")
    sample.add_argument("--temperature", type=float, default=0.8, help="0: always the most likely token (default: 0.8)")
    sample.add_argument("--top-k", type=int, default=None, help="sample from the k most likely tokens only")
    sample.add_argument("--top-p", type=float, default=None, help="sample from the most likely tokens whose "
                        "probabilities add up to p (nucleus sampling)")
    sample.add_argument("--seed", type=non_negative_int, default=None)
    sample.add_argument("--weights", choices=SAMPLE_WEIGHTS, default="float32",
                        help="the matrices each new token reads: the model's float32 ones, or copies rounded to "
                             "bfloat16 (half the bytes) or to int8 with a scale per 32 weights (a quarter): faster, "
                             "the logits slightly off (default: float32)")
    sample.set_defaults(run=sample_gpt)

    export = commands.add_parser("export", help="write a run's model in another project's format", parents=[common])
    add_checkpoint_args(export, "out")
    export.add_argument("--format", choices=["hf", "llmc"], required=True,
                        help="hf: a Hugging Face directory (config.json, model.safetensors, and vocab.json + "
                             "merges.txt for a BPE model, preprocessor_config.json for a vision transformer); "
                             "llmc: llm.c's model file (a GPT)")
    export.add_argument("dest", help="the directory (hf) or file (llmc) to write")
    export.add_argument("--overwrite", action="store_true", help="replace an export already at DEST (in one step, "
                        "once the new one is complete)")
    export.set_defaults(run=export_gpt)


def train_gpt(args):
    def setup(args, meta):
        path = data_path(args, meta)
        if meta is not None:
            model_config, tokenizer = GPTConfig.from_dict(meta["model_config"]), tokenizer_from_dict(meta["tokenizer"])
        elif args.init_from:
            fixed = args.given & (SHAPE - {"block_size"})  # a shorter context is the first positions of its own
            if fixed:
                raise ValueError(f"--init-from takes the model and its tokenizer from {args.init_from}: leave out "
                                 + ", ".join(sorted("--" + name.replace("_", "-") for name in fixed)))
            crop = args.block_size if "block_size" in args.given else None  # the first N positions
            model_config = pretrained_config(args.init_from, args.dropout, args.attn_dropout, crop)
            tokenizer = pretrained_tokenizer(args.init_from)
        else:
            model_config, tokenizer = None, None  # made from the data below
        block_size = args.block_size if model_config is None else model_config.block_size
        if path and is_token_dir(path):
            data, files_tokenizer, files = open_token_dir(path, block_size)
            if tokenizer is not None and files_tokenizer.to_dict() != tokenizer.to_dict():
                raise ValueError(f"{path} was made with another tokenizer than this model's: make it with "
                                 f"`prepare --tokenizer {args.init_from or 'DIR'}`")
            if meta is None and args.given & {"tokenizer", "vocab_size"}:
                raise ValueError(f"{path} holds token files, which carry their own tokenizer: leave out "
                                 f"--tokenizer and --vocab-size")
            tokenizer, what = files_tokenizer, f"{files['tokens']['train']:,} + {files['tokens']['val']:,} tokens"
        elif path and Path(path).is_dir():
            raise ValueError(f"--data {path} is a directory without a finished set of token files: give a UTF-8 "
                             f"text file, or a directory made by `transformer-jit prepare` (meta.json, train.bin, "
                             f"val.bin, tokenizer.json)")
        else:
            text = load_text(path) if path else default_corpus()
            tokenizer = tokenizer or new_tokenizer(args, text)
            data = TextDataset(encode_text(tokenizer, text), block_size)
            what = f"{len(text):,} characters"
        if model_config is None:
            model_config = GPTConfig(vocab_size=tokenizer.vocab_size, block_size=args.block_size,
                                     n_layer=args.n_layer, n_head=args.n_head, n_embd=args.n_embd,
                                     dropout=args.dropout, attn_dropout=args.attn_dropout, bias=not args.no_bias,
                                     positional=args.positional, attn_window=args.attn_window)
        build = None
        if meta is None and args.init_from:
            build = lambda seed: load_pretrained(args.init_from, args.dropout, seed, args.attn_dropout,  # noqa: E731
                                                 model_config.block_size)[0]
        description = f"data: {path or 'built-in corpus'} ({what}, {tokenizer_name(tokenizer)})"
        if build:
            description += f"\nmodel: starting from the pretrained weights in {args.init_from}, context " \
                           f"{model_config.block_size} tokens"
        return RunSetup(model_config, data, tokenizer, description, data_path=path, build_model=build)

    trained = train_command(args, "gpt", setup)
    if trained is None:
        return 130
    trainer, model = trained
    tokenizer = trainer.tokenizer
    out = model.generate(tokenizer.encode(default_prompt(tokenizer))[None, :], args.sample_tokens, temperature=0.8,
                         seed=trainer.config.seed)
    print(f"best validation loss {trainer.best_val_loss:.4f}; checkpoints in {args.out_dir}/")
    print("--- sample ---")
    print(tokenizer.decode(out[0]))
    return 0


def new_tokenizer(args, text):
    if args.tokenizer == "bpe":
        return BPETokenizer.train(text, args.vocab_size)
    return CharTokenizer.from_text(text)


def tokenizer_name(tokenizer):
    kind = "byte-level BPE" if isinstance(tokenizer, BPETokenizer) else "characters"
    return f"vocabulary {tokenizer.vocab_size:,} {kind}"


def data_path(args, meta):
    """The data to train on, as an absolute path so the run can resume from anywhere: --data, or
    with --resume the saved run's, which must still be where it was."""
    if meta is None or "data" in args.given:
        return str(Path(args.data).resolve()) if args.data else ""
    saved = meta["train_config"].get("data", "")
    if saved and not Path(saved).exists():
        raise FileNotFoundError(f"the run in {args.out_dir} trained on {saved}, which is not there any more: "
                                f"give its new place with --data")
    return saved


def default_prompt(tokenizer):
    """A newline if the vocabulary has one (a byte-level BPE has every byte), else its first
    character: every corpus has a prompt."""
    if isinstance(tokenizer, BPETokenizer):
        return "\n"
    return "\n" if "\n" in tokenizer.stoi else tokenizer.chars[0]


def sample_gpt(args):
    check_output(args)
    if args.prompt and args.input:
        raise ValueError("give prompts with --prompt or --input FILE, not both")
    prompts = read_lines(args.input) if args.input else args.prompt
    if args.input and not prompts:
        raise ValueError(f"--input {args.input} holds no prompts")
    if args.pretrained:
        model, tokenizer = load_pretrained(args.pretrained)
    else:
        model, tokenizer = load_trained(args, "gpt")
    prompts = prompts or [default_prompt(tokenizer)]
    for number, prompt in enumerate(prompts, 1):
        if not prompt:
            raise ValueError("--prompt must not be empty" if not args.input else
                             f"--input {args.input} line {number} is empty: every line is a prompt")
    ids = [encode_text(tokenizer, prompt) for prompt in prompts]
    stop = end_of_text(tokenizer)
    out = model.generate(ids, args.max_new_tokens, temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                         seed=args.seed, stop_token=stop, progress=True,
                         weights=None if args.weights == "float32" else args.weights)
    samples = [tokenizer.decode(row) for row in out]
    text = samples[0] + "\n" if len(samples) == 1 else "".join(
        f"--- sample {i} of {len(samples)} ---\n{sample}\n" for i, sample in enumerate(samples, 1))
    if args.output:
        write_output(args.output, text, f"{len(samples)} sample{'s' * (len(samples) > 1)}")
    else:
        print(text, end="")
    return 0


def export_gpt(args):
    dest = export_destination(args)
    model, tokenizer, meta = load_trained(args, ("gpt", "vit"), with_meta=True)
    if meta["kind"] == "vit":
        return _export_vit(args, model, dest)
    if args.format == "llmc":
        model.save_llmc(dest)  # atomically: a failure keeps what was there
        print(f"wrote {args.dest} (llm.c, float32)")
        return 0
    with replaced_directory(dest, HF_EXPORT_FILES, "a Hugging Face export") as staging:
        model.save_pretrained(staging)
        if isinstance(tokenizer, BPETokenizer):
            tokenizer.save_pretrained(staging)
    if isinstance(tokenizer, BPETokenizer):
        print(f"wrote {dest}: config.json, model.safetensors, vocab.json, merges.txt")
    else:
        print(f"wrote {dest}: config.json, model.safetensors (a character vocabulary has no Hugging Face "
              f"tokenizer files: its characters are in the run's checkpoint)")
    return 0


def _export_vit(args, model, dest):
    if args.format != "hf":
        raise ValueError(f"--format {args.format} holds GPT-2 models only: export a vision transformer with --format hf")
    with replaced_directory(dest, HF_EXPORT_FILES, "a Hugging Face export") as staging:
        model.save_pretrained(staging)
    print(f"wrote {dest}: config.json, model.safetensors, preprocessor_config.json (ViTForImageClassification)")
    return 0


def export_destination(args):
    """DEST, checked before anything is read or written: neither the run it exports nor one of the
    run's files, and an export already there replaced only with --overwrite. An llm.c file's
    symlink is followed, so that its target is what gets replaced."""
    out_dir, dest = Path(args.out_dir), Path(args.dest)
    check_apart("export destination", dest, [("the run directory", out_dir),
                                             *((f"the run's {name}", out_dir / name) for name in (*RUN_FILES, LOCK))])
    if args.format == "hf":
        check_replaceable(dest, HF_EXPORT_FILES, "a Hugging Face export")
        if dest.is_dir() and any(dest.iterdir()) and not args.overwrite:
            raise ValueError(f"{dest} already holds an export: replace it with --overwrite")
        return dest
    if dest.is_dir():
        raise ValueError(f"{dest} is a directory: --format llmc writes one file, such as {dest / 'model.bin'}")
    if dest.exists():
        if not dest.is_file():
            raise ValueError(f"{dest} is not a regular file")
        if not args.overwrite:
            raise ValueError(f"{dest} already exists: replace it with --overwrite")
    if not dest.resolve().parent.is_dir():
        raise ValueError(f"{dest}: its directory {dest.parent} does not exist")
    return dest.resolve()
