"""The functional face of a hallucinator: ``(features, labels, n_per_class, generator) -> (features, labels)``."""
from collections.abc import Callable

import torch
from torch import nn

Generator = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def sample_seeds(labels: torch.Tensor, n_per_class: int, rng: torch.Generator | None = None) -> torch.Tensor:
    """Indices of ``n_per_class`` seed examples per class (drawn with replacement among the class's examples),
    class 0's first, then class 1's, and so on."""
    n_way = int(labels.max()) + 1
    members = nn.functional.one_hot(labels, n_way).T.float()
    return torch.multinomial(members, n_per_class, replacement=True, generator=rng).flatten()


def sample_noise(n: int, noise_dim: int, like: torch.Tensor, rng: torch.Generator | None = None) -> torch.Tensor:
    return torch.randn(n, noise_dim, generator=rng, device=like.device, dtype=like.dtype)


def hallucinate(features: torch.Tensor, labels: torch.Tensor, n_per_class: int, generator: Generator, *,
                noise_dim: int, rng: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Append ``n_per_class`` synthetic features per class, each ``generator(seed feature, noise)`` from a real
    seed of that class. With ``n_per_class == 0`` the inputs come back untouched."""
    if n_per_class == 0:
        return features, labels
    seeds = sample_seeds(labels, n_per_class, rng)
    synthetic = generator(features[seeds], sample_noise(len(seeds), noise_dim, features, rng))
    return torch.cat([features, synthetic]), torch.cat([labels, labels[seeds]])
