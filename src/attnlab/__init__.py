"""attnlab: channel attention for CNNs — faithful modules, attention-ready backbones, tools to measure them."""

__version__ = "0.1.0"

from attnlab.attention import create_attention, list_attentions
from attnlab.summary import summary

__all__ = ["create_attention", "list_attentions", "summary"]
