"""The ``attnlab`` command line."""

from __future__ import annotations

import argparse
import dataclasses
import errno
import inspect
import json
import os
import sys
import tempfile
import traceback
import typing
from collections.abc import Collection
from pathlib import Path

import torch

import attnlab
from attnlab.analysis import attention_stage_map
from attnlab.analysis.ablation import ablate_stages, write_ablation_report
from attnlab.analysis.activations import excitation_study, excitation_table
from attnlab.analysis.cam import CAM_METHODS, cam_panel, plot_cams
from attnlab.analysis.kernel_sweep import kernel_sweep
from attnlab.bench import benchmark, results_markdown
from attnlab.bench.compare import (
    CompareConfig,
    compare_table,
    load_compare_config,
    parse_models,
    parse_seeds,
    run_spec,
)
from attnlab.bench.demo import run_demo
from attnlab.bench.modules import CHANNELS, library_markdown, library_table
from attnlab.engine.batches import eval_batches_for
from attnlab.engine.config import (
    TRAIN_FIELDS,
    WORKERS_HELP,
    TrainConfig,
    config_from_run,
    field_help,
    list_recipes,
    resolve_config,
)
from attnlab.engine.evaluate import evaluate
from attnlab.engine.inference import checkpoint_path, load_model
from attnlab.engine.plots import checkpoint_label, plot_confusion
from attnlab.engine.predict import (
    classifier_for,
    collect_images,
    predict_images,
    predictions_csv,
    predictions_json,
    predictions_table,
)
from attnlab.engine.rundir import claim_outputs, with_run_dir
from attnlab.engine.trainer import TrainingDiverged, train
from attnlab.export import EXPORT_FORMATS, export_checkpoint, load_for_inference
from attnlab.export.speed import runtime_benchmark, runtime_markdown
from attnlab.utils import (
    AMP_HELP,
    AMP_MODES,
    DEVICE_HELP,
    atomic_write_text,
    check_positive_int,
    command_line,
    default_workers,
    environment,
    resolve_amp,
    resolve_device,
)

EVAL_FILES = ("eval.json", "eval_confusion.png")

DEFAULT_RECIPE = TrainConfig.recipe
# The TrainConfig fields each command does not take as plain config flags, because it has flags of its own for
# them (or none).
TRAIN_EXCLUDES = frozenset({"recipe"})  # --recipe of its own
COMPARE_EXCLUDES = frozenset({"recipe", "model", "seed", "out"})  # --recipe, --models, --seed(s), --out of its own
KERNEL_SWEEP_EXCLUDES = frozenset({"recipe", "model", "seed", "out"})  # --recipe, --model, --seed(s), --out


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Every option's help ends with "(default: VALUE)", except switches (off unless given) and options whose
    default is None (their help says what leaving them out means)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.nargs == 0:
            return action.help
        return super()._get_help_string(action)


class Parser(argparse.ArgumentParser):
    """argparse with :class:`HelpFormatter`, for every command and subcommand."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)


def comma_list(item: type = str):
    """argparse type of a comma-separated list such as --models resnet20,eca_resnet20 (empty items dropped)."""

    def parse(text: str) -> list:
        try:
            return [item(part.strip()) for part in text.split(",") if part.strip()]
        except ValueError:
            kind = "integers such as 3,5,7" if item is int else "values such as a,b"
            raise argparse.ArgumentTypeError(f"takes comma-separated {kind}, got {text!r}") from None

    return parse


def add_device_flags(parser: argparse.ArgumentParser, amp: bool = True) -> None:
    """--device (and --amp), the same in every command that runs a model."""
    parser.add_argument("--device", default="auto", help=DEVICE_HELP)
    if amp:
        parser.add_argument("--amp", default="auto", choices=AMP_MODES, help=AMP_HELP)


def add_seed_flags(parser: argparse.ArgumentParser, seed_default: int | None, seeds_default: int | None) -> None:
    """--seed S and --seeds N of the commands that train several seeds: the runs use seeds S, S+1, ..., S+N-1."""
    parser.add_argument(
        "--seed",
        type=int,
        default=seed_default,
        help="first seed" + ("" if seed_default is not None else " (default: the config's, else 0)"),
    )
    parser.add_argument(
        "--seeds",
        type=int,
        default=seeds_default,
        help="number of seeds, counting up from --seed"
        + ("" if seeds_default is not None else " (default: the config's, else 3)"),
    )


def cmd_list(args: argparse.Namespace) -> None:
    if args.models:
        print("\n".join(attnlab.list_models()))
        return
    rows = library_table()
    if args.markdown:
        print(library_markdown(rows))
        return
    print(f"{'name':<8} {'kind':<5} {'params@' + str(CHANNELS):>11} {'saved':>6}  {'year':<4}  {'verified':<8}  paper")
    for r in rows:
        print(
            f"{r.name:<8} {r.kind:<5} {r.params:>11,} {r.saved_activations:>6.2f}  {r.year:<4}  {r.verified:<8}  "
            f"{r.paper}"
        )
    print(
        f"\n{len(rows)} modules. 'conv' modules replace a 3x3 conv ({CHANNELS}->{CHANNELS}); 'gate' modules keep the "
        f"input shape. saved: activations kept for backward, in units of the (2, {CHANNELS}, 16, 16) input. "
        "verified: outputs proven equal to timm's module or to a plain implementation of the paper's equations."
    )


def cmd_summary(args: argparse.Namespace) -> None:
    kwargs = {"num_classes": args.num_classes} if args.num_classes is not None else {}
    if args.img_size is not None:
        check_positive_int("--img-size", args.img_size)
    if args.attention:
        kwargs["attention"] = args.attention
    model = attnlab.create_model(args.model, in_chans=args.in_chans, **kwargs)
    channels, height, width = attnlab.default_input_size(model)
    input_size = (channels, args.img_size, args.img_size) if args.img_size else (channels, height, width)
    result = attnlab.summary(model, input_size)
    print(json.dumps(result.to_dict(), indent=2) if args.json else result)


def _config_fields(exclude: Collection[str]) -> list[dataclasses.Field]:
    """The TrainConfig fields, in declaration order, less ``exclude`` (which must name fields)."""
    unknown = set(exclude) - TRAIN_FIELDS
    if unknown:
        raise ValueError(f"exclude names no TrainConfig fields {sorted(unknown)}")
    return [f for f in dataclasses.fields(TrainConfig) if f.name not in exclude]


def json_object(text: str) -> dict:
    """argparse type of a JSON object flag such as --attention-kwargs '{"k_size": 3}'."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"takes a JSON object such as '{{\"k_size\": 3}}', got {text!r}")
    return value


def add_config_flags(parser: argparse.ArgumentParser, exclude: Collection[str]) -> None:
    """One flag per TrainConfig field not in ``exclude`` (default None = take the recipe's value), with the
    field's help text and choices."""
    group = parser.add_argument_group("training options", "override the recipe's values")
    hints = typing.get_type_hints(TrainConfig)
    recipe = resolve_config(DEFAULT_RECIPE)
    for f in _config_fields(exclude):
        flag, kind, help_text = "--" + f.name.replace("_", "-"), hints[f.name], field_help(f)
        value = getattr(recipe, f.name)
        if value not in (None, [], {}):
            shown = ",".join(map(str, value)) if isinstance(value, list) else value
            help_text += f" (default: the recipe's; {DEFAULT_RECIPE}: {shown})"
        if kind == list[int]:
            group.add_argument(flag, type=comma_list(int), default=None, help=help_text + "; comma-separated")
        elif kind is dict:
            group.add_argument(flag, type=json_object, default=None, help=help_text)
        else:
            scalar = next(t for t in typing.get_args(kind) or (kind,) if t is not type(None))
            if scalar is bool:
                group.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=help_text)
            else:
                group.add_argument(flag, type=scalar, choices=f.metadata.get("choices"), default=None, help=help_text)


def config_overrides(args: argparse.Namespace, exclude: Collection[str]) -> dict:
    """{field: value} of the config flags (those of ``add_config_flags(parser, exclude)``) that were given."""
    values = {f.name: getattr(args, f.name) for f in _config_fields(exclude)}
    return {name: value for name, value in values.items() if value is not None}


def recipe_help(default: str | None = None) -> str:
    """--recipe's help; ``default`` describes what a missing --recipe means (None: its shown default)."""
    text = f"the preset to start from: {', '.join(list_recipes())} or a YAML file of its fields"
    return text + (f" (default: {default})" if default else "")


def add_evaluation_data_flags(parser: argparse.ArgumentParser) -> None:
    """RUN_OR_CKPT and the data it is evaluated on, for eval and the analyses."""
    parser.add_argument("run", metavar="RUN_OR_CKPT")
    parser.add_argument("--data", help="data as for train (its test/val split is used; default: the run's)")
    parser.add_argument("--val", help="a class-folder tree to use instead")
    parser.add_argument("--batch-size", type=int, default=64, help="images per batch")
    parser.add_argument("--workers", type=int, default=default_workers(), help=WORKERS_HELP)


class Interrupted(KeyboardInterrupt):
    """Ctrl-C, with what to run to continue."""


def cmd_train(args: argparse.Namespace) -> None:
    overrides = config_overrides(args, TRAIN_EXCLUDES)
    if args.resume:
        if args.overwrite:
            raise ValueError("--resume continues a run and --overwrite replaces it; give one of them")
        if args.config or args.recipe:
            raise ValueError("--resume continues a run with its own config.yaml; --config and --recipe start new runs")
        config = config_from_run(args.resume, **overrides)
        changed = {k: v for k, v in overrides.items() if getattr(config_from_run(args.resume), k) != v}
        if changed:
            print(f"resuming with changed settings (config.yaml is updated): {changed}", file=sys.stderr)
    else:
        config = with_run_dir(resolve_config(args.recipe, args.config, **overrides))
    try:
        train(config, resume=bool(args.resume), overwrite=args.overwrite)
    except TrainingDiverged as err:
        print(f"attnlab train: {err}", file=sys.stderr)
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        raise Interrupted(f"stopped; continue with: attnlab train --resume {config.out}") from None


def default_output_folder(run: str) -> Path:
    """The run folder of RUN_OR_CKPT (the checkpoint's folder for a file)."""
    path = Path(run)
    return path if path.is_dir() else path.parent


def cmd_eval(args: argparse.Namespace) -> None:
    out = claim_outputs(Path(args.out) if args.out else default_output_folder(args.run), EVAL_FILES, args.overwrite)
    model, metadata, device = load_for_inference(args.run, args.device)
    batches = eval_batches_for(
        metadata, data=args.data, val=args.val, batch_size=args.batch_size, workers=args.workers, device=device
    )
    amp_dtype = resolve_amp(args.amp, device)
    precision = str(amp_dtype).removeprefix("torch.") if amp_dtype else "float32"
    result = evaluate(model, batches.epoch(0), len(metadata["classes"]), device, amp_dtype=amp_dtype)
    report = {
        "checkpoint": str(args.run),
        "data": batches.images.name,
        "precision": precision,
        **result.to_dict(metadata["classes"]),
        "environment": environment(device),
    }
    print(
        f"top-1 {result.top1:.4f}  top-5 {result.top5:.4f}  loss {result.loss:.4f}  "
        f"{result.images} images  {result.images_per_s:.0f} images/s (batch {args.batch_size}, {device}, "
        f"{precision})"
    )
    for name, acc in report["per_class_accuracy"].items():
        print(f"  {name:<24} {acc:.4f}")
    atomic_write_text(out / "eval.json", json.dumps(report, indent=2))
    source = checkpoint_label(checkpoint_path(args.run), metadata)
    plot_confusion(result.confusion, metadata["classes"], out / "eval_confusion.png", f"{source}, on {report['data']}")
    print(f"wrote {out / 'eval.json'} and {out / 'eval_confusion.png'}")


def cmd_predict(args: argparse.Namespace) -> None:
    check_positive_int("--topk", args.topk)
    check_positive_int("--batch-size", args.batch_size)
    if args.json and args.json == args.csv:
        raise ValueError(f"--json and --csv both name {args.json}; give two files (at most one of them '-': stdout)")
    for path in {args.json, args.csv} - {None, "-"}:
        if Path(path).exists() and not args.overwrite:
            raise ValueError(f"{path} exists already; add --overwrite to replace it, or choose another file")
    paths = collect_images(args.images)
    model, metadata, device = load_for_inference(args.run, args.device)
    classifier = classifier_for(model, metadata, str(args.run), device, args.amp)
    predictions = list(predict_images(classifier, paths, topk=args.topk, batch_size=args.batch_size))
    outputs = {}
    if args.json:
        outputs[args.json] = predictions_json(classifier, predictions)
    if args.csv:
        outputs[args.csv] = predictions_csv(predictions)
    sys.stdout.write(outputs.pop("-", predictions_table(predictions) + "\n"))
    for path, text in outputs.items():
        atomic_write_text(path, text)
        print(f"wrote {path}", file=sys.stderr)
    failed = [p for p in predictions if p.error]
    for p in failed:
        print(f"attnlab predict: skipped: {p.error}", file=sys.stderr)
    if failed:
        raise ValueError(
            f"{len(failed)} of {len(predictions)} images could not be read (listed above) and were skipped; fix or "
            f"remove them (the other {len(predictions) - len(failed)} predictions were output)"
        )


def cmd_export(args: argparse.Namespace) -> None:
    result, int8 = export_checkpoint(
        args.run,
        args.format,
        args.out,
        opset=args.opset,
        dynamic=not args.static,
        atol=args.atol,
        overwrite=args.overwrite,
        data=args.data,
        int8=args.int8,
        calib=args.calib,
    )
    print(result)
    if int8:
        print(int8)
    if not result.ok:
        raise ValueError(
            f"the exported model differs from PyTorch by {result.max_abs_error:.3g} > --atol "
            f"{result.atol:g} (the file is kept at {result.path} for inspection)"
        )


DEMO_DEFAULTS = {name: p.default for name, p in inspect.signature(run_demo).parameters.items()}


def cmd_demo(args: argparse.Namespace) -> None:
    run_demo(**{name: getattr(args, name) for name in DEMO_DEFAULTS})


def analysis_out(args: argparse.Namespace, files: tuple[str, ...]) -> Path:
    """--out, or RUN/analysis (next to the checkpoint for a file), checked for earlier ``files`` (--overwrite)."""
    out = Path(args.out) if args.out else default_output_folder(args.run) / "analysis"
    return claim_outputs(out, files, args.overwrite)


def load_for_analysis(args: argparse.Namespace):
    """(model, metadata, {attention path: stage}, device, evaluation batches) of the run in ``args.run``."""
    model, metadata, device = load_for_inference(args.run, args.device)
    batches = eval_batches_for(
        metadata, data=args.data, val=args.val, batch_size=args.batch_size, workers=args.workers, device=device
    )
    return model, metadata, attention_stage_map(model), device, batches


def cmd_analyze_activations(args: argparse.Namespace) -> None:
    out = analysis_out(args, ("activations.csv", "activations.png", "activations.json"))
    model, metadata, stages, device, batches = load_for_analysis(args)
    report = excitation_study(
        model,
        stages,
        batches.epoch(0),
        metadata["classes"],
        out,
        classes=args.classes or [],
        extra_blocks=args.blocks or [],
        images_per_class=args.images_per_class,
        channels=args.channels,
        device=device,
    )
    print(excitation_table(report))
    print(f"wrote {out / 'activations.csv'}, {out / 'activations.png'} and {out / 'activations.json'}")


def cmd_analyze_ablate(args: argparse.Namespace) -> None:
    out = analysis_out(args, ("ablation.md", "ablation.json"))
    model, metadata, stages, device, batches = load_for_analysis(args)
    rows = ablate_stages(model, stages, lambda: batches.epoch(0), len(metadata["classes"]), device, args.modes)
    print(write_ablation_report(rows, out, f"{metadata['model']} ({args.run}) on {batches.images.name}"))
    print(f"wrote {out / 'ablation.md'} and {out / 'ablation.json'}")


def cmd_analyze_kernel_sweep(args: argparse.Namespace) -> None:
    overrides = config_overrides(args, KERNEL_SWEEP_EXCLUDES)
    model = args.model
    out = Path(args.out or f"runs/kernel-sweep-{model}-{args.recipe}")
    seeds = parse_seeds(args.seeds, first=args.seed)
    print(kernel_sweep(model, args.k, seeds, out, recipe=args.recipe, overrides=overrides))
    print(
        f"wrote {out / 'kernel_sweep.md'}, {out / 'kernel_sweep.png'}, {out / 'kernel_sweep.json'} and "
        f"compare's {out / 'report.md'}"
    )


def cmd_analyze_cam(args: argparse.Namespace) -> None:
    out = analysis_out(args, ("cam.png",))
    device = resolve_device(args.device)
    panels = []
    for run in [args.run] + ([args.compare] if args.compare else []):
        model, metadata = load_model(run, device)
        panel = cam_panel(f"{metadata['model']} {args.method}", model, metadata, args.images, device, args.target)
        print(f"{run}: {args.method} of target layer {panel.layer}")
        panels.append(panel)
    path = plot_cams(panels, out / "cam.png", ["/".join(Path(p).parts[-2:]) for p in args.images])
    print(f"wrote {path}")


def cmd_bench(args: argparse.Namespace) -> None:
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.runtime != "torch" or args.int8:
        cmd_bench_runtime(args)
        return
    settings = {
        "img_size": args.img_size,
        "batch_size": args.batch_size,
        "device": args.device,
        "amp": args.amp,
        "channels_last": args.channels_last,
        "compile": args.compile,
        "vs_timm": args.vs_timm,
        "train": not args.no_train,
        "warmup": args.warmup,
        "repeats": args.repeats,
        "iters": args.iters,
    }
    results = benchmark(args.models, progress=lambda message: print(message, file=sys.stderr), **settings)
    env = environment(resolve_device(args.device))
    print(
        f"{env['hardware']} ({env['device']}, {env['torch_threads']} threads), torch {env['torch']}; batch "
        f"{args.batch_size}, median of {args.repeats} interleaved rounds of {args.iters} iteration(s)"
    )
    print(results_markdown(results))
    if args.json:
        report = {
            "command": "attnlab " + " ".join(sys.argv[1:]),
            "environment": env,
            "settings": settings,
            "results": [r.to_dict() for r in results],
        }
        Path(args.json).write_text(json.dumps(report, indent=2))
        print(f"wrote {args.json}")


def cmd_bench_runtime(args: argparse.Namespace) -> None:
    """bench --runtime ort|openvino [--int8]: the models exported to ONNX and timed in that runtime."""
    if args.runtime == "torch":
        raise ValueError("--int8 models run in ONNX Runtime or OpenVINO: add --runtime ort or --runtime openvino")
    runtimes = ["torch", args.runtime]
    results = runtime_benchmark(
        args.models,
        runtimes,
        int8=args.int8,
        batch_sizes=[args.batch_size],
        img_size=args.img_size or 224,  # one size for all the exported models
        warmup=args.warmup,
        repeats=args.repeats,
        iters=args.iters,
        threads=args.threads,
        progress=lambda message: print(message, file=sys.stderr),
    )
    env = environment("cpu")
    print(
        f"{env['hardware']} ({env['torch_threads']} torch threads), torch {env['torch']}; batch {args.batch_size}, "
        f"median of {args.repeats} interleaved rounds; ratios to the first model in each runtime and precision"
    )
    print(runtime_markdown(results))
    if args.json:
        report = {"command": command_line(), "environment": env, "results": [dataclasses.asdict(r) for r in results]}
        atomic_write_text(Path(args.json), json.dumps(report, indent=2))
        print(f"wrote {args.json}")


def cmd_compare(args: argparse.Namespace) -> None:
    if not args.config and not args.models:
        raise ValueError("give the models to compare: --models resnet50,eca_resnet50 or --config FILE")
    spec = load_compare_config(args.config) if args.config else CompareConfig(models=[])
    spec.overrides.update(config_overrides(args, COMPARE_EXCLUDES))
    if args.models:
        spec.models = parse_models(args.models)
    spec.recipe = args.recipe or spec.recipe
    if args.seed is not None or args.seeds is not None:
        count = args.seeds if args.seeds is not None else len(spec.seeds)
        spec.seeds = parse_seeds(count, first=args.seed if args.seed is not None else spec.seeds[0])
    spec.out = args.out or spec.out
    print(compare_table(run_spec(spec)))


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="attnlab", description="Channel attention for CNNs.")
    parser.add_argument("--version", action="version", version=f"attnlab {attnlab.__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("list", help="list the attention modules (or models)", description="List the attention modules.")
    p.add_argument("--models", action="store_true", help="list the model names instead")
    p.add_argument("--markdown", action="store_true", help="print the module table as Markdown (the README's)")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser(
        "summary",
        help="per-layer table, parameters, FLOPs, memory of a model",
        description="Keras-style summary of a model: layers, output shapes, parameters, FLOPs, memory.",
    )
    p.add_argument("model", help="model name, e.g. eca_resnet50 (see `attnlab list --models`)")
    p.add_argument("--img-size", type=int, help="image side in pixels (default: the model's own, e.g. 224)")
    p.add_argument("--in-chans", type=int, default=3, help="input channels of the model's first layer")
    p.add_argument("--num-classes", type=int, help="number of classes of the head (default: the model's)")
    p.add_argument("--attention", help="attention registry name to put into the model (e.g. eca, se)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=cmd_summary)

    p = sub.add_parser(
        "train",
        help="train a model with a recipe",
        description="Train a model with a named recipe; every recipe field can be overridden. Writes a run directory.",
    )
    p.add_argument("--recipe", help=recipe_help(f"the config file's, else {DEFAULT_RECIPE}"))
    p.add_argument(
        "--config",
        metavar="FILE",
        help="YAML of training options over the recipe (a run's config.yaml works too: give a new --out); flags given "
        "here override it",
    )
    p.add_argument("--resume", metavar="RUN", help="continue the run in RUN from its last finished epoch")
    p.add_argument("--overwrite", action="store_true", help="replace the run that --out holds (its run files only)")
    add_config_flags(p, exclude=TRAIN_EXCLUDES)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "eval",
        help="evaluate a trained run or checkpoint",
        description="Top-1/top-5, loss, per-class accuracy, confusion matrix and inference throughput of a checkpoint.",
    )
    add_evaluation_data_flags(p)
    add_device_flags(p)
    p.add_argument("--out", help="where eval.json goes (default: the run directory)")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier eval.json / eval_confusion.png")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser(
        "predict",
        help="top-k classes of image files, folders and globs",
        description="Top-k classes of image files, in batches: a table on stdout and optionally JSON / CSV. An "
        "unreadable image is skipped with a warning; the others are predicted and written, then the command exits "
        "with code 2 naming the skipped files.",
    )
    p.add_argument("run", metavar="RUN_OR_CKPT", help="run folder, checkpoint, or exported .onnx/.xml/.pt2 model")
    p.add_argument(
        "images",
        nargs="+",
        metavar="IMAGE",
        help="image files, folders (their image files, recursively) or glob patterns such as 'photos/**/*.jpg'",
    )
    p.add_argument("--topk", type=int, default=5, help="classes shown per image")
    p.add_argument("--batch-size", type=int, default=64, help="images per forward pass")
    add_device_flags(p)
    p.add_argument("--json", metavar="FILE", help="write path, top-k classes and probabilities as JSON ('-': stdout)")
    p.add_argument(
        "--csv", metavar="FILE", help="write one row per image: path, class_1, probability_1, ..., error ('-': stdout)"
    )
    p.add_argument("--overwrite", action="store_true", help="replace existing --json / --csv files")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser(
        "export",
        help="export a trained run or checkpoint to ONNX, torch.export (.pt2), TorchScript or OpenVINO",
        description="Export the model of a run directory or checkpoint, with a free batch size and image size and "
        "its class names, mean/std, input size and model name in the file, and check the exported file in its "
        "runtime (ONNX Runtime, OpenVINO, PyTorch) against PyTorch on random inputs at two sizes and, with "
        "--data, on the validation images (top-1 agreement, max abs logit difference); exit 2 over --atol.",
    )
    p.add_argument("run", metavar="RUN_OR_CKPT")
    p.add_argument("--format", choices=EXPORT_FORMATS, default="onnx", help="file format")
    p.add_argument("--opset", type=int, default=18, help="ONNX opset")
    p.add_argument("--static", action="store_true", help="fix the batch size and image size to the traced ones")
    p.add_argument("--data", help="also check on this data's validation images (default: random inputs only)")
    p.add_argument(
        "--int8",
        action="store_true",
        help="also write an INT8 model (<out>.int8.onnx/.xml; static PTQ, ONNX Runtime QDQ, per-channel weights; "
        "attention gates kept in fp32 when they quantize badly) and report top-1 fp32 vs int8 on --data's (else "
        "--calib's) validation images",
    )
    p.add_argument("--calib", metavar="DATA", help="--int8: data whose train split calibrates (256 images)")
    p.add_argument("--atol", type=float, default=1e-4, help="largest max abs error accepted")
    p.add_argument("--out", help="output file (default: the checkpoint's path with .onnx/.pt2/.torchscript.pt/.xml)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser(
        "demo",
        help="train small CNNs with and without attention on the embedded digits",
        description="Train ResNet-20, SE-ResNet-20 and ECA-ResNet-20 on the embedded digits with the "
        "fast recipe and print the comparison (a few minutes on 2 CPU cores).",
    )
    p.add_argument(
        "--models",
        type=comma_list(),
        default=",".join(DEMO_DEFAULTS["models"]),
        help="comma-separated models to compare",
    )
    p.add_argument("--epochs", type=int, default=DEMO_DEFAULTS["epochs"], help="epochs per model")
    p.add_argument(
        "--img-size", type=int, default=DEMO_DEFAULTS["img_size"], help="image side in pixels (digits are 8x8)"
    )
    p.add_argument("--seed", type=int, default=DEMO_DEFAULTS["seed"], help="seed")
    p.add_argument("--out", default=DEMO_DEFAULTS["out"], help="parent folder of the runs")
    add_device_flags(p, amp=False)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser(
        "analyze",
        help="what the attention learned: activations, ablate, kernel-sweep, cam",
        description="Analyses of a trained run: the SENet excitation study and stage ablation, the "
        "ECA kernel-size sweep, class activation maps (Grad-CAM and others).",
    )
    analyze = p.add_subparsers(dest="analysis", required=True, metavar="ANALYSIS")

    def analysis_parser(name: str, help_text: str, func, data: bool = True) -> argparse.ArgumentParser:
        """The parser of an analysis of trained runs: --out (default RUN/analysis), --device and, with ``data``,
        RUN_OR_CKPT and the data it is evaluated on."""
        q = analyze.add_parser(name, help=help_text, description=help_text)
        q.set_defaults(func=func)
        if data:
            add_evaluation_data_flags(q)
        q.add_argument("--out", help="output folder (default: RUN/analysis)")
        q.add_argument("--overwrite", action="store_true", help="replace this analysis' files from an earlier run")
        add_device_flags(q, amp=False)
        return q

    q = analysis_parser(
        "activations",
        "SENet excitation study: mean gate activation per channel by class, for the last attention block of each stage",
        cmd_analyze_activations,
    )
    q.add_argument(
        "--classes", type=comma_list(), help="comma-separated class names to show (default: 4 spread over the classes)"
    )
    q.add_argument("--images-per-class", type=int, default=50, help="images of each class averaged over")
    q.add_argument(
        "--blocks", type=comma_list(), help="comma-separated attention module paths to add, e.g. layer2.0.attention"
    )
    q.add_argument("--channels", type=int, default=50, help="channels shown, uniformly spaced")

    q = analysis_parser(
        "ablate", "accuracy with the attention of each stage (and of all stages) switched off", cmd_analyze_ablate
    )
    q.add_argument(
        "--modes",
        type=comma_list(),
        default="identity,mean",
        help="how attention is switched off, comma-separated: 'identity' (module "
        "removed, gate = 1) and/or 'mean' (gate fixed to its average over the data)",
    )

    sweep_help = "ECA kernel-size sweep: train with fixed k and with the adaptive k, plot accuracy vs k (resumable)"
    q = analyze.add_parser("kernel-sweep", help=sweep_help, description=sweep_help)
    q.set_defaults(func=cmd_analyze_kernel_sweep)
    q.add_argument("--recipe", default=DEFAULT_RECIPE, help=recipe_help())
    q.add_argument("--model", default="eca_resnet20", help="an ECA model")
    q.add_argument("--k", type=comma_list(int), default="3,5,7,9", help="comma-separated fixed kernel sizes")
    add_seed_flags(q, seed_default=0, seeds_default=1)
    q.add_argument(
        "--out",
        help="sweep folder: runs/<setting>-s<seed> inside, compare's report and the sweep's "
        "(default runs/kernel-sweep-MODEL-RECIPE)",
    )
    add_config_flags(q, exclude=KERNEL_SWEEP_EXCLUDES)

    q = analysis_parser(
        "cam",
        "class activation maps (grad-cam package: pip install 'attnlab[cam]') of the last stage or the last "
        "attention module over image files",
        cmd_analyze_cam,
        data=False,
    )
    q.add_argument("run", metavar="RUN_OR_CKPT")
    q.add_argument("images", nargs="+", metavar="IMAGE")
    q.add_argument("--compare", metavar="OTHER_RUN", help="a second run shown side by side")
    q.add_argument(
        "--method",
        choices=list(CAM_METHODS),
        default="gradcam",
        help="CAM method; scorecam is slow: one forward pass per channel of the target layer "
        "and image (512 for a ResNet-18's last stage), eigencam ignores the class",
    )
    q.add_argument(
        "--target",
        default="stage",
        help="module whose output is explained, printed when run: 'stage' the backbone's last stage, 'gate' the "
        "last attention module, or a module path such as layer3.1",
    )

    p = sub.add_parser(
        "bench",
        help="speed, FLOPs and memory of models side by side (optionally vs timm)",
        description="Parameters, FLOPs, inference and training-step throughput, latency and memory "
        "of models, their repeats interleaved; ratios to the first model and to timm's equal model.",
    )
    p.add_argument(
        "--models",
        type=comma_list(),
        default="resnet20,se_resnet20,eca_resnet20",
        help="comma-separated model names; the first is the reference of the ratios. The default is sized for a CPU "
        "(CIFAR ResNet-20s at 32 px); on a GPU try e.g. resnet50,se_resnet50,eca_resnet50",
    )
    p.add_argument("--img-size", type=int, help="image side in pixels (default: each model's own, e.g. 32, 224)")
    p.add_argument("--batch-size", type=int, default=16, help="images per timed call")
    add_device_flags(p)
    p.add_argument("--channels-last", action="store_true", help="channels_last memory format for model and input")
    p.add_argument("--compile", action="store_true", help="torch.compile the models (compiled during warm-up)")
    p.add_argument("--vs-timm", action="store_true", help="also time the equal timm architectures")
    p.add_argument("--no-train", action="store_true", help="skip the training-step measurement")
    p.add_argument("--warmup", type=int, default=2, help="untimed iterations per model first")
    p.add_argument("--repeats", type=int, default=5, help="interleaved timed rounds; the median counts")
    p.add_argument("--iters", type=int, default=1, help="iterations per model per round")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.add_argument(
        "--runtime",
        choices=("torch", "ort", "openvino"),
        default="torch",
        help="torch: eager PyTorch (this command's full measurement); ort, openvino: the models exported to ONNX "
        "and run in ONNX Runtime or OpenVINO, timed next to eager PyTorch",
    )
    p.add_argument("--int8", action="store_true", help="also time the INT8 (static QDQ) models in ort / openvino")
    p.add_argument("--json", metavar="FILE", help="also write the results, settings and environment as JSON")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser(
        "compare",
        help="train several models x seeds with one recipe and report side by side",
        description="Train every model x seed (finished runs are skipped, interrupted ones resumed), "
        "then write report.md, report.json and accuracy/loss/accuracy-vs-parameters plots.",
        allow_abbrev=False,  # --model is no prefix of --models here: compare has no --model
    )
    p.add_argument("--models", type=comma_list(), help="comma-separated model names; the first is the baseline")
    p.add_argument(
        "--config",
        metavar="FILE",
        help="YAML with 'models' (names or {model, label, overrides...}), recipe, seeds, "
        "and shared training options; flags given here override it",
    )
    p.add_argument("--recipe", help=recipe_help(f"the config's, else {DEFAULT_RECIPE}"))
    add_seed_flags(p, seed_default=None, seeds_default=None)
    p.add_argument("--out", help="comparison folder: runs/ inside, report next to it (default runs/compare)")
    add_config_flags(p, exclude=COMPARE_EXCLUDES)
    p.set_defaults(func=cmd_compare)
    return parser


OS_ERROR_FIXES = {
    errno.ENOSPC: "the disk is full; free some space and run the command again (train: add --resume RUN)",
    errno.EROFS: "the file system is read-only; choose a writable path",
    errno.EACCES: "permission denied; choose a path you can write, or fix its permissions",
    errno.EPERM: "permission denied; choose a path you can write, or fix its permissions",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EISDIR: "it is a folder; give a file path",
    errno.EEXIST: "it exists already; choose another path",
}


def describe_os_error(err: OSError) -> str:
    """One line for an operating-system error: what failed, where, and what to do."""
    where = f" ({err.filename})" if err.filename else ""
    fix = OS_ERROR_FIXES.get(err.errno, "check the path and try again")
    return f"{err.strerror or err}{where}: {fix}"


def report_internal_error(command: str, err: Exception) -> int:
    """Print a one-line summary of an unexpected error and where its traceback went; exit code 1."""
    with tempfile.NamedTemporaryFile("w", prefix="attnlab-error-", suffix=".txt", delete=False) as f:
        traceback.print_exc(file=f)
    print(
        f"attnlab {command}: internal error: {type(err).__name__}: {err}. This is a bug in attnlab, not in your "
        f"input; the full traceback is in {f.name} (ATTNLAB_DEBUG=1 prints it). Please report it.",
        file=sys.stderr,
    )
    return 1


def main(argv: list[str] | None = None) -> int:
    """Run one command. Exit codes: 0 done, 1 the run itself failed (e.g. diverged) or an internal error, 2 bad
    input (one message naming the problem and the fix), 130 interrupted (Ctrl-C)."""
    args = build_parser().parse_args(argv)
    if os.environ.get("ATTNLAB_DEBUG") == "1":
        args.func(args)
        return 0
    try:
        args.func(args)
    except KeyboardInterrupt as err:
        print(f"attnlab {args.command}: {err or 'interrupted'}", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError) as err:
        print(f"attnlab {args.command}: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"attnlab {args.command}: error: {describe_os_error(err)}", file=sys.stderr)
        return 2
    except Exception as err:
        return report_internal_error(args.command, err)
    return 0


if __name__ == "__main__":
    sys.exit(main())
