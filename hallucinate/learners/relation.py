"""Relation networks (Sung et al. 2018): a learned module scores each (class, query) pair of feature maps,
concatenated along the channels; trained by mean squared error against one-hot targets."""
import torch
from torch import nn

from ..device import autocast
from ..episode import ways
from .protonet import class_means


def _block(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, padding=1), nn.BatchNorm2d(out_channels),
                         nn.ReLU(inplace=True), nn.MaxPool2d(2))


class RelationModule(nn.Module):
    """``[P, 2C, H, W] -> [P]`` relation scores in (0, 1): two conv blocks, then ``C*h*w -> hidden -> 1``."""

    def __init__(self, feature_shape: tuple[int, int, int], hidden: int):
        super().__init__()
        channels, height, width = feature_shape
        self.convs = nn.Sequential(_block(2 * channels, channels), _block(channels, channels))
        if height // 4 < 1 or width // 4 < 1:
            raise ValueError(f"the relation module pools twice: it needs feature maps of at least 4x4, "
                             f"got {height}x{width}")
        self.head = nn.Sequential(nn.Linear(channels * (height // 4) * (width // 4), hidden), nn.ReLU(inplace=True),
                                  nn.Linear(hidden, 1), nn.Sigmoid())

    def forward(self, pairs: torch.Tensor) -> torch.Tensor:
        return self.head(self.convs(pairs).flatten(1)).squeeze(1)


class RelationNetworks(nn.Module):
    """Each class is the (support-weighted) mean feature map of its support examples (Sung et al. sum the K shots;
    the mean keeps a class map at one scale however many synthetic examples join it); ``forward`` returns relation
    scores, in float32.

    ``precision`` is the relation module's: "fp32", "bf16" or "auto" (bf16 where the hardware supports it), under
    `hallucinate.device.autocast` as the backbone runs. `build_classifier` gives it the config's precision, the
    backbone's in training; `evaluate` sets it to the precision it evaluates at for its episodes."""

    def __init__(self, feature_shape: tuple[int, int, int], *, hidden: int = 8, precision: str = "fp32"):
        super().__init__()
        if len(feature_shape) != 3:
            raise ValueError(f"relation networks compare feature maps (C, H, W); the backbone gives {feature_shape}")
        if precision not in ("auto", "bf16", "fp32"):
            raise ValueError(f"the relation module's precision must be 'auto', 'bf16' or 'fp32', got {precision!r}")
        self.feature_shape = tuple(feature_shape)
        self.relation = RelationModule(self.feature_shape, hidden)
        self.precision = precision

    def forward(self, support: torch.Tensor, support_labels: torch.Tensor, query: torch.Tensor,
                support_weights: torch.Tensor | None = None, *, n_way: int | None = None) -> torch.Tensor:
        n_way = ways(support_labels, n_way)
        classes = class_means(support, support_labels, n_way, support_weights).unflatten(1, self.feature_shape)
        queries = query.unflatten(1, self.feature_shape)
        n_query = len(queries)
        pairs = torch.cat([classes.unsqueeze(0).expand(n_query, -1, -1, -1, -1),
                           queries.unsqueeze(1).expand(-1, n_way, -1, -1, -1)], dim=2)
        with autocast(pairs.device, self.precision):
            scores = self.relation(pairs.flatten(0, 1))
        return scores.float().view(n_query, n_way)

    @staticmethod
    def loss(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return nn.functional.mse_loss(scores, nn.functional.one_hot(labels, scores.shape[1]).to(scores.dtype))


def relation(*, feature_shape: tuple[int, ...], relation_hidden: int) -> RelationNetworks:
    return RelationNetworks(feature_shape, hidden=relation_hidden)
