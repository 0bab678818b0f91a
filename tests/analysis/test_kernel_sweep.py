import pytest

from attnlab.analysis.kernel_sweep import (
    plot_kernel_sweep,
    resolved_kernel_sizes,
    settings_text,
    sweep_entries,
    sweep_markdown,
    sweep_rows,
)


def test_resolved_kernel_sizes():
    assert resolved_kernel_sizes("eca_resnet20") == [3] * 9  # psi(16) = psi(32) = psi(64) = 3
    assert resolved_kernel_sizes("eca_resnet20", attention_kwargs={"gamma": 1}) == [5] * 3 + [7] * 6  # |log2 C + 1|_odd
    assert resolved_kernel_sizes("resnet20", "eca", {"k_size": 7}) == [7] * 9
    with pytest.raises(ValueError, match="no ECA modules"):
        resolved_kernel_sizes("se_resnet20")


def test_entries_cover_adaptive_and_every_k():
    entries = sweep_entries("eca_resnet20", [3, 5], attention_kwargs={"gamma": 2, "k_size": 9})
    assert [e.label for e in entries] == ["adaptive", "k3", "k5"]
    assert [e.overrides["attention_kwargs"] for e in entries] == [
        {"gamma": 2},
        {"gamma": 2, "k_size": 3},
        {"gamma": 2, "k_size": 5},
    ]
    with pytest.raises(ValueError, match="k_size must be an odd integer"):
        sweep_entries("eca_resnet20", [4])
    with pytest.raises(ValueError, match="at least one kernel size"):
        sweep_entries("eca_resnet20", [])


def test_rows_table_and_plot_from_a_compare_report(tmp_path):
    def row(label, kwargs, accs):
        mean = sum(accs) / len(accs)
        std = (sum((a - mean) ** 2 for a in accs) / (len(accs) - 1)) ** 0.5
        return {
            "label": label,
            "overrides": {"attention_kwargs": kwargs},
            "val_acc": {"mean": mean, "std": std, "per_seed": accs},
        }

    report = {
        "models": [
            row("adaptive", {}, [0.5, 0.6]),
            row("k5", {"k_size": 5}, [0.52, 0.54]),
            row("k3", {"k_size": 3}, [0.4, 0.4]),
        ]
    }
    rows = sweep_rows(report)
    assert [(r["setting"], r["k"]) for r in rows] == [("adaptive", None), ("k5", 5), ("k3", 3)]
    table = sweep_markdown(rows, [3, 5, 5])
    assert "| adaptive (k = 3/5) | 2 | 55.00 +- 7.07 | +0.00 | 50.00, 60.00 |" in table
    assert "| k = 3 | 2 | 40.00 +- 0.00 | -15.00 | 40.00, 40.00 |" in table
    assert plot_kernel_sweep(rows, [3], tmp_path / "sweep.png").stat().st_size > 0


def test_plot_title_and_table_show_the_settings_as_text_not_json(tmp_path, monkeypatch):
    from attnlab.analysis import kernel_sweep as module
    from attnlab.utils import new_figure

    figures = []
    monkeypatch.setattr(module, "new_figure", lambda *size: figures.append(new_figure(*size)) or figures[-1])
    one_seed = {"mean": 0.5, "std": 0.0, "per_seed": [0.5]}
    rows = [{"setting": "adaptive", "k": None, "val_acc": one_seed}, {"setting": "k3", "k": 3, "val_acc": one_seed}]
    settings = settings_text({"data": "flowers", "epochs": 3, "milestones": [2], "extra": {"gamma": 2}})
    assert settings == "data: flowers, epochs: 3, milestones: [2], extra: gamma=2"
    plot_kernel_sweep(rows, [3], tmp_path / "sweep.png", "eca_resnet20, recipe fast", settings)
    (figure,) = figures
    titles = [figure.get_suptitle(), *(ax.get_title() for ax in figure.axes)]
    assert "eca_resnet20, recipe fast" in titles and "epochs: 3" in figure.get_suptitle()
    assert not any("{" in title for title in titles)
    table = sweep_markdown(rows, [3], "t", settings)
    assert "Settings: data: flowers" in table and "+-" not in table  # one seed: no spread to show
