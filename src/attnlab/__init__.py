"""attnlab: channel attention for CNNs — faithful modules, attention-ready backbones, tools to measure them."""

__version__ = "0.1.0"

from attnlab.attention import AttentionPlacement, attention_layers, attention_stages, create_attention, list_attentions
from attnlab.models import create_model, default_input_size, list_models
from attnlab.retrofit import AttachReport, attach, detach
from attnlab.summary import summary

__all__ = [
    "AttachReport",
    "AttentionPlacement",
    "attach",
    "attention_layers",
    "attention_stages",
    "create_attention",
    "create_model",
    "default_input_size",
    "detach",
    "list_attentions",
    "list_models",
    "summary",
]
