"""GPT-2's published weights and tokenizer, from a Hugging Face directory or an llm.c file.

    model, tokenizer = load_pretrained("gpt2")            # config.json, model.safetensors, vocab.json, merges.txt
    model, tokenizer = load_pretrained("gpt2_124M.bin")   # llm.c's file; the tokenizer from files beside it
    model, tokenizer = load_pretrained("gpt2", block_size=256)   # its first 256 positions only
"""
from pathlib import Path

from ..data.tokenizers import BPETokenizer
from ..formats import HuggingFaceGPT2, LlmcGPT2
from .configs import GPTConfig
from .gpt import GPT, cropped_sizes

TOKENIZER_FILES = ("vocab.json", "merges.txt", "encoder.json", "vocab.bpe")
RUN_CHECKPOINTS = ("best.npz", "last.npz")
ZIP_MAGIC = b"PK\x03\x04"  # a .npz checkpoint is a zip archive


def check_pretrained_path(path):
    """Refuse, with what to do instead, a path that holds no pretrained GPT-2: one that does not
    exist (a hub name: nothing is downloaded), a training run's directory or checkpoint."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"pretrained model not found: {path} is neither a directory nor a file, and nothing is downloaded: "
            f"fetch config.json, model.safetensors, vocab.json and merges.txt of a GPT-2 (for a hub name, from "
            f"huggingface.co/NAME) into a directory and give that, or give an llm.c .bin file")
    if path.is_dir() and any((path / name).exists() for name in RUN_CHECKPOINTS) \
            and not (path / "model.safetensors").exists():
        raise ValueError(f"{path} is a training run's directory, not a pretrained model: give it with --out-dir")
    if is_checkpoint_file(path):
        raise ValueError(f"{path} is a training run's checkpoint, not a pretrained model: give its directory "
                         f"({path.parent}) with --out-dir")


def is_checkpoint_file(path):
    """Whether `path` is a training run's checkpoint (.npz) rather than pretrained weights."""
    path = Path(path)
    return path.is_file() and (path.suffix == ".npz" or _starts_with(path, ZIP_MAGIC))


def _starts_with(path, prefix):
    try:
        with open(path, "rb") as f:
            return f.read(len(prefix)) == prefix
    except OSError:
        return False


def pretrained_config(path, dropout=0.0, attn_dropout=0.0, block_size=None):
    """The GPTConfig of the weights at `path` (read from their header, not the weights), with the
    dropout rates to fine-tune with and the context cropped to block_size (None: all positions)."""
    path = Path(path)
    check_pretrained_path(path)
    reader = HuggingFaceGPT2(path) if path.is_dir() else LlmcGPT2(path)
    return GPTConfig(**cropped_sizes(reader.sizes, block_size, path), dropout=dropout, attn_dropout=attn_dropout)


def pretrained_tokenizer(path):
    """The BPE tokenizer stored with the weights: in the directory, or beside the llm.c file."""
    directory = Path(path) if Path(path).is_dir() else Path(path).parent
    if not any((directory / name).exists() for name in TOKENIZER_FILES):
        raise FileNotFoundError(f"no tokenizer beside the weights in {directory}: it needs vocab.json + merges.txt "
                                f"(or encoder.json + vocab.bpe) from the same model")
    return BPETokenizer.from_pretrained(directory)


def load_pretrained(path, dropout=0.0, seed=0, attn_dropout=0.0, block_size=None):
    """(GPT with the weights at `path`, its tokenizer). The weights' header and the tokenizer are
    checked, against each other too, before memory for the model is asked for. block_size: the
    first positions to keep (None: all)."""
    path = Path(path)
    config = pretrained_config(path, dropout, attn_dropout, block_size)
    tokenizer = pretrained_tokenizer(path)
    if config.vocab_size != tokenizer.vocab_size:
        raise ValueError(f"{path}: the weights have {config.vocab_size} tokens but the tokenizer "
                         f"{tokenizer.vocab_size}")
    load = GPT.from_pretrained if path.is_dir() else GPT.from_llmc
    model = load(path, dropout=dropout, attn_dropout=attn_dropout, block_size=block_size)
    model.seed = seed
    return model, tokenizer
