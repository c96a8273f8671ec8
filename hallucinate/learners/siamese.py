"""Siamese networks (Koch et al. 2015): one embedding for both images of a pair, a learned weighted L1 distance and a
sigmoid giving the probability that they show the same class; trained on same/different pairs."""
import math

import torch
from torch import nn

from ..episode import ways
from .protonet import class_means


class SiameseNetworks(nn.Module):
    """``forward`` scores each query against every support example, ``log-odds = w . |q - s| + b``, and gives each
    class the (support-weighted) mean log-odds of its examples (at 1-shot: the one pair's). ``loss`` is binary
    cross-entropy on the pairs with the positives weighted up to balance the N-1 negatives of each query.

    Koch et al.'s 4096-unit sigmoid layer is left out: the pair distance is taken on the backbone's features, the
    space where the hallucinator adds examples."""

    def __init__(self, feature_dim: int):
        super().__init__()
        self.distance = nn.Linear(feature_dim, 1)

    def forward(self, support: torch.Tensor, support_labels: torch.Tensor, query: torch.Tensor,
                support_weights: torch.Tensor | None = None, *, n_way: int | None = None) -> torch.Tensor:
        pair_log_odds = self.distance((query.unsqueeze(1) - support.unsqueeze(0)).abs()).squeeze(2)
        return class_means(pair_log_odds.T, support_labels, ways(support_labels, n_way), support_weights).T

    @staticmethod
    def loss(log_odds: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        n_way = log_odds.shape[1]
        targets = nn.functional.one_hot(labels, n_way).to(log_odds.dtype)
        positive_weight = log_odds.new_full((), n_way - 1)  # torch.tensor(..., device=) would copy and sync
        return nn.functional.binary_cross_entropy_with_logits(log_odds, targets, pos_weight=positive_weight)


def siamese(*, feature_shape: tuple[int, ...]) -> SiameseNetworks:
    return SiameseNetworks(math.prod(feature_shape))
