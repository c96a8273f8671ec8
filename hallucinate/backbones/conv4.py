"""Conv-4 (Vinyals et al. 2016; Snell et al. 2017): four blocks of 64-filter 3x3 conv, batch norm, ReLU, 2x2 max-pool,
and the variants of it that the relation network and MAML papers use."""
import torch
from torch import nn


def _block(in_channels: int, out_channels: int, *, pool: bool, padding: int, track_running_stats: bool):
    layers = [nn.Conv2d(in_channels, out_channels, 3, padding=padding),
              nn.BatchNorm2d(out_channels, track_running_stats=track_running_stats), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers, nn.MaxPool2d(2)) if pool else nn.Sequential(*layers)


class Conv4(nn.Module):
    """``forward(x) -> [B, D]``: the last feature map, flattened; ``feature_shape`` is its ``(C, H, W)``.

    ``pooled`` blocks (the first ones) end in a max-pool; the first ``unpadded`` blocks convolve without padding.
    ``track_running_stats=False`` makes batch norm always use the statistics of the batch it sees."""

    def __init__(self, *, in_channels: int, image_size: int, width: int = 64, pooled: int = 4, unpadded: int = 0,
                 track_running_stats: bool = True):
        super().__init__()
        self.blocks = nn.Sequential(*(
            _block(in_channels if i == 0 else width, width, pool=i < pooled, padding=0 if i < unpadded else 1,
                   track_running_stats=track_running_stats) for i in range(4)))
        side = image_size
        for i in range(4):
            side = (side - 2 * (i < unpadded)) // (2 if i < pooled else 1)
        if side < 1:
            raise ValueError(f"this Conv-4 needs larger images than {image_size}x{image_size} pixels")
        self.feature_shape = (width, side, side)
        self.out_dim = width * side * side

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x).flatten(1)


def conv4(*, in_channels: int, image_size: int) -> Conv4:
    return Conv4(in_channels=in_channels, image_size=image_size)


def conv4_maps(*, in_channels: int, image_size: int) -> Conv4:
    """The relation network's embedding (Sung et al. 2018): no pooling after the last two blocks and no padding in
    the first two, so it keeps a ``64 x 5 x 5`` feature map of a 28-pixel Omniglot image (``64 x 6 x 6`` at 32)."""
    return Conv4(in_channels=in_channels, image_size=image_size, pooled=2, unpadded=2)


class Pixels(nn.Module):
    """No backbone: the flattened image, for learners that hold their own network (MAML adapts all of it)."""

    def __init__(self, *, in_channels: int, image_size: int):
        super().__init__()
        self.feature_shape = (in_channels, image_size, image_size)
        self.out_dim = in_channels * image_size * image_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)
