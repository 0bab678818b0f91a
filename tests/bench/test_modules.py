"""The library table: every module's facts, what it is verified against, and the README generated from it."""

import importlib.util
import re
import sys
from pathlib import Path

from attnlab.attention import list_attentions
from attnlab.bench.modules import VERIFIED, library_markdown, library_table, module_facts

ROOT = Path(__file__).resolve().parents[2]
FAMILY_FILES = {"sa": "shuffle"}  # registry name -> family, where they differ


def test_every_module_says_what_it_is_verified_against():
    assert set(VERIFIED) == set(list_attentions())
    assert set(VERIFIED.values()) == {"timm", "paper"}


def test_timm_verified_modules_are_exactly_those_in_the_timm_parity_test():
    spec = importlib.util.spec_from_file_location("timm_parity", ROOT / "tests/attention/test_timm_parity.py")
    parity = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = parity  # dataclasses look their module up there
    spec.loader.exec_module(parity)
    covered = {name.split("-")[0] for name in parity.CASES}
    assert covered == {name for name, ref in VERIFIED.items() if ref == "timm"}


def test_paper_verified_modules_have_a_formula_test():
    """Each module verified against its paper has a ``test_*matches*`` test in its family's test file."""
    for name, ref in VERIFIED.items():
        if ref == "paper":
            text = (ROOT / "tests/attention" / f"test_{FAMILY_FILES.get(name, name)}.py").read_text()
            assert re.search(r"def test_\w*matches\w*\(", text), name


def test_facts_measure_parameters_and_saved_activations():
    se = module_facts("se")
    assert se.params == 2 * 256 * 16 + 16 + 256 and se.kind == "gate" and se.verified == "timm"
    assert 1.0 <= se.saved_activations < 1.1  # SE keeps its input for backward, and only (N, C)-sized extras
    assert module_facts("ge").saved_activations < 1.05 and module_facts("psa").kind == "conv"


def test_readme_module_table_is_the_generated_one():
    readme = (ROOT / "README.md").read_text()
    table = readme.split("<!-- modules:start -->\n")[1].split("<!-- modules:end -->")[0]
    assert table.strip() == library_markdown(library_table()).strip(), "regenerate: attnlab list --markdown"
