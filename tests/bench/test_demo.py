import math

from attnlab.bench.demo import run_demo


def eca_parameters(channels: int) -> int:
    """ECA-Net (Wang et al., CVPR 2020): one bias-free 1D conv of size k = |log2(C)/2 + 1/2|_odd per layer."""
    k = int(abs(math.log2(channels) / 2 + 1 / 2))
    return k if k % 2 else k + 1


def test_demo_compares_plain_and_attention_models(tmp_path, capsys):
    rows = run_demo(["resnet20", "eca_resnet20"], epochs=1, img_size=8, out=tmp_path)
    table = capsys.readouterr().out
    # ResNet-20: ECA after each of the 3 x 3 blocks with 16, 32 and 64 channels
    added = 3 * sum(eca_parameters(c) for c in (16, 32, 64))
    assert rows[1]["params"] - rows[0]["params"] == added == 27
    assert [row["attention_layers"] for row in rows] == [0, 9]
    assert f"+{added}" in table and "eca_resnet20" in table and "1 epochs of the fast recipe" in table
    assert all(0 <= row["best_val_acc"] <= 1 for row in rows)
    assert (tmp_path / "runs" / "eca_resnet20-s0" / "best.safetensors").is_file()
