"""Attention-ready backbones with published parameter counts, built by name with an ``attention=`` switch.

``create_model('resnet50', attention='eca')`` puts ECA where the ECA paper does; named builders such as
``eca_resnet50``, ``se_resnext50_32x4d`` or ``alexnet_eca`` are the combinations the papers cite. Every backbone
offers timm's interface (``forward_features``, ``forward_head``, ``reset_classifier``, ``feature_info``);
``'torchvision:ARCH'`` and ``'timm:ARCH'`` build those libraries' models.
"""

from attnlab.attention import attention_layers
from attnlab.utils import default_input_size

from . import alexnet, cifar_resnet, epsanet, inception, mobilenet, resnet  # noqa: F401  (registers the builders)
from ._registry import ModelInfo, create_model, get_model_info, list_models, register_model
from .external import create_external_model

__all__ = [
    "ModelInfo",
    "attention_layers",
    "create_external_model",
    "create_model",
    "default_input_size",
    "get_model_info",
    "list_models",
    "register_model",
]
