"""Backbones: ``forward(x) -> [B, D]`` and an ``out_dim`` attribute, built by keyword-only builders."""
from ..registry import Registry
from .conv4 import Conv4, conv4

BACKBONES = Registry("backbone")
BACKBONES["conv4"] = conv4

__all__ = ["BACKBONES", "Conv4", "conv4"]
