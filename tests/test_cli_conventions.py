"""One spelling per concept across every ``attnlab`` subcommand, checked by walking the argparse parsers.

The rules (issue 13): image size is ``--img-size`` (never ``--input-size``); lists are comma-separated (no option
takes several words); every command that runs a model has ``--device`` defaulting to ``auto``; ``--amp`` takes
exactly auto/off/bf16/fp16 and defaults to auto; every option's default is in its help; ``--seeds N`` always
means the N seeds counting up from ``--seed``.
"""

import argparse

import pytest
import yaml

from attnlab import default_input_size
from attnlab.cli import DEFAULT_RECIPE, HelpFormatter, build_parser, comma_list, main
from attnlab.engine.config import TrainConfig, list_recipes, load_recipe
from attnlab.models import create_model

# Commands that build a model but run it on no data: summary counts FLOPs with one CPU pass, export traces on the
# CPU so the file is portable, list runs nothing.
NO_DEVICE = {"list", "summary", "export"}
LIST_FLAGS = {"--models", "--milestones", "--k", "--classes", "--blocks", "--modes"}


def leaf_parsers(parser: argparse.ArgumentParser, words: tuple[str, ...] = ()):
    """(command, parser) of every subcommand without subcommands of its own, nested ones included."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from leaf_parsers(sub, (*words, name))
            return
    yield " ".join(words), parser


COMMANDS = dict(leaf_parsers(build_parser()))


def options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {flag: action for action in parser._actions for flag in action.option_strings}


def is_recipe_field(action: argparse.Action) -> bool:
    """A flag generated from a TrainConfig field: default None means the recipe's value."""
    return getattr(action.container, "title", None) == "training options"


def effective_default(action: argparse.Action) -> object:
    if action.default is None and is_recipe_field(action):
        recipes = [load_recipe(name) for name in list_recipes()]
        if all(action.dest not in fields for fields in recipes):  # no shipped recipe changes it
            return getattr(TrainConfig, action.dest)
    return action.default


def convention_problems(command: str, parser: argparse.ArgumentParser) -> list[str]:
    """Every way ``parser`` breaks the rules of this module's docstring, one line each."""
    problems = []
    flags = options(parser)
    if "--input-size" in flags:
        problems.append(f"{command}: --input-size (use --img-size)")
    if command not in NO_DEVICE and "--device" not in flags:
        problems.append(f"{command}: runs a model but has no --device")
    for flag in ("--device", "--amp"):
        if flag in flags and effective_default(flags[flag]) != "auto":
            problems.append(f"{command}: {flag} defaults to {effective_default(flags[flag])!r}, not 'auto'")
    if "--amp" in flags and tuple(flags["--amp"].choices or ()) != ("auto", "off", "bf16", "fp16"):
        problems.append(f"{command}: --amp choices are {flags['--amp'].choices}, not auto/off/bf16/fp16")
    if "--seeds" in flags:
        seeds = flags["--seeds"]
        if seeds.type is not int or "--seed" not in flags or "counting up from --seed" not in seeds.help:
            problems.append(f"{command}: --seeds is not the number of seeds counting up from --seed")
    formatter = parser._get_formatter()
    for action in parser._actions:
        if not action.option_strings or action.default in (None, argparse.SUPPRESS):
            continue
        shown = formatter._expand_help(action) if action.help else ""
        if action.nargs != 0 and f"(default: {action.default})" not in shown:
            problems.append(f"{command}: {action.option_strings[0]} hides its default {action.default!r}")
    for action in parser._actions:
        if action.option_strings and action.nargs not in (None, 0, "?"):
            problems.append(f"{command}: {action.option_strings[0]} takes several words; take a comma list")
        if (
            set(action.option_strings) & LIST_FLAGS
            and action.nargs != 0
            and not (callable(action.type) and len(action.type("3,5")) == 2)
        ):
            problems.append(f"{command}: {action.option_strings[0]} does not parse a comma-separated list")
    return sorted(set(problems))


def test_the_walk_finds_every_subcommand():
    expected = {"list", "summary", "train", "eval", "predict", "export", "demo", "bench", "compare"}
    expected |= {f"analyze {name}" for name in ("activations", "ablate", "kernel-sweep", "cam")}
    assert expected <= set(COMMANDS)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_subcommand_follows_the_conventions(command):
    assert convention_problems(command, COMMANDS[command]) == []


def test_every_parser_shows_defaults():
    parsers = [build_parser(), *COMMANDS.values()]
    assert all(p.formatter_class is HelpFormatter for p in parsers)


def test_the_rules_catch_the_old_bench_and_compare_parsers():
    old = argparse.ArgumentParser()
    old.add_argument("--models", default="resnet50,se_resnet50")
    old.add_argument("--input-size", type=int)
    old.add_argument("--batch-size", type=int, default=16)
    old.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    old.add_argument("--amp", action="store_true", help="bfloat16 autocast")
    old.add_argument("--seeds", type=int, help="number of seeds 0..N-1")
    old.add_argument("--blocks", nargs="+")
    assert convention_problems("old", old) == [
        "old: --amp choices are None, not auto/off/bf16/fp16",
        "old: --amp defaults to False, not 'auto'",
        "old: --batch-size hides its default 16",
        "old: --blocks does not parse a comma-separated list",
        "old: --blocks takes several words; take a comma list",
        "old: --device defaults to 'cpu', not 'auto'",
        "old: --device hides its default 'cpu'",
        "old: --input-size (use --img-size)",
        "old: --models does not parse a comma-separated list",
        "old: --models hides its default 'resnet50,se_resnet50'",
        "old: --seeds is not the number of seeds counting up from --seed",
    ]


def test_comma_lists_parse_and_reject_words():
    assert comma_list(int)("3, 5,,7") == [3, 5, 7]
    with pytest.raises(argparse.ArgumentTypeError, match="comma-separated integers"):
        comma_list(int)("3 5")


def test_plain_bench_is_sized_for_a_cpu():
    models = COMMANDS["bench"].get_default("models") or options(COMMANDS["bench"])["--models"].default
    for name in comma_list()(models):
        assert max(default_input_size(create_model(name, num_classes=10))[1:]) <= 64, name


def test_seeds_mean_the_same_in_compare_and_kernel_sweep(monkeypatch, tmp_path):
    got = {}
    monkeypatch.setattr("attnlab.cli.run_spec", lambda spec: got.update(compare=spec.seeds))
    monkeypatch.setattr("attnlab.cli.compare_table", lambda report: "")
    monkeypatch.setattr("attnlab.cli.kernel_sweep", lambda model, k, seeds, *a, **kw: got.update(sweep=list(seeds)))
    assert main(["compare", "--models", "resnet20", "--seed", "5", "--seeds", "2", "--out", str(tmp_path)]) == 0
    assert main(["analyze", "kernel-sweep", "--seed", "5", "--seeds", "2", "--out", str(tmp_path)]) == 0
    assert got == {"compare": [5, 6], "sweep": [5, 6]}
    assert main(["compare", "--models", "resnet20", "--seeds", "3", "--out", str(tmp_path)]) == 0
    assert got["compare"] == [0, 1, 2]


def test_train_takes_a_config_file_with_flags_over_it(monkeypatch, tmp_path):
    config = tmp_path / "my.yaml"
    config.write_text(yaml.safe_dump({"recipe": "keras-flowers", "model": "se_resnet20", "epochs": 7, "lr": 0.01}))
    got = []
    monkeypatch.setattr("attnlab.cli.train", lambda config, **kwargs: got.append(config))
    argv = ["train", "--config", str(config), "--epochs", "2", "--out", str(tmp_path / "run")]
    assert main(argv) == 0
    (trained,) = got
    assert (trained.recipe, trained.model, trained.epochs, trained.lr) == ("keras-flowers", "se_resnet20", 2, 0.01)
    assert load_recipe("keras-flowers")["batch_size"] == trained.batch_size  # the rest from the file's recipe
    assert main([*argv, "--recipe", DEFAULT_RECIPE]) == 0 and got[1].recipe == DEFAULT_RECIPE  # --recipe wins
