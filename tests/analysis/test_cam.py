import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from attnlab.analysis.cam import CamPanel, grad_cam, last_conv_stage, plot_cams, prepare_image_files
from attnlab.data import Preprocess
from attnlab.models import create_model


class LinearOnMap(nn.Module):
    """features = the input itself, then global average pooling and a linear head: Grad-CAM reduces to CAM."""

    def __init__(self, channels: int, classes: int):
        super().__init__()
        self.features = nn.Identity()
        self.fc = nn.Linear(channels, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x).mean((2, 3)))


def test_grad_cam_is_cam_for_a_linear_head():
    torch.manual_seed(0)
    model = LinearOnMap(3, 4)
    images = torch.randn(2, 3, 6, 6)
    maps, classes, probs = grad_cam(model, images, target_layer="features")
    # d logit_c / d A_k(i, j) = w_ck / (h w), so the map is ReLU(sum_k w_ck A_k) up to scale, then max-normalised.
    expected = torch.relu(torch.einsum("nk,nkhw->nhw", model.fc.weight[classes], images))
    expected = expected / expected.flatten(1).amax(1)[:, None, None]
    torch.testing.assert_close(maps, expected)
    torch.testing.assert_close(classes, model(images).argmax(1))
    torch.testing.assert_close(probs, model(images).softmax(1).amax(1))


def test_cam_maps_have_image_size_and_are_finite(tmp_path):
    torch.manual_seed(0)
    model = create_model("eca_resnet20", num_classes=3)
    images = torch.randn(2, 3, 16, 16)
    assert last_conv_stage(model, images) == "layer3"
    maps, classes, _ = grad_cam(model, images, classes=torch.tensor([0, 2]))
    assert maps.shape == (2, 16, 16) and torch.isfinite(maps).all()
    assert maps.min() >= 0 and maps.max() <= 1
    assert classes.tolist() == [0, 2]
    shown = torch.rand(2, 16, 16, 3)
    panels = [CamPanel("eca", shown, maps, ["a", "b"]), CamPanel("eca again", shown, maps, ["a", "b"])]
    path = plot_cams(panels, tmp_path / "cam.png")
    assert path.stat().st_size > 0


def test_image_files_are_prepared_as_the_run_evaluated(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "a.png")
    preprocess = Preprocess("fast", img_size=8, cache_size=8, mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3))
    inputs, shown = prepare_image_files([tmp_path / "a.png"], preprocess)
    expected = torch.from_numpy(pixels).float() / 255
    torch.testing.assert_close(shown[0], expected)
    torch.testing.assert_close(inputs[0, 1], (expected[..., 1] - 0.4) / 0.25)


def test_unknown_layer_is_refused():
    with pytest.raises(ValueError, match="has no module 'layer9'"):
        grad_cam(create_model("resnet20", num_classes=3), torch.randn(1, 3, 8, 8), target_layer="layer9")
