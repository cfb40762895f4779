"""Train a vision transformer on a built-in image task: the generated marks, or scikit-learn's digits.

    python scripts/train_vit.py                          # marks: two marks in a row, a column or a diagonal
    python scripts/train_vit.py --dataset digits         # 8 x 8 handwritten digits (pip install -e '.[images]')
    python scripts/train_vit.py --max-iters 500          # quicker, less accurate

What `transformer-jit train-vit --dataset NAME` does, written out as a readable example; the run
works with `transformer-jit classify-image --out-dir out-vit --data FILE` and
`transformer-jit export --out-dir out-vit --format hf DIR`.
"""
import argparse
import time

from transformer_jit.data.image_tasks import IMAGE_DATASETS, image_task
from transformer_jit.models.configs import IMAGE_MEAN, IMAGE_STD, ViTConfig
from transformer_jit.models.vit import VisionTransformer
from transformer_jit.train import TrainConfig, Trainer, load_model
from transformer_jit.train.evaluate import image_accuracy
from transformer_jit.train.recipes import vit_recipe


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False)
    parser.add_argument("--dataset", choices=IMAGE_DATASETS, default="marks")
    parser.add_argument("--max-iters", type=int, default=None, help="training steps (default: the recipe's)")
    parser.add_argument("--out-dir", default="out-vit")
    args = parser.parse_args()
    r = vit_recipe(args.dataset)  # the tuned settings, shared with the command line

    # 1. Data: uint8 images and their classes; a stratified validation split; pixels normalised as
    #    Hugging Face's ViTImageProcessor does, (v / 255 - 0.5) / 0.5.
    spec = {**r["data"], "dataset": args.dataset, "seed": 0, "image_size": 0, "channels": 0, "path": "",
            "val_path": "", "n_train": r["data"].get("n_train", 0), "n_test": r["data"].get("n_test", 0)}
    task = image_task(spec, IMAGE_MEAN, IMAGE_STD)
    train = task.dataset.examples("train")
    H, W, C = train.shape
    print(f"{len(train):,} training images of {H} x {W} x {C}, {len(task.test):,} scored at the end, "
          f"classes {task.names}")

    # 2. The model: patches -> linear projection, a class token, positions, the encoder, a linear head.
    config = ViTConfig(image_size=H, num_channels=C, n_classes=len(task.names), label_names=task.names,
                       **r["model"])
    train_config = TrainConfig(**{**r["train"], "max_iters": args.max_iters or r["train"]["max_iters"],
                                  "out_dir": args.out_dir})
    model = VisionTransformer(config, seed=train_config.seed)
    print(f"{model.num_params():,} parameters, {(H // config.patch_size) * (W // config.patch_size)} patches of "
          f"{config.patch_size} x {config.patch_size}")

    # 3. Training: cross-entropy over the classes, AdamW; no tokenizer, pixels in.
    trainer = Trainer(model, task.dataset, train_config, kind="vit", info={"task": args.dataset, "data": spec,
                                                                           "labels": task.names})
    start = time.perf_counter()
    trainer.fit()
    elapsed = time.perf_counter() - start
    print(f"training wall time: {elapsed / 60:.1f} min ({elapsed:.0f} s) for {trainer.step} steps")

    # 4. Scoring the best checkpoint.
    model, _, meta = load_model(f"{args.out_dir}/best.npz")
    score = image_accuracy(model, task.test, progress=True)
    print(f"held-out {score.summary('accuracy')} (best checkpoint, step {meta['step']})")
    for source, label, got in score.mistakes:
        print(f"  wrong: {source} -> {got} (expected {label})")


if __name__ == "__main__":
    main()
