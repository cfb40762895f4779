"""Train a character-level GPT through the library API, then sample from it.

    python scripts/train_char_lm.py                                   # built-in corpus
    python scripts/train_char_lm.py ../shared/data/tinyshakespeare.txt --max-iters 2000

This is what `transformer-jit train` does, written out as a readable example.
"""
import argparse

from transformer_jit import GPT, CharTokenizer, GPTConfig, TextDataset, TrainConfig, Trainer, default_corpus, load_text


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False)
    parser.add_argument("data", nargs="?", help="UTF-8 text file (default: the built-in corpus)")
    parser.add_argument("--max-iters", type=int, default=1000)
    parser.add_argument("--out-dir", default="out-char-lm")
    args = parser.parse_args()

    # 1. Text -> token ids. One token per character; the tokenizer is saved with every checkpoint.
    text = load_text(args.data) if args.data else default_corpus()
    tokenizer = CharTokenizer.from_text(text)
    data = TextDataset(tokenizer.encode(text), block_size=64)  # 90% train, 10% validation

    # 2. The model: nanoGPT's "baby" configuration, all parameters in one float32 buffer.
    config = GPTConfig(vocab_size=tokenizer.vocab_size, block_size=64, n_layer=4, n_head=4, n_embd=128)
    model = GPT(config, seed=1337)
    print(f"{model.num_params():,} parameters, vocabulary of {tokenizer.vocab_size} characters")

    # 3. Training: AdamW, warm-up then cosine decay, gradient clipping, evaluation and checkpoints.
    train_config = TrainConfig(batch_size=12, max_iters=args.max_iters, lr=1e-3, min_lr=1e-4, warmup_iters=100,
                               out_dir=args.out_dir)
    Trainer(model, data, train_config, tokenizer).fit()

    # 4. Sampling: feed a prompt, sample one character at a time.
    prompt = tokenizer.encode("\n" if "\n" in tokenizer.stoi else text[0])[None, :]
    print(tokenizer.decode(model.generate(prompt, max_new_tokens=300, temperature=0.8, seed=0)[0]))


if __name__ == "__main__":
    main()
