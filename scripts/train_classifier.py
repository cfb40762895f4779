"""Train a transformer encoder to tell balanced bracket strings ("([])[]") from unbalanced ones.

    python scripts/train_classifier.py                      # the tuned recipe (a few minutes on 2 cores)
    python scripts/train_classifier.py --max-iters 1000     # quicker, less accurate

Two bracket types, hard negatives that keep every bracket count ("([)]", ")("), and test strings
whose lengths training never shows. What `transformer-jit train-classifier --task brackets` does,
written out as a readable example; the run works with `transformer-jit classify --out-dir out-brackets`.
"""
import argparse
import time

from transformer_jit import ClassifierConfig, EncoderClassifier, TrainConfig, Trainer
from transformer_jit.data import SeqTokenizer, classifier_task
from transformer_jit.models.classifier import classify
from transformer_jit.train import load_model, recipe
from transformer_jit.train.evaluate import accuracy


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False)
    parser.add_argument("--max-iters", type=int, default=None, help="training steps (default: the recipe's)")
    parser.add_argument("--out-dir", default="out-brackets")
    args = parser.parse_args()
    r = recipe("brackets")  # the tuned settings, shared with the command line

    # 1. Data: generated (string, label) examples, half balanced, half spoiled.
    task = classifier_task("brackets", r["data"])
    print(f"{len(task.dataset):,} training examples, {len(task.test):,} held out, e.g. {task.test[:3]}")

    # 2. The model: a bidirectional encoder (padding masked), pooling, a linear layer, softmax.
    config = ClassifierConfig(vocab_size=task.tokenizer.vocab_size, max_len=r["data"]["max_len"],
                              n_classes=task.dataset.num_classes, cls_id=SeqTokenizer.BOS, **r["model"])
    train_config = TrainConfig(**{**r["train"], "max_iters": args.max_iters or r["train"]["max_iters"],
                                  "out_dir": args.out_dir})
    model = EncoderClassifier(config, seed=train_config.seed)
    print(f"{model.num_params():,} parameters, pooling: {config.pooling}")

    # 3. Training: cross-entropy over the two classes, AdamW.
    trainer = Trainer(model, task.dataset, train_config, task.tokenizer, kind="classifier",
                      info={"task": "brackets", "data": r["data"]})
    start = time.perf_counter()
    trainer.fit()
    elapsed = time.perf_counter() - start
    print(f"training wall time: {elapsed / 60:.1f} min ({elapsed:.0f} s) for {trainer.step} steps")

    # 4. Scoring the best checkpoint on the held-out lengths.
    model, tokenizer, meta = load_model(f"{args.out_dir}/best.npz")
    score = accuracy(model, tokenizer, task.test, progress=True)
    print(f"held-out accuracy: {score} (best checkpoint, step {meta['step']})")
    print(score.lengths_line())
    for text, label, got in score.mistakes:
        print(f"  wrong: {text!r} -> {got} (expected {label})")

    # 5. Using it.
    examples = ["([])[]", "([)]", "(((", "[()()]([])", "][", "(([[]]))[[(())]]()"]
    for text, label in zip(examples, classify(model, tokenizer, examples)):
        print(f"{text} -> {'balanced' if label == 1 else 'unbalanced'}")


if __name__ == "__main__":
    main()
