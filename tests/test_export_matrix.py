"""The export matrix on tiny models: every attention module exports with a free batch size and image size to
torch.export and TorchScript (and ONNX, the slow part, for a sample; all of them with ``-m slow``) and matches
eager PyTorch at two batch sizes and two image sizes. benchmarks/export_matrix.py runs it on ResNets."""

import pytest

from attnlab.attention import list_attentions
from attnlab.export.matrix import run_matrix_row

ALL = list_attentions()
# ONNX on every run for these (one per family of ops: pools, convs over the map, grouped/split convs, softmax)
ONNX_SAMPLE = {"se", "cbam", "coord", "psa"}
# FcaNet's DCT filters are built for one map size: torch.export refuses a free size (ExportRefused), and TorchScript,
# which cannot refuse, runs at other sizes with the traced branch and differs from eager PyTorch (recorded as fails)
EXPECTED = {"fca": {"pt2": "refused", "onnx": "refused", "torchscript": "fails"}}


@pytest.mark.parametrize("name", ALL)
def test_pt2_and_torchscript_match_eager_at_two_sizes(name):
    cells = run_matrix_row(name, "tiny", formats=("pt2", "torchscript"))
    expected = EXPECTED.get(name, {"pt2": "ok", "torchscript": "ok"})
    assert {c.format: c.status for c in cells} == {fmt: expected[fmt] for fmt in ("pt2", "torchscript")}
    if name in EXPECTED:
        assert "cannot be exported with a free batch size and image size" in cells[0].detail
        assert "--static" in cells[0].detail


@pytest.mark.parametrize("name", [n if n in ONNX_SAMPLE else pytest.param(n, marks=pytest.mark.slow) for n in ALL])
def test_onnx_in_onnxruntime_matches_eager_at_two_sizes(name):
    pytest.importorskip("onnxruntime", reason="install the 'onnx' extra to test ONNX export")
    pytest.importorskip("onnxscript", reason="install the 'onnx' extra to test ONNX export")
    (cell,) = run_matrix_row(name, "tiny", formats=("onnx",))
    assert cell.status == EXPECTED.get(name, {}).get("onnx", "ok"), cell.detail


def test_the_matrix_catches_an_export_that_differs(monkeypatch):
    """A runtime that returns other logits must show up as ``fails``, not ``ok``."""
    monkeypatch.setattr("attnlab.export.matrix.ExportedModel.forward", lambda self, x: self._run(x) + 1)
    (cell,) = run_matrix_row("se", "tiny", formats=("pt2",))
    assert cell.status == "fails" and "max abs error 1 > 0.001" in cell.detail
