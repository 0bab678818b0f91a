"""What ``attnlab compare`` prints and writes for people: the table, the noise caveat, no ± without a spread."""

import statistics

import pytest

from attnlab.bench.compare import compare_table, noise_caveat, report_markdown

ENVIRONMENT = dict.fromkeys(("hardware", "device", "torch", "attnlab", "git_commit", "command", "time"), "x")


def stats(values: list[float]) -> dict:
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return {"mean": statistics.fmean(values), "std": std, "per_seed": values}


def report(seeds: list[int], accuracies: dict[str, list[float]]) -> dict:
    """A compare report (as ``summarise`` returns it) of made-up accuracies, one list per model over ``seeds``."""
    rows = []
    for label, values in accuracies.items():
        rows.append(
            {
                "label": label,
                "img_size": 8,
                "val_acc": stats(values),
                "best_val_acc": stats(values),
                "train_acc": stats(values),
                "val_images": 100,
                "params": 270_000,
                "flops": 40_000_000,
                "train_images_per_s": 900.0,
                "infer_images_per_s": 4000.0,
                "wall_seconds": 12.0,
            }
        )
    baseline = rows[0]["val_acc"]["mean"]
    for row in rows:
        row["delta_val_points"] = 100 * (row["val_acc"]["mean"] - baseline)
    return {
        "recipe": "fast",
        "seeds": seeds,
        "overrides": {},
        "baseline": rows[0]["label"],
        "models": rows,
        "environment": ENVIRONMENT,
    }


def test_one_seed_shows_no_spread_and_says_it_is_not_measured():
    one = report([0], {"resnet20": [0.32], "eca_resnet20": [0.36]})
    for text in (compare_table(one), report_markdown(one)):
        assert "32.00" in text and "36.00" in text and "+4.00" in text
        assert "± 0.00" not in text and "mean ± std" not in text and "per seed" not in text
        assert "One seed (0)" in text and "seed noise" in text


def test_several_seeds_show_mean_and_std_and_say_what_plus_minus_means():
    three = report([0, 1, 2], {"resnet20": [0.30, 0.32, 0.34], "eca_resnet20": [0.33, 0.36, 0.39]})
    text = compare_table(three)
    assert "32.00 ± 2.00" in text and "36.00 ± 3.00" in text and "30.00, 32.00, 34.00" in text
    assert "3 seeds (0, 1, 2): ± is the sample standard deviation over seeds" in text
    assert "mean ± std over 3 seeds" in report_markdown(three)


def test_terminal_table_columns_line_up():
    lines = compare_table(report([0], {"resnet20": [0.32], "a_much_longer_label": [0.36]})).splitlines()
    header, first, second = lines[1:4]
    assert len(header) == len(first) == len(second)
    assert header.index("val acc (%)") + len("val acc (%)") == first.index("32.00") + len("32.00")


def test_noise_caveat_gives_the_binomial_sampling_error():
    caveat = noise_caveat(report([0], {"resnet20": [0.5]}))  # sqrt(0.5 * 0.5 / 100) = 5 points
    assert "100 validation images" in caveat and "±5.0 points" in caveat


@pytest.mark.parametrize("seeds, over", [([0], "(seed 0)"), ([0, 1], "(mean ± std over 2 seeds)")])
def test_plots_have_whole_epochs_log_loss_and_titles_that_follow_the_seeds(seeds, over, tmp_path, monkeypatch):
    from attnlab.bench import compare as module
    from attnlab.utils import new_figure

    figures = []
    monkeypatch.setattr(module, "new_figure", lambda *size: figures.append(new_figure(*size)) or figures[-1])
    history = [{"epoch": 1, "val_acc": 0.5, "train_loss": 1.0, "val_loss": 2.0}]  # one epoch: no 0.95, 1.05 ticks
    rep = report(seeds, {"resnet20": [0.5] * len(seeds)})
    rep["models"][0]["histories"] = [history] * len(seeds)
    module.write_plots(rep, tmp_path)
    accuracy, losses, _ = figures
    assert accuracy.axes[0].get_title() == f"validation accuracy {over}"
    for ax in losses.axes:
        assert ax.get_title().endswith(over) and ax.get_yscale() == "log" and list(ax.get_xticks()) == [1]
