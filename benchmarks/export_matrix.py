"""The export matrix: every registered attention module in a CIFAR ResNet-8 (built with it; conv-replacement
modules in attnlab's ResNet-18) and attached to torchvision's ResNet-18, exported to ONNX (run in ONNX Runtime),
torch.export (.pt2) and TorchScript with a free batch size and image size, each checked against eager PyTorch at
batch 3 at the traced size and batch 1 at a larger, non-square size.

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/export_matrix.py

Writes benchmarks/results/export_matrix.md (module x host x format: ok / refused with the reason / fails); each
finished row is kept in export_matrix.jsonl beside it, so an interrupted run continues where it stopped.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
import warnings
from pathlib import Path

import torch

from attnlab.attention import list_attentions
from attnlab.export.matrix import MATRIX_FORMATS, MatrixCell, matrix_hosts, run_matrix_row
from attnlab.utils import atomic_write_text, command_line, environment, markdown_table, now


def cell_text(cell) -> str:
    if cell.status == "ok":
        return f"ok ({cell.max_abs_error:.1e})"
    return f"{cell.status}: {cell.detail[:160]}".replace("|", "/").replace("\n", " ")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modules", help="comma-separated attention names (default: all registered)")
    parser.add_argument("--hosts", help="comma-separated hosts to run (default: each module's, see matrix_hosts)")
    parser.add_argument("--out", default="benchmarks/results/export_matrix.md", help="(default: %(default)s)")
    args = parser.parse_args()
    done_file = Path(args.out).with_suffix(".jsonl")
    done = {}
    if done_file.exists():
        for line in done_file.read_text().splitlines():
            cells = [MatrixCell(**c) for c in json.loads(line)]
            done[(cells[0].attention, cells[0].host)] = cells
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    modules = args.modules.split(",") if args.modules else list_attentions()
    rows, started = [], time.time()
    wanted = set(args.hosts.split(",")) if args.hosts else None
    for name in modules:
        for host in matrix_hosts(name):
            if (name, host) in done:
                cells = done[(name, host)]
            elif wanted is None or host in wanted:
                cells = run_matrix_row(name, host)
                with done_file.open("a") as f:
                    f.write(json.dumps([dataclasses.asdict(c) for c in cells]) + "\n")
            else:
                continue
            rows.append([name, host, *[cell_text(c) for c in cells]])
            print(
                f"{time.time() - started:6.0f}s {name:8} {host:22} " + " | ".join(c.status for c in cells),
                file=sys.stderr,
            )
    statuses = [cell.split(" ")[0].rstrip(":") for row in rows for cell in row[2:]]
    counts = {s: statuses.count(s) for s in ("ok", "refused", "fails")}
    env = environment("cpu")
    text = (
        "# Export matrix: attention module x host x format, free batch size and image size\n\n"
        f"{now()}; {env['hardware']}, torch {env['torch']}, onnxruntime and onnxscript of constraints.txt; "
        "the rows of several invocations (the .jsonl beside this file).\n\n"
        f"Command: `{command_line()}`\n\n"
        "Each model (random weights, random BatchNorm statistics, eval mode) is exported once with the batch size, "
        "height and width free (`torch.export.Dim.DYNAMIC`; TorchScript by tracing), loaded back in its runtime "
        "(ONNX Runtime CPU, `torch.export.load`, `torch.jit.load`) and compared with eager PyTorch on random inputs "
        "at batch 3 at the traced size and batch 1 at a larger, non-square size (ResNet-8: 32x32 then 48x40; "
        "ResNet-18s: 64x64 then 96x80). Modules are built into a CIFAR ResNet-8, or into attnlab's ResNet-18 where "
        "their default groups need more channels (ema, sge and the conv-replacement modules psa, sk, splat); gates "
        "are also attached (`attnlab.attach`, after every residual branch) to torchvision's ResNet-18. "
        "`ok (e)`: max abs logit error e <= 1e-3; `refused`: attnlab stops the export with that message (exit 2 in "
        "the CLI); `fails`: the export or the runtime failed or the outputs differ.\n\n"
        f"Totals: {counts}.\n\n" + markdown_table(["module", "host", *MATRIX_FORMATS], rows) + "\n"
    )
    atomic_write_text(Path(args.out), text)
    print(f"wrote {args.out}: {counts}")


if __name__ == "__main__":
    main()
