"""The ``attnlab`` command line."""

from __future__ import annotations

import argparse
import json
import sys

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
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except ValueError as err:
        print(f"attnlab {args.command}: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
