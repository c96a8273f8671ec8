"""Backbones: ``forward(x) -> [B, D]`` with ``out_dim`` (D) and ``feature_shape`` (what D unflattens to),
built by keyword-only builders."""
from ..registry import Registry
from .conv4 import Conv4, Pixels, conv4, conv4_maps

BACKBONES = Registry("backbone")
BACKBONES["conv4"] = conv4
BACKBONES["conv4_maps"] = conv4_maps
BACKBONES["pixels"] = Pixels

__all__ = ["BACKBONES", "Conv4", "Pixels", "conv4", "conv4_maps"]
