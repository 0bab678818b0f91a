"""What a training run shows people: the epoch line, the plots and their titles, TensorBoard scalars, workers."""

import re
import sys
from pathlib import Path

import pytest
import torch

from attnlab import cli
from attnlab.engine import plots
from attnlab.engine.config import TrainConfig
from attnlab.engine.trainer import METRICS, Trainer, epoch_line, train
from attnlab.utils import default_workers, new_figure, progress_bar

ROW = {
    "epoch": 3,
    "train_loss": 0.5,
    "train_acc": 0.8,
    "val_loss": 0.6,
    "val_acc": 0.75,
    "val_top5": 0.99,
    "lr": 0.0123,
    "epoch_seconds": 2.0,
    "train_images_per_s": 700.0,
}


@pytest.fixture
def figures(monkeypatch) -> list:
    """The matplotlib figures the engine's plots draw, kept for their titles."""
    drawn = []
    monkeypatch.setattr(plots, "new_figure", lambda *size: drawn.append(new_figure(*size)) or drawn[-1])
    return drawn


def titles(figure) -> list[str]:
    return [figure.get_suptitle(), *(ax.get_title() for ax in figure.axes)]


def test_epoch_line_shows_top5_only_with_more_than_5_classes_and_the_time_left():
    line = epoch_line(ROW, 10, 10, eta_seconds=125, best=True)
    assert "top-5 0.9900" in line and "lr 1.23e-02" in line and line.endswith("eta 2m05s  *best")
    assert "top-5" not in epoch_line(ROW, 10, 5, eta_seconds=5, best=False)
    assert "eta" not in epoch_line({**ROW, "epoch": 10}, 10, 10, eta_seconds=0, best=False)


def test_run_prints_no_class_dump_and_logs_the_last_steps_lr(tiny_config, figures, monkeypatch, capsys):
    rates = []
    step = Trainer.train_step

    def recording_step(self, images, labels):
        rates.append(self.optimizer.param_groups[0]["lr"])
        return step(self, images, labels)

    monkeypatch.setattr(Trainer, "train_step", recording_step)
    config = tiny_config(epochs=2)
    last = train(config)
    out = capsys.readouterr().out
    assert "{" not in out  # was: classes (10): {"0": 0, ...}
    assert "1438 training and 359 validation images of 10 classes (0, 1, 2, 3, 4, ..., 9)" in out
    epoch_lines = [line for line in out.splitlines() if line.startswith("epoch ")]
    assert len(epoch_lines) == 2 and re.search(r"eta \d+s", epoch_lines[0]) and "eta" not in epoch_lines[1]
    steps = len(rates) // 2
    assert last["lr"] == rates[-1] != rates[steps]  # the epoch's last step's rate, not its first's
    first = [float(v) for v in (Path(config.out) / "metrics.csv").read_text().splitlines()[1].split(",")]
    assert first[list(METRICS).index("lr")] == rates[steps - 1]

    assert cli.main(["eval", config.out, "--device", "cpu"]) == 0
    curves, confusion, predictions, evaluated = figures
    assert any("best checkpoint, epoch 2 of 2, on digits" in title for title in titles(evaluated))
    assert [ax.get_yscale() for ax in curves.axes] == ["linear", "log", "linear"]
    assert "learning rate" in curves.axes[2].get_title()
    assert all(list(ax.get_xticks()) == [1, 2] for ax in curves.axes)  # whole epochs, not 1.0, 1.2, ...
    for figure in (confusion, predictions):
        assert any("last checkpoint, epoch 2 of 2" in title for title in titles(figure))


def test_tensorboard_scalars_are_written_when_the_package_is_installed(tiny_config):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    config = tiny_config(epochs=2)
    train(config)
    events = EventAccumulator(str(Path(config.out) / "tensorboard")).Reload()
    tags = set(events.Tags()["scalars"])
    assert {"loss/train", "loss/val", "accuracy/train", "accuracy/val", "lr"} <= tags
    assert [event.step for event in events.Scalars("loss/val")] == [1, 2]


def test_a_run_without_tensorboard_installed_trains_and_writes_no_events(tiny_config, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import raises ImportError
    config = tiny_config(epochs=1)
    assert train(config)["epoch"] == 1
    assert not (Path(config.out) / "tensorboard").exists()
    assert (Path(config.out) / "metrics.csv").is_file()


def test_plot_curves_keeps_a_loss_spike_from_flattening_the_panel(figures, tmp_path):
    history = [{**ROW, "epoch": e, "val_loss": loss} for e, loss in enumerate([2.0, 2066.0, 1.5, 0.8], 1)]
    plots.plot_curves(history, tmp_path / "curves.png")
    loss_axis = figures[0].axes[1]
    assert loss_axis.get_yscale() == "log" and loss_axis.get_ylim()[0] < 0.8
    assert list(loss_axis.get_xticks()) == [1, 2, 3, 4]


def test_confusion_counts_are_readable_and_say_which_checkpoint(figures, tmp_path):
    confusion = torch.tensor([[30, 2, 0], [1, 25, 4], [0, 0, 38]])
    metadata = {"epoch": 7, "config": {"epochs": 10}}
    source = plots.checkpoint_label(Path("run/best.safetensors"), metadata)
    assert source == "best checkpoint, epoch 7 of 10"
    assert plots.checkpoint_label("run/last.safetensors", metadata).startswith("last checkpoint")
    plots.plot_confusion(confusion, ["a", "b", "c"], tmp_path / "c.png", source)
    (ax,) = figures[0].axes
    assert "best checkpoint, epoch 7 of 10" in ax.get_title()
    cells = {text.get_text(): text for text in ax.texts}
    assert cells["38"].get_color() == "white" and cells["4"].get_color() == "black"
    assert min(text.get_fontsize() for text in ax.texts) >= 10  # was 6 points for every size


def test_workers_default_to_cpus_less_one_and_none_on_two_cpus(monkeypatch):
    expected = {1: 0, 2: 0, 3: 2, 4: 3, 16: 8, 64: 8}
    for cpus, workers in expected.items():
        monkeypatch.setattr("os.sched_getaffinity", lambda pid, n=cpus: set(range(n)), raising=False)
        assert default_workers() == workers
    assert TrainConfig.__dataclass_fields__["workers"].default >= 0


def test_progress_bars_show_only_on_a_terminal_and_on_rank_0(monkeypatch):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)
    assert progress_bar(range(3), desc="x").disable
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert not progress_bar(range(3), desc="x").disable
    assert progress_bar(range(3), desc="x", enabled=False).disable


def test_readme_documents_every_metrics_column():
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    missing = [name for name in METRICS if f"`{name}`" not in readme]
    assert not missing, f"README does not describe the metrics.csv columns {missing}"
