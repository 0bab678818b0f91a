"""Attention-ready backbones with published parameter counts, built by name with an ``attention=`` switch.

``create_model('resnet50', attention='eca')`` puts ECA where the ECA paper does; named builders such as
``eca_resnet50``, ``se_resnext50_32x4d`` or ``alexnet_eca`` are the combinations the papers cite.
"""

from . import alexnet, cifar_resnet, epsanet, inception, mobilenet, resnet  # noqa: F401  (registers the builders)
from ._registry import (
    AttentionFactory,
    attention_layers,
    create_model,
    default_input_size,
    get_model_info,
    list_models,
    register_model,
)

__all__ = [
    "AttentionFactory",
    "attention_layers",
    "create_model",
    "default_input_size",
    "get_model_info",
    "list_models",
    "register_model",
]
