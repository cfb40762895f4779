"""Train an encoder-decoder transformer to turn human-written dates into ISO 8601, then score it.

    python scripts/train_translator.py                      # the tuned recipe (a few minutes on 2 cores)
    python scripts/train_translator.py --max-iters 500      # quicker, less accurate

What `transformer-jit train-seq2seq --task dates` does, written out as a readable example. The run
directory works with `transformer-jit translate --out-dir out-dates "3rd of March 2021"` and with
scripts/show_attention.py.
"""
import argparse
import time

from transformer_jit import Seq2SeqConfig, Seq2SeqTransformer, TrainConfig, Trainer
from transformer_jit.data import seq2seq_task
from transformer_jit.models.translation import translate
from transformer_jit.train import load_model, recipe
from transformer_jit.train.evaluate import exact_match


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False)
    parser.add_argument("--max-iters", type=int, default=None, help="training steps (default: the recipe's)")
    parser.add_argument("--out-dir", default="out-dates")
    parser.add_argument("--beam-width", type=int, default=1, help="decoding for the score; 1 is greedy")
    args = parser.parse_args()
    r = recipe("dates")  # the tuned settings, shared with the command line

    # 1. Data: generated (human date, ISO date) pairs, e.g. ("Wed, 3 Mar 2021", "2021-03-03"), in 20
    #    formats. Test dates never occur in training, in any format.
    task = seq2seq_task("dates", r["data"])
    src_tok, tgt_tok = task.tokenizer.src, task.tokenizer.tgt  # characters + PAD, BOS, EOS
    print(f"{len(task.dataset):,} training pairs, {len(task.test):,} held out, e.g. {task.test[0]}")

    # 2. The model: encoder and decoder stacks, tied output projection, all in one float32 buffer.
    config = Seq2SeqConfig(src_vocab_size=src_tok.vocab_size, tgt_vocab_size=tgt_tok.vocab_size,
                           max_src_len=r["data"]["max_src_len"], max_tgt_len=r["data"]["max_tgt_len"], **r["model"])
    train_config = TrainConfig(**{**r["train"], "max_iters": args.max_iters or r["train"]["max_iters"],
                                  "out_dir": args.out_dir})
    model = Seq2SeqTransformer(config, seed=train_config.seed)
    print(f"{model.num_params():,} parameters")

    # 3. Training: teacher forcing, cross-entropy over the target tokens (padding ignored), AdamW.
    trainer = Trainer(model, task.dataset, train_config, task.tokenizer, kind="seq2seq",
                      info={"task": "dates", "data": r["data"]})
    start = time.perf_counter()
    trainer.fit()
    elapsed = time.perf_counter() - start
    print(f"training wall time: {elapsed / 60:.1f} min ({elapsed:.0f} s) for {trainer.step} steps")

    # 4. Scoring the best checkpoint: decode every held-out date, count exact matches.
    model, tokenizer, meta = load_model(f"{args.out_dir}/best.npz")
    score = exact_match(model, tokenizer.src, tokenizer.tgt, task.test, beam_width=args.beam_width, progress=True)
    print(f"held-out exact match: {score} (best checkpoint, step {meta['step']})")
    for source, target, got in score.mistakes:
        print(f"  wrong: {source!r} -> {got!r} (expected {target!r})")

    # 5. Using it.
    examples = ["3rd of March 2021", "Mar 3, 21", "wed 3 mar 2021", "12/25/1999", "the 1st of January, 2000"]
    for text, iso in zip(examples, translate(model, tokenizer.src, tokenizer.tgt, examples, beam_width=4)):
        print(f"{text} -> {iso}")


if __name__ == "__main__":
    main()
