"""Prototypical networks (Snell et al. 2017): class means of support embeddings, logits = -squared Euclidean distance."""
import torch
from torch import nn

from ..episode import ways


def squared_euclidean(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``[n, D], [m, D] -> [n, m]``."""
    return (a.unsqueeze(1) - b.unsqueeze(0)).pow(2).sum(-1)


def class_means(features: torch.Tensor, labels: torch.Tensor, n_way: int,
                weights: torch.Tensor | None = None) -> torch.Tensor:
    """Mean feature of each class ``0..n_way-1``, weighted by ``weights`` ``[n]`` (none: all 1); classes may hold
    different numbers of examples."""
    one_hot = nn.functional.one_hot(labels, n_way).to(features.dtype)
    if weights is not None:
        one_hot = one_hot * weights.to(features.dtype).unsqueeze(1)
    return (one_hot.T @ features) / one_hot.sum(0).unsqueeze(1)


class PrototypicalNetworks(nn.Module):
    def forward(self, support: torch.Tensor, support_labels: torch.Tensor, query: torch.Tensor,
                support_weights: torch.Tensor | None = None, *, n_way: int | None = None) -> torch.Tensor:
        prototypes = class_means(support, support_labels, ways(support_labels, n_way), support_weights)
        return -squared_euclidean(query, prototypes)


def protonet(*, feature_shape: tuple[int, ...]) -> PrototypicalNetworks:
    return PrototypicalNetworks()
