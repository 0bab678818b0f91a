"""One prepared GPU run (issue 18): a CUDA smoke test of every command, the GPU overhead table, the 17-flowers
seed experiment at full scale, then as much of the CIFAR-10 AlexNet-ECA and EPSANet-50 comparisons as the
time left allows, all in one wall-clock budget (9 minutes on one H200 with 16 CPU cores).

    PYTHONPATH=src python benchmarks/gpu_suite.py --data-root DATA      # the GPU run (DATA/flowers17, DATA/cifar10)
    PYTHONPATH=src python benchmarks/gpu_suite.py --dry-run             # tiny everything on the CPU (tests run it)

Phases, in order, each against the budget's clock (a phase that does not fit what is left is skipped and said so):

(a) smoke: train (ECA model, bf16 autocast, channels_last, torch.compile), eval, predict, export, analyze,
    compare and bench, in this process, on the flowers JPEGs; the first failure stops the suite with its log. A
    sync check counts the host-device synchronisations of training steps (CUDA only).
(b) the overhead table: ``attnlab bench`` ResNet-50 / SE / ECA / CBAM / EPSANet-50 vs timm, batch 256, bf16,
    channels_last, training and inference, eager; the compiled table (ResNet-50 / SE / ECA: each compile costs
    tens of seconds) runs after (c), in the time (c) leaves.
(c) configs/compare/flowers17-resnet50.yaml at full scale (keras-flowers, 224 px, 100 epochs, 3 seeds of
    ResNet-50, SE-ResNet-50, ECA-ResNet-50): the 9 runs train at once as 9 processes on the one GPU.
(d) configs/compare/cifar10-alexnet.yaml, then cifar10-epsanet.yaml, until the budget ends.

The training runs are eager (bf16, channels_last): torch.compile would cost each of the 9 flowers processes a
cold compile of ResNet-50 forward and backward (~40-60 s), more than it can save on their 3400 host-bound steps
(~10 ms each); it may pay for the long (d) runs, which the first GPU measurements should decide.

Training runs are ``attnlab train`` processes in compare's layout (``WORK/<phase>/runs/LABEL-sSEED``). Each is
stopped at an epoch boundary when its next epoch would end after the deadline: the suite watches metrics.jsonl
(written last when an epoch is committed) and sends SIGINT right after a new row, so nothing is lost (the CLI
exits 130; resume.safetensors holds the epoch). Run the suite again with the same --work and finished runs are
skipped, stopped ones resumed (exactly: ``attnlab train --resume``); ``attnlab compare --config ... --out
WORK/<phase>`` with the same flags continues them too. The work folder (runs, weights, image caches) is
/dev/shm when it has room: every epoch writes about 0.5 GB of checkpoints per ResNet-50 run, which a disk with
fsync would make the bottleneck. The results folder (no weights) gets README.md (hardware, versions, every
command with exit code and wall time, the summary next to the seeds' published numbers), the logs, the bench
tables and compare's reports.

On the device machine (one ``run`` call with timeout_s 600) the data must travel inside the repository
(../shared stays behind), and flowers17 (61 MB) nearly fills the 64 MiB a call may carry: CIFAR-10 cannot come
along, so (d) reports "no data" unless another call carries cifar10 instead. Here, before the call:

    mkdir -p .gpu-data && cp -r ../shared/data/flowers17 .gpu-data/ && echo /.gpu-data/ >> .git/info/exclude

then run, with carry [".gpu-data"] (results come back as at most 8 files, hence the tarball):

    PYTHONPATH=src PYTHONUNBUFFERED=1 timeout -k 20 570 python3 benchmarks/gpu_suite.py --data-root .gpu-data \\
        --results /tmp/gpu; tar -C /tmp -czf $OUT/gpu.tar.gz gpu

Resume states (90-300 MB a run) cannot come back from the machine (16 MiB a file), so stopped runs continue only
in a later call on the same, still warm machine (same --work); a fresh machine starts them again.

Wall-time estimate on one H200 (seconds; ESTIMATE below gives the sums, the measurements and the assumptions):
(a) 75 + (b) eager 60 + (c) 330 = 465 of the 540 s budget; the compiled table (110) runs only when (c) ends
sooner than estimated, and (d) gets what is left (~60 s: the CIFAR decode and a first AlexNet epoch), continued
by a rerun on the same machine. The first GPU run replaces these guesses with measured times (README.md).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import time
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch._dynamo
from PIL import Image

from attnlab.bench.compare import (
    WALL_TIME_FILE,
    CompareConfig,
    load_compare_config,
    parse_models,
    run_config,
    run_state,
    summarise,
    write_report,
)
from attnlab.cli import main as attnlab_main
from attnlab.engine.batches import splits_for
from attnlab.engine.config import resolve_config
from attnlab.engine.trainer import Trainer
from attnlab.utils import environment, markdown_table, now

REPO = Path(__file__).resolve().parent.parent

# ------------------------------------------------------------------------- every attnlab command of the suite
# The one place for the CLI spellings; {fields} are filled per call (paths are quoted).
COMMANDS = {
    # (a) smoke, on the flowers JPEGs at a small size
    "train": "train --model {smoke_model} --recipe keras-flowers --data {flowers} --img-size {smoke_size} "
    "--epochs 1 --device {device} --amp bf16 --channels-last --compile --workers {workers} --cache-dir {cache} "
    "--out {smoke}/run",
    "eval": "eval {smoke}/run --device {device} --amp bf16 --batch-size 16 --out {smoke}/eval",
    "predict": "predict {smoke}/run {flowers}/test --device {device} --amp bf16 --topk 3 --json {smoke}/predict.json",
    "export": "export {smoke}/run --format onnx --atol 1e-3 --out {smoke}/model.onnx",
    "analyze-activations": "analyze activations {smoke}/run --device {device} --images-per-class 2 --channels 8 "
    "--out {smoke}/activations",
    "analyze-ablate": "analyze ablate {smoke}/run --device {device} --modes identity --out {smoke}/ablate",
    "compare": "compare --models {smoke_models} --recipe keras-flowers --seeds 1 --epochs 1 --data {flowers} "
    "--img-size {smoke_size} --device {device} --amp bf16 --channels-last --cache-dir {cache} --out {smoke}/compare",
    "bench": "bench --models {smoke_models} --img-size {smoke_size} --batch-size 4 --device {device} --amp bf16 "
    "--channels-last --warmup 1 --repeats 2 --json {smoke}/bench.json",
    # (b) the overhead tables
    "bench-eager": "bench --models {bench_models} --vs-timm --batch-size {bench_batch} --img-size {bench_size} "
    "--device {device} --amp bf16 --channels-last --warmup 3 --repeats {bench_repeats} --iters {bench_iters} "
    "--json {results}/bench_eager.json",
    "bench-compiled": "bench --models {compiled_models} --compile --batch-size {bench_batch} --img-size {bench_size} "
    "--device {device} --amp bf16 --channels-last --warmup 3 --repeats {bench_repeats} --iters {bench_iters} "
    "--json {results}/bench_compiled.json",
    # (c), (d): one run of a comparison (its recipe overrides follow as flags); several run at once
    "train-run": "train --recipe {recipe} --model {model} --seed {seed} --out {run}",
    "train-resume": "train --resume {run}",
}


@dataclass(frozen=True)
class Scale:
    """How big each phase is: the GPU run, or the dry run's tiny version of the same control flow."""

    budget_s: float  # the whole suite, wall clock
    device: str
    smoke_model: str
    smoke_models: str  # compare and bench in the smoke test
    smoke_size: int
    bench_models: str
    compiled_models: str
    bench_batch: int
    bench_size: int
    bench_repeats: int
    bench_iters: int
    overrides: dict  # shared by every comparison run, on top of the compare configs'
    models: dict[str, list[str]] | None  # per phase; None: the compare config's
    seeds: list[int] | None  # None: the compare config's
    concurrency: int  # training processes at once
    grace_s: float  # after the deadline, a run still in an epoch gets this long before it loses that epoch
    min_launch_s: float  # a run is not started with less time than this left
    report_s: float  # kept for the report at the end
    estimate_s: dict[str, float]  # per phase, to skip what cannot fit


# Wall time of each phase on one H200 with 16 cores (seconds). Sources: (1) benchmarks/results/
# gpu_suite_cpu_measure.md, measured on this project's 2-core CPU machine (shared at load 10-15, nice'd, 1 thread, CPU
# time): JPEG decode 1.8-2.7 ms per flowers image at 224 px, 0.9-1.4 at 64 px, 0.5 per CIFAR image at 130 px; one
# ResNet-50 / SE / ECA training step at batch 32 dispatches about 850 / 1200 / 1050 non-view aten operations
# (kernels); one epoch's checkpoints of a ResNet-50 run are 360 MB (resume state with Adam + last weights; + best when
# it improves), written in 0.9-1.8 s to /dev/shm and 2.6-2.8 s to the disk with fsync here (wall time, loaded). (2)
# Published figures: the H200 does about 790 TFLOP/s on a bf16 matmul and 4.3 TB/s device copies (as measured on the
# H200 machines this project borrows; datasheet 989 TFLOP/s, 4.8 TB/s). Assumptions: eager PyTorch costs 5-15 us of
# host time per operation, so one batch-32 ResNet-50 process is host-bound at ~10 ms a step (~3000 img/s) whatever the
# GPU; a ResNet-50 training image is 24.6 GFLOP (3 x 8.2), so batch 32 is 0.79 TFLOP, ~2.5 ms at 40% of the matmul
# rate plus ~2 ms of memory-bound BatchNorm/ReLU/gating traffic, and small kernels waste SMs: ~6 ms of GPU per step,
# i.e. ~5000 img/s if the GPU were always busy. Several processes time-share the GPU (without MPS their kernels do not
# overlap), so the estimate takes 3000-3500 img/s for the 9 flowers runs together. Each ESTIMATE decides whether a
# phase starts.
ESTIMATE = {
    # imports and CUDA/cuDNN set-up in this process (~10 s), the 64 px flowers decode (1360 JPEGs x ~1 ms on 16
    # workers: <1 s), a 1-epoch eca_resnet20 run with torch.compile (inductor, fwd+bwd, ~30 s cold), eval, predict,
    # ONNX export (~10 s), the two analyses, a 2-run compare (~10 s), a tiny bench and the sync check (~10 s)
    "smoke": 75.0,
    # one process (~10 s to start), 9 models (5 ours + 4 timm twins, EPSANet has none) x (3 warm-up + 5 rounds x 2
    # iterations) x (a training step ~85 ms + an inference ~25 ms at batch 256) = 13 s, + memory probes and cuDNN
    # autotuning per model (~3 s each)
    "bench-eager": 60.0,
    # 9 runs x 100 epochs x 1088 images = 979k training images at 3000-3500 img/s for the 9 processes together =
    # 280-326 s, + 9 x 100 evaluations of 272 images (245k images, inference at ~3x the rate) = ~25 s, + start-up
    # and the 224 px decode before it (1360 x ~2 ms on 16 workers: <1 s) ~10 s; the checkpoints (0.36-0.46 GB per
    # run-epoch into /dev/shm, ~0.4 s at ~1 GB/s on a free core: ~40 s per run) overlap the other runs' GPU time
    "flowers17": 330.0,
    # 3 models x 2 graphs (training, inference) x ~15 s of inductor compile on 16 cores, + timing as above
    "bench-compiled": 110.0,
    # CIFAR-10 decode (60k JPEGs x 0.5 ms on 16 workers: ~2 s, a 3 GB cache at 130 px), then AlexNet at 128 px:
    # 6 runs x 50 epochs x 50k images = 15M images at ~25k img/s (~0.3 GFLOP a training image, host-bound at
    # batch 128) = ~600 s: a 9-minute run only starts it; a rerun with the same --work continues it
    "cifar10-alexnet": 600.0,
    # 6 runs x 10 epochs x 50k at 224 px (resized on the GPU from the 32 px cache) = 3M ResNet-50-class images
    # at ~3000 img/s = ~1000 s
    "cifar10-epsanet": 1000.0,
}

FULL = Scale(
    budget_s=540.0,
    device="cuda",
    smoke_model="eca_resnet20",
    smoke_models="resnet20,eca_resnet20",
    smoke_size=64,
    bench_models="resnet50,se_resnet50,eca_resnet50,cbam_resnet50,epsanet50",
    compiled_models="resnet50,se_resnet50,eca_resnet50",
    bench_batch=256,
    bench_size=224,
    bench_repeats=5,
    bench_iters=2,
    overrides={"device": "cuda", "amp": "bf16", "channels_last": True},
    models=None,
    seeds=None,
    concurrency=9,
    grace_s=10.0,
    min_launch_s=30.0,
    report_s=15.0,
    estimate_s=ESTIMATE,
)
DRY = Scale(
    budget_s=600.0,
    device="cpu",
    smoke_model="eca_resnet20",
    smoke_models="resnet20,eca_resnet20",
    smoke_size=16,
    bench_models="resnet20,eca_resnet20",
    compiled_models="resnet20",
    bench_batch=2,
    bench_size=16,
    bench_repeats=1,
    bench_iters=1,
    overrides={
        "device": "cpu",
        "amp": "bf16",
        "channels_last": True,
        "img_size": 16,
        "cache_size": 16,
        "epochs": 1,
        "batch_size": 4,
    },
    models={
        "flowers17": ["resnet20", "eca_resnet20"],
        "cifar10-alexnet": ["resnet20"],
        "cifar10-epsanet": ["resnet20"],
    },
    seeds=[0],
    concurrency=2,
    grace_s=float("inf"),
    min_launch_s=0.0,
    report_s=0.0,
    estimate_s={},
)

# The comparisons, in order: (phase, compare config, data folder under --data-root)
COMPARISONS = [
    ("flowers17", "configs/compare/flowers17-resnet50.yaml", "flowers17"),
    ("cifar10-alexnet", "configs/compare/cifar10-alexnet.yaml", "cifar10"),
    ("cifar10-epsanet", "configs/compare/cifar10-epsanet.yaml", "cifar10"),
]

# The seeds' published numbers (../shared/REFERENCES.md), shown next to ours.
PUBLISHED = {
    "flowers17": "ECA-ResNet-50 is 6.25 points above ResNet-50 and 1.1 above SE-ResNet-50 (single runs, 224 px, "
    "100 epochs, best val acc)",
    "cifar10-alexnet": "val acc 79.10 (AlexNet) vs 84.34 (AlexNet-ECA), train acc 77.14 vs 85.33 (50 epochs, 128 px); "
    "7,524,042 vs 7,524,061 parameters",
    "cifar10-epsanet": "EPSANet-50 ahead of ResNet-50 (a figure only, 224 px, 10 epochs)",
}


def flags(overrides: dict) -> list[str]:
    """TrainConfig overrides as ``attnlab train`` flags."""
    argv = []
    for name, value in overrides.items():
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            argv.append(flag if value else "--no-" + flag[2:])
        elif isinstance(value, list):
            argv += [flag, *map(str, value)]
        elif isinstance(value, dict):
            argv += [flag, json.dumps(value)]
        else:
            argv += [flag, str(value)]
    return argv


def command(name: str, **values) -> list[str]:
    """The argv (after ``attnlab``) of COMMANDS[name] with ``values`` filled in."""
    quoted = {key: shlex.quote(str(value)) for key, value in values.items()}
    return shlex.split(COMMANDS[name].format(**quoted))


def listen_to_sigint() -> None:
    """In a child before exec: SIGINT raises KeyboardInterrupt there even when this process ignores it (as a
    background job of a non-interactive shell does; Python leaves an inherited SIG_IGN alone)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def read_history(run_dir: Path) -> list[dict]:
    """The metrics rows of a run's committed epochs."""
    path = run_dir / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def count_lines(path: Path) -> int:
    try:
        return path.read_text().count("\n")
    except FileNotFoundError:
        return 0


# --------------------------------------------------------------------------------------------- training runs


@dataclass
class Job:
    """One ``attnlab train`` process of a comparison run, stopped at an epoch boundary before a deadline."""

    label: str
    seed: int
    run_dir: Path
    argv: list[str]
    epochs: int
    process: subprocess.Popen | None = None
    code: int | None = None
    status: str = "waiting"
    started: float = 0.0
    wall_s: float = 0.0
    first_epoch: int = 0  # epochs done when this process started
    boundaries: list[float] = field(default_factory=list)  # monotonic time of each epoch seen to end
    interrupted_at: float | None = None

    @property
    def epochs_done(self) -> int:
        return count_lines(self.run_dir / "metrics.jsonl")

    def start(self, env: dict, log: Path) -> None:
        self.first_epoch = self.epochs_done
        self.started = time.monotonic()
        self.boundaries = [self.started]
        with log.open("a") as f:
            f.write(f"$ attnlab {shlex.join(self.argv)}\n")
            f.flush()
            self.process = subprocess.Popen(
                [sys.executable, "-m", "attnlab.cli", *self.argv],
                env=env,
                stdout=f,
                stderr=subprocess.STDOUT,
                preexec_fn=listen_to_sigint,
            )
        self.status = "running"

    def stop(self, now: float) -> None:
        """SIGINT: the CLI stops, keeps the last committed epoch and exits 130."""
        if self.interrupted_at is None:
            self.process.send_signal(signal.SIGINT)
            self.interrupted_at = now

    def poll(self, now: float, deadline: float, grace_s: float, kill_after_s: float = 30.0) -> bool:
        """Watch the run; True once its process has ended."""
        code = self.code = self.process.poll()
        if code is not None:
            self.wall_s = now - self.started
            done = self.epochs_done
            if code == 0:
                self.status = "done"
            elif self.interrupted_at is not None:  # 130, or killed when SIGINT did not end it in time
                self.status = f"stopped after epoch {done}/{self.epochs} (resumable{'' if code == 130 else ', killed'})"
            else:
                self.status = f"FAILED (exit {code}) after epoch {done}/{self.epochs}"
            wall_file = self.run_dir / WALL_TIME_FILE  # as compare keeps it, so its report shows wall s/run
            if self.run_dir.is_dir():
                before = json.loads(wall_file.read_text())["wall_seconds"] if wall_file.is_file() else 0.0
                wall_file.write_text(json.dumps({"wall_seconds": before + self.wall_s}))
            return True
        done = self.epochs_done
        if done > self.first_epoch + len(self.boundaries) - 1:  # an epoch was committed since the last look
            self.boundaries.append(now)
            epoch_s = self.boundaries[-1] - self.boundaries[-2]  # the first one includes the start-up: cautious
            if done < self.epochs and now + epoch_s > deadline:
                self.stop(now)  # right after the commit: nothing is lost
        if self.interrupted_at is None and now > deadline + grace_s:
            self.stop(now)  # the epoch in progress is lost; the run resumes from the last committed one
        elif self.interrupted_at is not None and now > self.interrupted_at + kill_after_s:
            self.process.kill()  # resume repairs whatever the kill left half-written
        return False


def run_jobs(jobs: list[Job], *, deadline: float, scale: Scale, env: dict, logs: Path, poll_s: float = 0.2) -> None:
    """Run ``jobs`` with at most ``scale.concurrency`` processes at once until they end or the deadline stops
    them (each logs to ``logs/<run folder name>.log``); jobs that cannot start with ``scale.min_launch_s`` left
    stay unstarted."""
    waiting, running = list(jobs), []
    try:
        while waiting or running:
            now = time.monotonic()
            while waiting and len(running) < scale.concurrency and deadline - now > scale.min_launch_s:
                job = waiting.pop(0)
                job.start(env, logs / f"{job.run_dir.name}.log")
                running.append(job)
            if waiting and deadline - now <= scale.min_launch_s:
                for job in waiting:
                    job.status = f"not started: no time left (after epoch {job.epochs_done}/{job.epochs})"
                waiting = []
            running = [job for job in running if not job.poll(now, deadline, scale.grace_s)]
            time.sleep(poll_s)
    except BaseException:
        for job in running:
            job.stop(time.monotonic())
        for job in running:
            try:
                job.process.wait(15)
            except subprocess.TimeoutExpired:
                job.process.kill()
                job.process.wait()
            job.poll(time.monotonic(), deadline, scale.grace_s)
        raise


# ------------------------------------------------------------------------------------------------ the suite


@dataclass
class Record:
    """One command the suite ran."""

    phase: str
    name: str
    argv: list[str]
    code: int | None
    wall_s: float
    log: str
    note: str = ""


class Suite:
    def __init__(self, args: argparse.Namespace, scale: Scale):
        self.args, self.scale = args, scale
        self.results, self.work = Path(args.results), Path(args.work)
        self.logs = self.results / "logs"
        self.start, self.started_at = time.monotonic(), now()
        self.end = self.start + (args.budget or scale.budget_s)
        self.records: list[Record] = []
        self.phases: list[dict] = []
        self.sections: list[str] = []
        self.env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
            "OMP_NUM_THREADS": "1",  # several processes share the cores; their CPU work is launching kernels
            "PYTHONUNBUFFERED": "1",
        }
        if args.dry_run:
            self.env["TORCH_COMPILE_DISABLE"] = "1"  # compiling C++ for the CPU takes minutes; the flag still parses
        self.data_root = Path(args.data_root)
        if args.dry_run:
            self.data_root = self.work / "data"
            make_tiny_data(self.data_root)

    def left(self) -> float:
        return self.end - time.monotonic()

    def values(self) -> dict:
        scale = self.scale
        return {
            "device": scale.device,
            "workers": min(16, os.cpu_count() or 1) if not self.args.dry_run else 0,
            "cache": self.work / "cache",
            "smoke": self.work / "smoke",
            "flowers": self.data_root / "flowers17",
            "results": self.results,
            "smoke_model": scale.smoke_model,
            "smoke_models": scale.smoke_models,
            "smoke_size": scale.smoke_size,
            "bench_models": scale.bench_models,
            "compiled_models": scale.compiled_models,
            "bench_batch": scale.bench_batch,
            "bench_size": scale.bench_size,
            "bench_repeats": scale.bench_repeats,
            "bench_iters": scale.bench_iters,
        }

    # ------------------------------------------------------------------------------------------- running

    def in_process(self, phase: str, name: str) -> Record:
        """COMMANDS[name] through the CLI's main() in this process (imports and CUDA set-up paid once)."""
        argv = command(name, **self.values())
        log = self.logs / f"{phase}-{name}.log"
        start = time.monotonic()
        os.environ["ATTNLAB_DEBUG"] = "1"  # errors keep their traceback (into the log)
        with log.open("w") as f, contextlib.redirect_stdout(f), contextlib.redirect_stderr(f):
            print(f"$ attnlab {shlex.join(argv)}", flush=True)
            try:
                code = attnlab_main(argv)
            except SystemExit as err:  # argparse: a flag this CLI does not know
                code = err.code if isinstance(err.code, int) else 2
            except Exception:
                traceback.print_exc()
                code = 1
            finally:
                os.environ.pop("ATTNLAB_DEBUG")
        record = Record(phase, name, argv, code, time.monotonic() - start, str(log.relative_to(self.results)))
        self.records.append(record)
        return record

    def subprocess(self, phase: str, name: str, timeout_s: float) -> Record:
        """COMMANDS[name] as an ``attnlab`` process, killed after ``timeout_s``."""
        argv = command(name, **self.values())
        log = self.logs / f"{phase}-{name}.log"
        start, code, note = time.monotonic(), None, ""
        with log.open("w") as f:
            f.write(f"$ attnlab {shlex.join(argv)}\n")
            f.flush()
            try:
                code = subprocess.run(
                    [sys.executable, "-m", "attnlab.cli", *argv],
                    env=self.env,
                    stdout=f,
                    stderr=subprocess.STDOUT,
                    timeout=max(timeout_s, 1.0),
                ).returncode
            except subprocess.TimeoutExpired:
                note = f"killed after {timeout_s:.0f} s (the time left)"
        record = Record(phase, name, argv, code, time.monotonic() - start, str(log.relative_to(self.results)), note)
        self.records.append(record)
        return record

    def phase(self, name: str, status: str, start: float, detail: str = "") -> None:
        self.phases.append({"phase": name, "status": status, "wall_s": time.monotonic() - start, "detail": detail})
        self.write_readme()

    def fits(self, name: str) -> bool:
        """Whether phase ``name``'s estimate fits the time left (phases without an estimate always do)."""
        needed = self.scale.estimate_s.get(name, 0.0) + self.scale.report_s
        if needed <= self.left():
            return True
        self.phase(name, "skipped", time.monotonic(), f"needs ~{needed:.0f} s, {self.left():.0f} s left")
        return False

    # -------------------------------------------------------------------------------------------- phases

    def smoke(self) -> bool:
        """(a): every command once; False (and the failing log in README.md) at the first failure."""
        start = time.monotonic()
        shutil.rmtree(self.work / "smoke", ignore_errors=True)  # the suite's own scratch runs
        if not (self.data_root / "flowers17").is_dir():
            self.phase("smoke", "FAILED", start, f"no flowers17 at {self.data_root}: pass --data-root")
            return False
        for name in ("train", "eval", "predict", "export", "analyze-activations", "analyze-ablate", "compare", "bench"):
            record = self.in_process("smoke", name)
            if record.code != 0:
                tail = (self.results / record.log).read_text()[-3000:]
                self.phase("smoke", "FAILED", start, f"`{name}` exited {record.code}:\n\n```\n{tail}\n```")
                return False
        sync = self.sync_check()
        if torch.cuda.is_initialized():
            torch.cuda.empty_cache()  # the smoke test's memory goes back to the runs that follow
        self.phase("smoke", "passed", start, sync)
        return True

    def sync_check(self) -> str:
        """Host-device synchronisations in one epoch of smoke training (CUDA's sync debug mode warns on each)."""
        config = resolve_config(
            "keras-flowers",
            model=self.scale.smoke_model,
            data=str(self.data_root / "flowers17"),
            img_size=self.scale.smoke_size,
            cache_dir=str(self.work / "cache"),
            out=str(self.work / "smoke" / "sync-check"),
            **{k: v for k, v in self.scale.overrides.items() if k in ("device", "amp", "channels_last")},
        )
        log = self.logs / "smoke-sync-check.log"
        with log.open("w") as f, contextlib.redirect_stdout(f), contextlib.redirect_stderr(f):  # no progress bar
            trainer = Trainer(config)
            trainer.train_epoch(0)  # cuDNN autotuning and first-call set-up happen here
            if trainer.device.type != "cuda":
                return "sync check: CUDA only (skipped on the CPU)"
            torch.cuda.synchronize()
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                torch.cuda.set_sync_debug_mode("warn")
                try:
                    trainer.train_epoch(1)
                finally:
                    torch.cuda.set_sync_debug_mode("default")
        syncs = [str(w.message).splitlines()[0] for w in caught if "synchroniz" in str(w.message)]
        steps = len(trainer.train_batches)
        kinds = sorted(set(syncs))[:5]
        return (
            f"sync check: {len(syncs)} host-device syncs in one epoch of {steps} steps (reading the epoch's sums "
            f"takes a few; a sync per step would show as >= {steps})"
            + (f" (first kinds: {'; '.join(kinds)})" if kinds else "")
        )

    def bench(self, name: str) -> None:
        start = time.monotonic()
        record = self.subprocess("bench", name, timeout_s=self.left() - self.scale.report_s)
        log = (self.results / record.log).read_text()
        table = log[log.find("| model") :] if "| model" in log else ""
        if record.code == 0:
            (self.results / f"{name.replace('-', '_')}.md").write_text(log)
            self.sections.append(f"## {name}\n\n`attnlab {shlex.join(record.argv)}`\n\n{table}\n")
        status = "done" if record.code == 0 else f"FAILED ({record.note or f'exit {record.code}'})"
        self.phase(name, status, start, f"log {record.log}")

    def comparison(self, phase: str, config_file: str, data: str) -> None:
        """(c) and (d): the runs of one compare config, several processes at once, until the deadline."""
        start = time.monotonic()
        data_dir = self.data_root / data
        if not data_dir.is_dir():
            self.phase(phase, "skipped", start, f"no data at {data_dir}")
            return
        spec = load_compare_config(REPO / config_file)
        spec.out = str(self.work / phase)
        spec.overrides.update({**self.scale.overrides, "data": str(data_dir), "cache_dir": str(self.work / "cache")})
        if self.scale.models:
            spec.models = parse_models(self.scale.models[phase])
        spec.seeds = self.scale.seeds or spec.seeds
        self.warm_cache(spec)
        jobs = []
        for entry in spec.models:
            for seed in spec.seeds:
                config = run_config(spec, entry, seed)
                state = run_state(config)  # raises if the folder holds a run with other settings
                run = Path(config.out)
                argv = (
                    command("train-resume", run=run)
                    if state == "partial"
                    else command("train-run", recipe=spec.recipe, model=entry.model, seed=seed, run=run)
                    + flags({**spec.overrides, **entry.overrides})
                )
                job = Job(entry.label, seed, run, argv, config.epochs)
                if state == "done":
                    job.status = "done (earlier)"
                jobs.append(job)
        logs = self.logs / phase
        logs.mkdir(exist_ok=True)
        todo = [job for job in jobs if job.status == "waiting"]
        try:
            run_jobs(todo, deadline=self.end - self.scale.report_s, scale=self.scale, env=self.env, logs=logs)
        finally:  # also when interrupted: the runs were stopped at an epoch boundary or resume from the last one
            for job in todo:
                log = f"logs/{phase}/{job.run_dir.name}.log"
                self.records.append(Record(phase, job.run_dir.name, job.argv, job.code, job.wall_s, log, job.status))
            self.report_comparison(phase, spec, jobs, start)

    def warm_cache(self, spec: CompareConfig) -> None:
        """Decode the images once (DataLoader workers on every core) before the runs start together: else each
        run would decode them all itself at the same time."""
        config = run_config(spec, spec.models[0], spec.seeds[0])
        config.workers = self.values()["workers"]
        splits = splits_for(config)
        for images in (splits.train, splits.val):
            if images.in_memory:
                images.cache  # noqa: B018 (decodes and writes the cache file)

    def report_comparison(self, phase: str, spec: CompareConfig, jobs: list[Job], start: float) -> None:
        """Per run and per model (mean ± std over seeds of what the runs reached) next to the published numbers;
        compare's report.md and plots once every run has an epoch."""
        histories = {job.run_dir: read_history(job.run_dir) for job in jobs}
        runs = [
            [
                job.label,
                str(job.seed),
                f"{len(h)}/{job.epochs}",
                f"{100 * h[-1]['val_acc']:.2f}" if h else "-",
                f"{100 * max(r['val_acc'] for r in h):.2f}" if h else "-",
                f"{statistics.median(r['train_images_per_s'] for r in h):.0f}" if h else "-",
                f"{job.wall_s:.0f}",
                job.status,
            ]
            for job, h in ((job, histories[job.run_dir]) for job in jobs)
        ]
        models, baseline = [], None
        for entry in spec.models:
            runs_of = [histories[job.run_dir] for job in jobs if job.label == entry.label and histories[job.run_dir]]
            best = [100 * max(r["val_acc"] for r in h) for h in runs_of]
            mean = statistics.fmean(best) if best else None
            baseline = mean if entry is spec.models[0] else baseline
            models.append(
                [
                    entry.label,
                    str(len(best)),
                    ", ".join(str(len(h)) for h in runs_of) or "-",
                    "-" if mean is None else f"{mean:.2f} ± {statistics.stdev(best) if len(best) > 1 else 0:.2f}",
                    "-" if mean is None or baseline is None else f"{mean - baseline:+.2f}",
                ]
            )
        text = "\n".join(
            [
                f"## {phase}",
                "",
                f"Published (the seed): {PUBLISHED[phase]}.",
                "",
                markdown_table(
                    ["model", "seeds", "epochs reached", "best val acc %", f"Δ vs {spec.models[0].label}"], models
                ),
                "",
                markdown_table(
                    ["model", "seed", "epochs", "val acc", "best val acc", "train img/s", "wall s", "status"], runs
                ),
                "",
            ]
        )
        if all(histories.values()):
            try:
                write_report(
                    summarise(spec), self.results / phase, preamble=f"Runs in {spec.out} (see ../README.md).\n\n"
                )
                text += f"\nCompare's report (last-epoch accuracies, plots): [{phase}/report.md]({phase}/report.md)\n"
            except (ValueError, OSError, KeyError) as err:
                text += f"\nCompare's report failed: {type(err).__name__}: {err}\n"
        self.sections.append(text)
        statuses = [job.status for job in jobs]
        failed = any(s.startswith("FAILED") for s in statuses)
        status = "FAILED" if failed else "done" if all(s.startswith("done") for s in statuses) else "partial"
        self.phase(phase, status, start, f"{len(jobs)} runs, logs in logs/{phase}/")

    # --------------------------------------------------------------------------------------------- report

    def write_readme(self) -> None:
        """README.md: rewritten after every phase, so a suite killed from outside leaves what it finished."""
        env = environment(self.scale.device)
        lines = [
            "# GPU suite (issue 18)" + (" - DRY RUN (tiny models on the CPU: no result)" if self.args.dry_run else ""),
            "",
            f"- Hardware: {env['hardware']} ({env['device']}), {env['cpu_cores']} CPU cores; Python {env['python']}, "
            f"torch {env['torch']} (CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}), torchvision "
            f"{env['torchvision']}, timm {env['timm']}, attnlab {env['attnlab']}, git {env['git_commit']}.",
            f"- Command: `{shlex.join([Path(sys.executable).name, *sys.argv])}`; started {self.started_at}; budget "
            f"{self.end - self.start:.0f} s, {time.monotonic() - self.start:.0f} s used so far.",
            f"- Work folder (runs, checkpoints, caches): {self.work}"
            + ("" if str(self.work).startswith("/dev/shm") else " (not /dev/shm: checkpoint writes may be slow)")
            + "; nvidia-smi: environment.txt.",
            "",
            "## Phases",
            "",
            markdown_table(
                ["phase", "status", "wall s", "detail"],
                [[p["phase"], p["status"], f"{p['wall_s']:.1f}", p["detail"].split("\n")[0]] for p in self.phases],
            ),
            "",
            *(p["detail"] for p in self.phases if "\n" in p["detail"]),
            "",
            *self.sections,
            "## Commands",
            "",
            markdown_table(
                ["phase", "name", "exit", "wall s", "note", "command"],
                [
                    [
                        r.phase,
                        r.name,
                        "-" if r.code is None else str(r.code),
                        f"{r.wall_s:.1f}",
                        r.note,
                        f"`attnlab {shlex.join(r.argv)}`",
                    ]
                    for r in self.records
                ],
            ),
            "",
        ]
        (self.results / "README.md").write_text("\n".join(lines))

    def write_environment(self) -> None:
        env = environment(self.scale.device)
        try:
            smi = subprocess.run(["nvidia-smi"], capture_output=True, text=True, timeout=30).stdout
        except (OSError, subprocess.SubprocessError):
            smi = "nvidia-smi: not available"
        (self.results / "environment.txt").write_text(json.dumps(env, indent=2) + "\n\n" + smi)

    def run(self) -> int:
        self.logs.mkdir(parents=True, exist_ok=True)
        self.write_environment()
        signal.signal(signal.SIGTERM, interrupt)  # a timeout's SIGTERM: stop the runs cleanly, write the report
        try:
            if not self.smoke():
                return 1
            if self.fits("bench-eager"):
                self.bench("bench-eager")
            self.comparison(*COMPARISONS[0])
            if self.fits("bench-compiled"):
                self.bench("bench-compiled")
            for phase in COMPARISONS[1:]:
                if self.left() > self.scale.min_launch_s + self.scale.report_s:
                    self.comparison(*phase)
                else:
                    self.phase(phase[0], "skipped", time.monotonic(), f"{self.left():.0f} s left")
        except KeyboardInterrupt:
            self.phase("interrupted", "stopped", time.monotonic(), "the suite was interrupted (Ctrl-C or SIGTERM)")
            return 130
        finally:
            self.write_readme()
        failed = [p for p in self.phases if p["status"].startswith("FAILED")]
        return 1 if failed else 0


def interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def make_tiny_data(root: Path) -> None:
    """The dry run's data: flowers17 and cifar10 stand-ins, 2 classes x (4 train + 2 test) JPEGs of 24 px."""
    generator = torch.Generator().manual_seed(0)
    for name in ("flowers17", "cifar10"):
        for split, count in (("train", 4), ("test", 2)):
            for label in ("0_a", "1_b"):
                folder = root / name / split / label
                folder.mkdir(parents=True, exist_ok=True)
                for i in range(count):
                    pixels = torch.randint(0, 256, (24, 24, 3), generator=generator, dtype=torch.uint8)
                    Image.fromarray(pixels.numpy()).save(folder / f"{i}.jpg")


def default_work() -> Path:
    """/dev/shm when it has room for the runs' checkpoints (no fsync to a disk per epoch), else runs/."""
    shm = Path("/dev/shm")
    if shm.is_dir() and shutil.disk_usage(shm).free > 20 * 2**30:  # peak use: ~16 GB with (d)
        return shm / "attnlab-gpu-suite"
    return REPO / "runs" / "gpu-suite"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true", help="tiny models, 1 epoch, a few images, CPU")
    parser.add_argument("--data-root", default=str(REPO.parent / "shared" / "data"), help="holds flowers17/, cifar10/")
    parser.add_argument("--results", help="results folder (default benchmarks/results/gpu, dry run: WORK/results)")
    parser.add_argument("--work", help="runs and caches (default /dev/shm/attnlab-gpu-suite or runs/gpu-suite)")
    parser.add_argument("--budget", type=float, help="wall-clock seconds for the whole suite (default 540)")
    parser.add_argument("--overwrite", action="store_true", help="replace the results folder's README.md")
    args = parser.parse_args(argv)
    args.work = args.work or str(default_work())
    args.results = args.results or str(
        Path(args.work) / "results" if args.dry_run else REPO / "benchmarks" / "results" / "gpu"
    )
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if (Path(args.results) / "README.md").exists() and not args.overwrite:
        print(f"{args.results} holds results already; pass --overwrite or another --results", file=sys.stderr)
        return 2
    if not args.dry_run and not torch.cuda.is_available():
        print("no CUDA device: the suite is a GPU run (use --dry-run to check it on the CPU)", file=sys.stderr)
        return 2
    if args.dry_run:
        torch._dynamo.config.disable = True  # as TORCH_COMPILE_DISABLE=1 for the runs: --compile runs eagerly
    code = Suite(args, DRY if args.dry_run else FULL).run()
    print((Path(args.results) / "README.md").read_text())
    return code


if __name__ == "__main__":
    sys.exit(main())
