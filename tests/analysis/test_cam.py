import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from attnlab.analysis.cam import (
    CAM_METHODS,
    CamPanel,
    cam_target_layer,
    class_activation_maps,
    last_conv_stage,
    plot_cams,
    prepare_image_files,
)
from attnlab.attention import attention_stages
from attnlab.data import Preprocess
from attnlab.models import create_model

SIZE = (32, 24)  # (H, W): not square, so a transposed map fails


class LinearOnMap(nn.Module):
    """features = the input itself, then global average pooling and a linear head: Grad-CAM reduces to CAM."""

    def __init__(self, channels: int, classes: int):
        super().__init__()
        self.features = nn.Identity()
        self.fc = nn.Linear(channels, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x).mean((2, 3)))


class TinyNet(nn.Module):
    """Two 8-channel convs (/4) and a linear head: every method, Score-CAM's 8 masked passes included, is fast."""

    def __init__(self, classes: int = 3):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, 2, 1), nn.ReLU(), nn.Conv2d(8, 8, 3, 2, 1), nn.BatchNorm2d(8), nn.ReLU()
        )
        self.fc = nn.Linear(8, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x).mean((2, 3)))


def textbook_grad_cam(model: nn.Module, images: torch.Tensor, layer: str, classes: torch.Tensor) -> torch.Tensor:
    """Selvaraju et al.: a_k = mean over (h, w) of d logit_c / d A_k, ReLU(sum_k a_k A_k), bilinear upsampling to
    the input size, min-max normalised per image."""
    captured = []
    # the block gets a copy, so that its in-place ops (out += identity) leave the captured A as the layer gave it
    layer_module = model.get_submodule(layer)
    handle = layer_module.register_forward_hook(lambda _m, _i, out: (captured.append(out), out.clone())[1])
    logits = model.eval()(images)
    handle.remove()
    (grads,) = torch.autograd.grad(logits.gather(1, classes[:, None]).sum(), captured[0])
    cam = F.relu((grads.mean((2, 3), keepdim=True) * captured[0]).sum(1, keepdim=True))
    cam = F.interpolate(cam, size=images.shape[2:], mode="bilinear", align_corners=False)[:, 0].detach()
    low, high = cam.flatten(1).amin(1)[:, None, None], cam.flatten(1).amax(1)[:, None, None]
    return (cam - low) / (high - low)


@pytest.mark.parametrize("target", ["stage", "gate"])
def test_gradcam_equals_the_textbook_formula(target):
    torch.manual_seed(0)
    model = create_model("eca_resnet20", num_classes=3)
    images = torch.randn(2, 3, *SIZE)
    layer = cam_target_layer(model, images, target)
    classes = torch.tensor([1, 0])  # one per image, not the predictions [0, 0]: the targets reach grad-cam
    assert model.eval()(images).argmax(1).tolist() == [0, 0]
    maps, got_classes, probs = class_activation_maps(model, images, layer, "gradcam", classes)
    expected = textbook_grad_cam(model, images, layer, classes)
    assert (expected.flatten(1).amax(1) == 1).all()  # no all-zero map
    torch.testing.assert_close(maps, expected, atol=1e-5, rtol=0)
    assert got_classes.tolist() == [1, 0]
    torch.testing.assert_close(probs, model(images).softmax(1)[[0, 1], [1, 0]])
    assert all(p.grad is None for p in model.parameters())


def test_gradcam_is_cam_for_a_linear_head():
    torch.manual_seed(0)
    model = LinearOnMap(3, 4)
    images = torch.randn(2, 3, 6, 6)
    maps, classes, probs = class_activation_maps(model, images, "features")
    # d logit_c / d A_k(i, j) = w_ck / (h w), so the map is ReLU(sum_k w_ck A_k) up to scale, then min-max normalised
    expected = torch.relu(torch.einsum("nk,nkhw->nhw", model.fc.weight[classes], images)).detach()
    low, high = expected.flatten(1).amin(1)[:, None, None], expected.flatten(1).amax(1)[:, None, None]
    torch.testing.assert_close(maps, (expected - low) / (high - low), atol=1e-5, rtol=0)
    torch.testing.assert_close(classes, model(images).argmax(1))
    torch.testing.assert_close(probs, model(images).softmax(1).amax(1))


@pytest.mark.parametrize("method", list(CAM_METHODS))
def test_each_method_maps_the_image_size_into_unit_range(method):
    torch.manual_seed(0)
    model = TinyNet()
    images = torch.randn(2, 3, *SIZE)
    maps, classes, _ = class_activation_maps(model, images, "features", method)
    assert maps.shape == (2, *SIZE) and torch.isfinite(maps).all()
    assert maps.min() >= 0 and maps.max() <= 1
    assert (maps.flatten(1).amax(1) - maps.flatten(1).amin(1) > 0.5).all()  # not constant
    assert classes.tolist() == model(images).argmax(1).tolist()


def test_target_layers_of_attnlab_torchvision_and_timm_models():
    images = torch.randn(1, 3, 64, 64)
    model = create_model("eca_resnet20", num_classes=3)
    assert cam_target_layer(model, images) == "layer3"  # feature_info
    gate = cam_target_layer(model, images, "gate")
    assert gate == "layer3.2.attention" and attention_stages(model)[gate] == 3
    assert cam_target_layer(model, images, "layer2.1") == "layer2.1"
    for name in ("torchvision:resnet18", "timm:resnet18"):
        model = create_model(name, num_classes=3, attention="eca")
        assert cam_target_layer(model, images) == "layer4"
        gate = cam_target_layer(model, images, "gate")
        assert gate.startswith("layer4.1.") and attention_stages(model)[gate] == 4
    assert not hasattr(model := create_model("torchvision:resnet18", num_classes=3), "feature_info")
    assert last_conv_stage(model, images) == "layer4"  # the hook probe
    assert last_conv_stage(model, torch.randn(1, 3, 32, 32)) == "layer3"  # layer4 gives 1x1 maps at 32 px


def test_bad_targets_are_refused():
    model, images = create_model("resnet20", num_classes=3), torch.randn(1, 3, 16, 16)
    with pytest.raises(ValueError, match="has no attention modules"):
        cam_target_layer(model, images, "gate")
    with pytest.raises(ValueError, match="has no module 'layer9'"):
        cam_target_layer(model, images, "layer9")
    with pytest.raises(ValueError, match=r"fc \(Linear\) must run once .* spatial"):
        cam_target_layer(model, images, "fc")
    with pytest.raises(ValueError, match="must run once"):
        cam_target_layer(model, images, "layer1.0.relu")  # called twice per block


def test_missing_grad_cam_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "pytorch_grad_cam", None)  # import fails
    with pytest.raises(ValueError, match=r"pip install 'attnlab\[cam\]'"):
        class_activation_maps(TinyNet(), torch.randn(1, 3, 8, 8), "features")


def test_plot_cams(tmp_path):
    shown, maps = torch.rand(2, 16, 16, 3), torch.rand(2, 16, 16)
    panels = [CamPanel("eca", shown, maps, ["a", "b"], "layer3"), CamPanel("se", shown, maps, ["a", "b"], "layer3")]
    assert plot_cams(panels, tmp_path / "cam.png").stat().st_size > 0


def test_image_files_are_prepared_as_the_run_evaluated(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "a.png")
    preprocess = Preprocess("fast", img_size=8, cache_size=8, mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3))
    inputs, shown = prepare_image_files([tmp_path / "a.png"], preprocess)
    expected = torch.from_numpy(pixels).float() / 255
    torch.testing.assert_close(shown[0], expected)
    torch.testing.assert_close(inputs[0, 1], (expected[..., 1] - 0.4) / 0.25)
