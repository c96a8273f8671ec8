"""Conv-4 (Vinyals et al. 2016; Snell et al. 2017): four blocks of 64-filter 3x3 conv, batch norm, ReLU, 2x2 max-pool."""
from torch import nn


def _block(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, padding=1), nn.BatchNorm2d(out_channels),
                         nn.ReLU(inplace=True), nn.MaxPool2d(2))


class Conv4(nn.Module):
    def __init__(self, *, in_channels: int, image_size: int, width: int = 64):
        super().__init__()
        self.blocks = nn.Sequential(_block(in_channels, width), *(_block(width, width) for _ in range(3)))
        side = image_size
        for _ in range(4):
            side //= 2
        if side < 1:
            raise ValueError(f"Conv-4 needs images of at least 16x16 pixels, got {image_size}")
        self.out_dim = width * side * side

    def forward(self, x):
        return self.blocks(x).flatten(1)


def conv4(*, in_channels: int, image_size: int) -> Conv4:
    return Conv4(in_channels=in_channels, image_size=image_size)
