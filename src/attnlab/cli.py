"""The ``attnlab`` command line."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import typing
from pathlib import Path

import attnlab
from attnlab.attention import attention_kind, create_attention, get_attention_info, list_attentions

LIST_CHANNELS = 256


def _attention_params(name: str) -> int:
    args = (LIST_CHANNELS, LIST_CHANNELS) if attention_kind(name) == "conv" else (LIST_CHANNELS,)
    return sum(p.numel() for p in create_attention(name, *args).parameters())


def cmd_list(args: argparse.Namespace) -> None:
    if args.models:
        print("\n".join(attnlab.list_models()))
        return
    print(f"{'name':<8} {'kind':<5} {'params@' + str(LIST_CHANNELS):>11}  {'year':<4}  paper")
    for name in list_attentions():
        info = get_attention_info(name)
        year = str(info.year) if info.year else "-"
        print(f"{name:<8} {info.kind:<5} {_attention_params(name):>11,}  {year:<4}  {info.paper}")
    print(f"\n{len(list_attentions())} modules. 'conv' modules replace a 3x3 conv ({LIST_CHANNELS}->{LIST_CHANNELS});"
          " 'gate' modules keep the input shape.")


def cmd_summary(args: argparse.Namespace) -> None:
    kwargs = {"num_classes": args.num_classes} if args.num_classes else {}
    if args.attention:
        kwargs["attention"] = args.attention
    model = attnlab.create_model(args.model, **kwargs)
    input_size = tuple(args.input_size) if args.input_size else attnlab.default_input_size(model)
    result = attnlab.summary(model, input_size)
    print(json.dumps(result.to_dict(), indent=2) if args.json else result)


TRAIN_FLAG_HELP = {
    "data": "'digits' (embedded), a folder with train/ and test/ (or val/), or CIFAR python batches",
    "train": "train split folder (with --val, instead of --data)",
    "val": "validation split folder",
    "out": "run directory (default runs/MODEL-RECIPE-sSEED)",
    "attention": "attention registry name to put into the model",
    "attention_kwargs": "JSON dict of attention keyword arguments, e.g. '{\"k_size\": 3}'",
    "amp": "mixed precision: auto (bf16/fp16 on CUDA, off on CPU), off, bf16, fp16",
    "device": "auto, cpu, cuda, cuda:1, ...",
    "ema": "EMA decay of the weights used for evaluation (e.g. 0.999)",
    "strict": "fail on the first unreadable image instead of skipping it",
    "model": "model name (attnlab list --models); default resnet20",
    "augment": "augmentation policy: keras, paddle, imagenet, fast, resize",
    "normalize": "dataset (train mean/std), imagenet, or rescale (x/255 only)",
    "cache_size": "side of the cached uint8 squares (default: img-size); larger for crop recipes",
    "cache_dir": "folder for an on-disk copy of the decoded images (reused across runs)",
    "workers": "DataLoader worker processes for decoding images",
    "deterministic": "deterministic kernels: with --device cpu, a resumed run ends bit-identical",
}


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig field (default None = take the recipe's value)."""
    from attnlab.engine.config import TrainConfig

    hints = typing.get_type_hints(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        if f.name == "recipe":
            continue
        flag, kind = "--" + f.name.replace("_", "-"), hints[f.name]
        help_text = TRAIN_FLAG_HELP.get(f.name, f"overrides the recipe's {f.name}")
        if kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        elif kind == list[int]:
            parser.add_argument(flag, type=int, nargs="+", default=None, help=help_text)
        elif kind is dict:
            parser.add_argument(flag, type=json.loads, default=None, help=help_text)
        else:
            scalar = next(t for t in typing.get_args(kind) or (kind,) if t is not type(None))
            parser.add_argument(flag, type=scalar, default=None, help=help_text)


def cmd_train(args: argparse.Namespace) -> None:
    from attnlab.engine.config import TrainConfig, config_from_run, resolve_config
    from attnlab.engine.trainer import TrainingDiverged, train

    overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig) if f.name != "recipe"}
    config = config_from_run(args.resume, **overrides) if args.resume else resolve_config(args.recipe, **overrides)
    try:
        train(config, resume=bool(args.resume))
    except TrainingDiverged as err:
        print(f"attnlab train: {err}", file=sys.stderr)
        raise SystemExit(1) from None


def cmd_eval(args: argparse.Namespace) -> None:
    from attnlab.engine.batches import eval_batches_for
    from attnlab.engine.distributed import resolve_device
    from attnlab.engine.evaluate import evaluate
    from attnlab.engine.inference import load_model
    from attnlab.engine.plots import plot_confusion

    device = resolve_device(args.device)
    model, metadata = load_model(args.run, device)
    batches = eval_batches_for(metadata, data=args.data, val=args.val, batch_size=args.batch_size,
                               workers=args.workers, device=device)
    result = evaluate(model, batches.epoch(0), len(metadata["classes"]), device)
    report = {"checkpoint": str(args.run), "data": args.data or args.val, **result.to_dict(metadata["classes"])}
    print(f"top-1 {result.top1:.4f}  top-5 {result.top5:.4f}  loss {result.loss:.4f}  "
          f"{result.images} images  {result.images_per_s:.0f} images/s (batch {args.batch_size}, {device})")
    for name, acc in report["per_class_accuracy"].items():
        print(f"  {name:<24} {acc:.4f}")
    out = Path(args.out or (args.run if Path(args.run).is_dir() else Path(args.run).parent))
    out.mkdir(parents=True, exist_ok=True)
    (out / "eval.json").write_text(json.dumps(report, indent=2))
    plot_confusion(result.confusion, metadata["classes"], out / "eval_confusion.png")
    print(f"wrote {out / 'eval.json'} and {out / 'eval_confusion.png'}")


def cmd_predict(args: argparse.Namespace) -> None:
    from attnlab.engine.inference import load_model, predict_files

    model, metadata = load_model(args.run)
    for path, top in zip(args.images, predict_files(model, metadata, args.images, topk=args.topk)):
        print(path + ":  " + "  ".join(f"{name} {p:.3f}" for name, p in top))


def cmd_demo(args: argparse.Namespace) -> None:
    from attnlab.engine.demo import run_demo

    run_demo(args.models, epochs=args.epochs, img_size=args.img_size, out=args.out, seed=args.seed)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="attnlab", description="Channel attention for CNNs.")
    parser.add_argument("--version", action="version", version=f"attnlab {attnlab.__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("list", help="list the attention modules (or models)", description="List the attention modules.")
    p.add_argument("--models", action="store_true", help="list the model names instead")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("summary", help="per-layer table, parameters, FLOPs, memory of a model",
                       description="Keras-style summary of a model: layers, output shapes, parameters, FLOPs, memory.")
    p.add_argument("model", help="model name, e.g. eca_resnet50 (see `attnlab list --models`)")
    p.add_argument("--input-size", type=int, nargs=3, metavar=("C", "H", "W"),
                   help="input size without batch (default: the model's own, e.g. 3 224 224)")
    p.add_argument("--num-classes", type=int, help="number of classes of the head (default: the model's)")
    p.add_argument("--attention", help="attention registry name to put into the model (e.g. eca, se)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=cmd_summary)

    p = sub.add_parser("train", help="train a model with a recipe", description="Train a model with a named recipe; "
                       "every recipe field can be overridden. Writes a run directory.")
    p.add_argument("--recipe", default="fast", help="fast, keras-flowers, paddle-cifar, epsanet-cifar, "
                   "paper-imagenet or a YAML file (default: fast)")
    p.add_argument("--resume", metavar="RUN", help="continue the run in RUN from its last finished epoch")
    add_config_flags(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="evaluate a trained run or checkpoint", description="Top-1/top-5, loss, per-class "
                       "accuracy, confusion matrix and inference throughput of a checkpoint.")
    p.add_argument("run", metavar="RUN_OR_CKPT")
    p.add_argument("--data", help="data as for train (its test/val split is evaluated)")
    p.add_argument("--val", help="a class-folder tree to evaluate")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--out", help="where eval.json goes (default: the run directory)")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("predict", help="top-k classes of image files", description="Top-k classes of image files.")
    p.add_argument("run", metavar="RUN_OR_CKPT")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--topk", type=int, default=5)
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("demo", help="train small CNNs with and without attention on the embedded digits",
                       description="Train ResNet-20, SE-ResNet-20 and ECA-ResNet-20 on the embedded digits with the "
                       "fast recipe and print the comparison (a few minutes on 2 CPU cores).")
    p.add_argument("--models", nargs="+", default=["resnet20", "se_resnet20", "eca_resnet20"])
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--img-size", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/demo", help="parent folder of the runs (default runs/demo)")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (ValueError, FileNotFoundError) as err:
        print(f"attnlab {args.command}: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
