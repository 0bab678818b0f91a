"""attnlab.bench.throughput and the timm twins: tiny models, few repeats."""

import pytest
import torch

import attnlab
from attnlab.attention.eca import eca_kernel_size
from attnlab.bench import benchmark, results_markdown
from attnlab.bench.timm_twins import create_timm_twin

SIZE = 16


def resnet20_macs(size: int, num_classes: int) -> int:
    """Multiply-accumulates of He et al.'s CIFAR ResNet-20 (3x3 convs, option-A shortcuts) at size x size."""
    macs = size * size * 16 * 3 * 9  # stem
    for stage, width in enumerate((16, 32, 64)):
        positions = (size // 2**stage) ** 2
        in_width = 16 if stage == 0 else width // 2
        macs += positions * width * 9 * (in_width + 5 * width)  # first conv, then 5 convs width -> width
    return macs + 64 * num_classes


@pytest.fixture(scope="module")
def tiny_results():
    torch.manual_seed(0)
    return benchmark(["resnet20", "eca_resnet20"], img_size=SIZE, batch_size=2, warmup=1, repeats=2, num_classes=10)


def test_benchmark_counts_params_and_eval_mode_flops_by_formula(tiny_results):
    plain, eca = tiny_results
    assert plain.params == sum(p.numel() for p in attnlab.create_model("resnet20", num_classes=10).parameters())
    assert plain.flops == 2 * resnet20_macs(SIZE, 10)
    # ECA adds one k-tap 1D conv per block (3 blocks of 16, 32, 64 channels): k params, 2*k*C FLOPs.
    widths = [16] * 3 + [32] * 3 + [64] * 3
    assert eca.params - plain.params == sum(eca_kernel_size(c) for c in widths)
    assert eca.flops - plain.flops == sum(2 * eca_kernel_size(c) * c for c in widths)


def test_benchmark_times_are_positive_and_ratios_are_to_the_first_model(tiny_results):
    plain, eca = tiny_results
    for r in tiny_results:
        assert r.infer_images_per_s > 0 and r.train_images_per_s > 0
        assert len(r.infer_times_ms) == len(r.train_times_ms) == 2
        assert r.infer_latency_ms == pytest.approx(sorted(r.infer_times_ms)[0] / 2 + sorted(r.infer_times_ms)[1] / 2)
        assert r.infer_images_per_s == pytest.approx(2 / (r.infer_latency_ms / 1000))
        assert r.peak_infer_mb is None  # no allocator peak counter on CPU
        assert r.infer_cpu_ms > 0 and r.train_cpu_ms > 0
    assert plain.infer_ratio == 1.0 and plain.train_ratio == 1.0 and plain.infer_cpu_ratio == 1.0
    assert eca.infer_cpu_ratio == pytest.approx(plain.infer_cpu_ms / eca.infer_cpu_ms)
    assert eca.infer_ratio == pytest.approx(eca.infer_images_per_s / plain.infer_images_per_s)
    assert eca.train_ratio == pytest.approx(eca.train_images_per_s / plain.train_images_per_s)
    # ECA saves at least the pooled (N, C) descriptors and gates on top of the plain network's activations.
    assert eca.saved_activation_mb > plain.saved_activation_mb > 0
    table = results_markdown(tiny_results)
    assert table.count("\n| resnet20 |") == 1 and table.count("\n| eca_resnet20 |") == 1


def test_vs_timm_builds_the_equal_architecture_and_reports_ratios():
    (se,) = benchmark(
        ["se_resnet18"], img_size=SIZE, batch_size=1, warmup=0, repeats=1, train=False, vs_timm=True, num_classes=10
    )
    assert se.timm is not None and se.params_match_timm and se.timm.params == se.params
    assert se.vs_timm_infer == pytest.approx(se.infer_images_per_s / se.timm.infer_images_per_s)
    assert se.vs_timm_infer_cpu == pytest.approx(se.timm.infer_cpu_ms / se.infer_cpu_ms)
    assert f"| se_resnet18 | {se.params / 1e6:.3f} | yes |" in results_markdown([se])  # the timm table's row
    assert se.train_images_per_s is None and se.vs_timm_train is None
    assert "rd_divisor=1" in se.timm_note
    # SE adds W1 (C x C/16, bias C/16) and W2 (C/16 x C, bias C) per block; ResNet-18 has 2 blocks per stage.
    plain = sum(p.numel() for p in attnlab.create_model("resnet18", num_classes=10).parameters())
    assert se.params - plain == sum(2 * (2 * c * c // 16 + c // 16 + c) for c in (64, 128, 256, 512))


def test_timm_defaults_differ_where_the_note_says():
    import timm

    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    ours = count(attnlab.create_model("se_resnet18"))
    assert count(create_timm_twin("se_resnet18")) == ours
    # timm's default SE rounds 64 / 16 = 4 hidden units up to 8: (8 - 4) * (64 + 64 + 1) more per block, 2 blocks.
    assert count(timm.create_model("resnet18", block_args=dict(attn_layer="se"))) - ours == 2 * 4 * 129
    cbam = count(attnlab.create_model("cbam_resnet50"))
    assert count(create_timm_twin("cbam_resnet50")) == cbam
    # timm's default CBAM MLP drops the biases: C/16 + C per block, ResNet-50 has 3/4/6/3 blocks of 256..2048.
    no_bias = sum(n * (c // 16 + c) for n, c in zip((3, 4, 6, 3), (256, 512, 1024, 2048)))
    assert cbam - count(timm.create_model("resnet50", block_args=dict(attn_layer="cbam"))) == no_bias
    assert create_timm_twin("epsanet50") is None


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(models=[]), "non-empty list"),
        (dict(models="resnet20"), "non-empty list"),
        (dict(models=["resnet20"], batch_size=0), "batch_size"),
        (dict(models=["resnet20"], repeats=0), "repeats"),
        (dict(models=["resnet20"], warmup=-1), "warmup"),
    ],
)
def test_benchmark_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        benchmark(**kwargs)
