"""Commands for the vision transformer: train-vit, classify-image.

    transformer-jit train-vit --dataset marks                  two marks: in a row, in a column, or diagonal
    transformer-jit train-vit --dataset digits                 scikit-learn's 8 x 8 digits (the images extra)
    transformer-jit train-vit --data photos/ --image-size 32   the user's images: class subfolders or an .npz
    transformer-jit train-vit --init-from vit-dir --data photos/   fine-tune a Hugging Face ViT
    transformer-jit classify-image --out-dir out-vit --data more.npz   accuracy, or a class per image

Training prints its configuration and progress like `transformer-jit train`, saves checkpoints,
config.json and metrics.csv in --out-dir, resumes with --resume, scores the validation split at
every evaluation, and ends by scoring the best checkpoint: on the marks task's held-out test
split, else on the validation split. `transformer-jit export --format hf` writes the model in
Hugging Face's ViTForImageClassification layout.
"""
from dataclasses import replace
from pathlib import Path

from ..data.image_files import read_images
from ..data.image_tasks import IMAGE_DATASETS, data_digests, image_shape, image_task, relabel
from ..data.images import LabelledImages
from ..models.configs import GELUS, IMAGE_MEAN, IMAGE_STD, ViTConfig
from ..models.image_classification import classify_images
from ..models.pretrained import RUN_CHECKPOINTS
from ..models.vit import VisionTransformer
from ..train.checkpoint import load_checkpoint, split_prefix
from ..train.evaluate import image_accuracy
from ..train.recipes import vit_recipe
from .common import (Options, RunSetup, add_checkpoint_args, add_optimisation_args, add_run_args, flag_for,
                     load_trained, non_negative_int, positive_int, train_command)

FROM_FILES = "files"  # info["task"] of a run on the user's images
# Options of the user's files and of the generated task, each refused with the other.
FILE_OPTIONS = {"val_data"}
MARKS_OPTIONS = {"n_train", "n_test"}
# What --init-from fixes: the pretrained model's shape.
SHAPE_OPTIONS = {"image_size", "channels", "patch_size", "n_layer", "n_head", "n_embd", "n_inner", "gelu"}


def add_commands(commands, common):
    r = vit_recipe("files")
    v = commands.add_parser("train-vit", help="train a vision transformer on images", parents=[common])
    options = Options(v)
    add_run_args(v, "out-vit")
    data = v.add_argument_group("data (--dataset, or the user's images with --data)")
    options.add(data, "--dataset", "marks", "marks: generated, two marks in a row, a column or a diagonal (no "
                "download); digits: scikit-learn's 8 x 8 handwritten digits (the images extra)",
                choices=IMAGE_DATASETS, fixed=True)
    options.add(data, "--data", "", "an .npz ('images' (N, H, W[, C]) uint8, 'labels' (N,), optional "
                "'label_names') or a directory of class subfolders of PNG/JPEG files")
    options.add(data, "--val-data", "", "the validation images, in the same form (default: hold out "
                "--val-fraction of each class)")
    options.add(data, "--val-fraction", r["data"]["val_fraction"], "the share of each class held out for "
                "validation (stratified)", type=float, fixed=True)
    options.add(data, "--n-train", vit_recipe("marks")["data"]["n_train"], "marks: images generated for training "
                "and validation", type=positive_int, fixed=True)
    options.add(data, "--n-test", vit_recipe("marks")["data"]["n_test"], "marks: held-out images scored at the end",
                type=positive_int, fixed=True)
    options.add(data, "--data-seed", 0, "seed of the split (and of the generated images)", type=non_negative_int,
                fixed=True)
    options.add(data, "--augment", r["data"]["augment"], "shift each training image by up to N pixels each way, "
                "at random (0: no augmentation)", type=non_negative_int, fixed=True)
    model = v.add_argument_group("model (the defaults of --dataset marks and digits are their recipes')")
    options.add(model, "--init-from", "", "fine-tune a Hugging Face ViTForImageClassification directory "
                "(config.json, model.safetensors); the images are resized to its size", fixed=True)
    options.add(model, "--image-size", 0, "resize the images to N x N; 0: their own size", type=non_negative_int,
                fixed=True)
    options.add(model, "--channels", 0, "1 (gray) or 3 (RGB); 0: the images' own", type=int, choices=[0, 1, 3],
                fixed=True)
    for name, help in (("patch_size", "the side of a square patch, in pixels"), ("n_layer", ""), ("n_head", ""),
                       ("n_embd", "d_model"), ("n_inner", "feed-forward width; 0: 4 * n_embd")):
        options.add(model, flag_for(name), r["model"][name], help, type=int, fixed=True)
    options.add(model, "--dropout", r["model"]["dropout"], "on the patch embeddings and every residual branch",
                type=float, fixed=True)
    options.add(model, "--attn-dropout", 0.0, "on the attention probabilities", type=float, fixed=True)
    options.add(model, "--gelu", "erf", "the exact GELU (as ViT checkpoints) or its tanh approximation",
                choices=sorted(GELUS), fixed=True)
    add_optimisation_args(v, options, r["train"])
    v.set_defaults(run=train_vit)

    k = commands.add_parser("classify-image", help="run a trained vision transformer on images", parents=[common])
    add_checkpoint_args(k, "out-vit")
    k.add_argument("--data", required=True, help="an .npz of 'images' (with 'labels': the accuracy is printed), a "
                   "directory of class subfolders (the accuracy) or of image files, or one PNG/JPEG file")
    k.set_defaults(run=classify_image)


# -- training ------------------------------------------------------------------------------------
def train_vit(args):
    built = {}

    def setup(args, meta):
        info = _run_info(args, meta)
        spec = info["data"]
        pretrained = _pretrained(args.init_from) if args.init_from and meta is None else None
        if pretrained is not None:  # the images are made to fit the pretrained model
            spec["image_size"], spec["channels"] = pretrained.config.image_size, pretrained.config.num_channels
        known = ViTConfig.from_dict(meta["model_config"]) if meta is not None else getattr(pretrained, "config", None)
        task = image_task(spec, *(known.normalisation if known else (IMAGE_MEAN, IMAGE_STD)))
        H, W, C = task.dataset.examples("train").shape
        spec["image_size"], spec["channels"] = spec["image_size"] or (H if H == W else [H, W]), C
        info["labels"] = task.names
        if meta is not None:
            config = known
        elif pretrained is not None:
            config = replace(pretrained.config, n_classes=len(task.names), label_names=task.names,
                             dropout=args.dropout, attn_dropout=args.attn_dropout)
        else:
            config = ViTConfig(image_size=spec["image_size"], patch_size=args.patch_size, num_channels=C,
                               n_classes=len(task.names), n_layer=args.n_layer, n_head=args.n_head,
                               n_embd=args.n_embd, n_inner=args.n_inner, dropout=args.dropout,
                               attn_dropout=args.attn_dropout, gelu=args.gelu, label_names=task.names)
        built["task"] = task
        train, val = task.dataset.examples("train"), task.dataset.examples("val")
        where = spec["path"] or f"--dataset {spec['dataset']}"
        held = f", {len(task.test):,} held out for the end" if task.test is not val else ""
        description = (f"data: {where}, {len(train):,} images for training, {len(val):,} for validation{held}; "
                       f"{H} x {W} x {C}, {len(task.names)} classes: {', '.join(task.names[:10])}"
                       f"{', ...' if len(task.names) > 10 else ''}")
        return RunSetup(config, task.dataset, None, description, info, data_path=spec["path"],
                        build_model=(lambda seed: _fine_tuned(pretrained, config, seed)) if pretrained else None,
                        report=lambda model: "val " + image_accuracy(model, val).summary("accuracy"))

    trained = train_command(args, "vit", setup)
    if trained is None:
        return 130
    _, model = trained
    arrays, meta = load_checkpoint(Path(args.out_dir) / "best.npz")  # what classify-image uses by default
    model.load_state_dict(split_prefix(arrays, "model."))
    task = built["task"]
    score = image_accuracy(model, task.test, progress=True)
    split = "the held-out test split" if task.test is not task.dataset.examples("val") else "the validation split"
    print(f"held-out {score.summary('accuracy')} on {split}, best checkpoint (step {meta['step']})")
    for source, label, got in score.mistakes:
        print(f"  wrong: {source} -> {got} (expected {label})")
    return 0


def _run_info(args, meta):
    """What the run trains on ({"task", "data"}); with --resume the saved run's, whose files must be
    the same (or have moved, given again by --data / --val-data)."""
    if meta is not None:
        info = meta["info"]
        spec = info["data"]
        for option, key in (("data", "path"), ("val_data", "val_path")):
            if option in args.given:
                spec[key] = str(Path(getattr(args, option)).resolve())
        changed = [option for option, digest in data_digests(spec).items() if spec["sha256"].get(option) != digest]
        if changed:
            raise ValueError(f"{changed[0]} is not the data the run in {args.out_dir} began with (its contents "
                             f"differ): --resume trains on the same data")
        return info
    given = args.given
    built_in = sorted(given & (MARKS_OPTIONS | {"dataset"}))
    if args.data and built_in:
        raise ValueError(f"--data trains on the user's images: {flag_for(built_in[0])} is for the built-in datasets")
    if not args.data and given & FILE_OPTIONS:
        raise ValueError("--val-data is for the user's images: give --data PATH")
    if not args.data and args.dataset == "digits" and given & MARKS_OPTIONS:
        raise ValueError(f"{flag_for(sorted(given & MARKS_OPTIONS)[0])} is for --dataset marks (digits has its 1,797 "
                         f"images)")
    if args.val_data and "val_fraction" in given:
        raise ValueError("--val-data is the validation split: leave out --val-fraction")
    if not 0 < args.val_fraction < 1:
        raise ValueError(f"--val-fraction must be between 0 and 1, got {args.val_fraction}")
    for option, path in (("--data", args.data), ("--val-data", args.val_data)):
        if path and Path(path).is_dir() and Path(path).resolve() in Path(args.out_dir).resolve().parents:
            raise ValueError(f"--out-dir {args.out_dir} is inside {option} {path}: its files would be read as a class "
                             f"of images; put the run elsewhere")
    if args.init_from and given & SHAPE_OPTIONS:
        raise ValueError(f"--init-from gives the model's shape: leave out {flag_for(sorted(given & SHAPE_OPTIONS)[0])}")
    _apply_recipe(args)
    dataset = "" if args.data else args.dataset
    spec = {"dataset": dataset, "path": str(Path(args.data).resolve()) if args.data else "",
            "val_path": str(Path(args.val_data).resolve()) if args.val_data else "",
            "val_fraction": args.val_fraction, "seed": args.data_seed, "image_size": args.image_size,
            "channels": args.channels, "augment": args.augment}
    if dataset == "marks":
        spec.update(n_train=args.n_train, n_test=args.n_test)
    spec["sha256"] = data_digests(spec)
    return {"task": dataset or FROM_FILES, "data": spec}


def _apply_recipe(args):
    """The chosen dataset's tuned settings, for every option not given."""
    r = vit_recipe("files" if args.data else args.dataset)
    for name, value in {**r["data"], **r["model"], **r["train"]}.items():
        if name in args.options.defaults and name not in args.given:
            setattr(args, name, value)


def _pretrained(path):
    """The Hugging Face ViT at --init-from, refused by name when it is a run of this package's."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"--init-from {path} does not exist: give a Hugging Face ViT directory (config.json, "
                                f"model.safetensors); nothing is downloaded")
    if path.is_dir() and any((path / name).exists() for name in RUN_CHECKPOINTS):
        raise ValueError(f"--init-from {path} is a training run's directory: continue it with --resume --out-dir "
                         f"{path}, or export it with `transformer-jit export --format hf` and fine-tune that")
    return VisionTransformer.from_pretrained(path)


def _fine_tuned(pretrained, config, seed):
    """A model of `config` holding the pretrained weights; the classifier kept only when the classes
    are the pretrained model's own, else new (seeded) for the new classes."""
    model = VisionTransformer(config, seed=seed)
    weights = pretrained.state_dict()
    if config.n_classes != pretrained.config.n_classes or config.label_names != pretrained.config.label_names:
        fresh = model.state_dict()
        weights = {name: fresh[name] if name.startswith("classifier.") else value for name, value in weights.items()}
    model.load_state_dict(weights)
    return model


# -- using a trained model -----------------------------------------------------------------------
def classify_image(args):
    model, _ = load_trained(args, "vit")
    c = model.config
    images = read_images(args.data, "--data", image_shape(c.image_size), c.num_channels)
    names = c.label_names or [str(i) for i in range(c.n_classes)]
    if images.labels is not None:  # matched to the model's classes by name
        labelled = LabelledImages(images.images, relabel(images, names, "--data"), names, images.sources)
        score = image_accuracy(model, labelled, progress=True)
        print(f"{score.summary('accuracy')} on {args.data}")
        for source, label, got in score.mistakes:
            print(f"  wrong: {source} -> {got} (expected {label})")
        return 0
    for source, predicted in zip(images.sources, classify_images(model, images.images, progress=True).tolist()):
        print(f"{source}\t{names[predicted]}")
    return 0
