"""attnlab: channel attention for CNNs — faithful modules, attention-ready backbones, tools to measure them."""

__version__ = "0.1.0"

from attnlab.attention import create_attention, list_attentions
from attnlab.models import attention_layers, create_model, default_input_size, list_models
from attnlab.retrofit import AttachReport, attach, detach
from attnlab.summary import summary

__all__ = [
    "AttachReport",
    "attach",
    "attention_layers",
    "create_attention",
    "create_model",
    "default_input_size",
    "detach",
    "list_attentions",
    "list_models",
    "summary",
]
