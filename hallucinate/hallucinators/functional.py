"""The functional face of a hallucinator: ``(features, labels, n_per_class, generator) -> (features, labels)``.

A generator is any callable ``generator(seeds, noise) -> synthetic`` that also says how its noise is drawn,
``generator.sample_noise(n, like, rng)``: Gaussian for the MLP, GAN and calibration generators, base-class pairs
for the analogy generator."""
from typing import Protocol

import torch
from torch import nn

from ..episode import ways


class Generator(Protocol):
    def __call__(self, seeds: torch.Tensor, noise: torch.Tensor) -> torch.Tensor: ...

    def sample_noise(self, n: int, like: torch.Tensor, rng: torch.Generator | None = None) -> torch.Tensor: ...


def sample_seeds(labels: torch.Tensor, n_per_class: int, rng: torch.Generator | None = None, *,
                 n_way: int | None = None) -> torch.Tensor:
    """Indices of ``n_per_class`` seed examples per class (drawn with replacement among the class's examples),
    class 0's first, then class 1's, and so on. ``n_way``: the number of classes, when the caller knows it (else it
    is read from ``labels``, a sync on a GPU)."""
    members = nn.functional.one_hot(labels, ways(labels, n_way)).T.float()
    return torch.multinomial(members, n_per_class, replacement=True, generator=rng).flatten()


def gaussian_noise(n: int, noise_dim: int, like: torch.Tensor, rng: torch.Generator | None = None) -> torch.Tensor:
    return torch.randn(n, noise_dim, generator=rng, device=like.device, dtype=like.dtype)


def hallucinate(features: torch.Tensor, labels: torch.Tensor, n_per_class: int, generator: Generator | None,
                rng: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Append ``n_per_class`` synthetic features per class, each ``generator(seed feature, noise)`` from a real
    seed of that class. With ``n_per_class == 0`` the inputs come back untouched."""
    if n_per_class == 0:
        return features, labels
    seeds = sample_seeds(labels, n_per_class, rng)
    synthetic = generator(features[seeds], generator.sample_noise(len(seeds), features, rng))
    return torch.cat([features, synthetic]), torch.cat([labels, labels[seeds]])


class Hallucinator(nn.Module):
    """The module face: owns ``self.generator`` (and whatever trains it) and hallucinates with it when called."""

    generator: Generator
    # True when the hallucinator holds state that each training process would fill from its own episodes (the
    # analogy bank), so that ranks under torchrun would drift apart: such a hallucinator trains in one process.
    per_process_state = False

    def before_validation(self, model: nn.Module, base_split, *, seed: int, device: torch.device,
                          precision: str) -> None:
        """Called by the training loop before each validation, with the model in training mode: a hallucinator
        that keeps features seen in training refreshes them here. Nothing to do for most."""

    def forward(self, features: torch.Tensor, labels: torch.Tensor, n_per_class: int,
                rng: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        return hallucinate(features, labels, n_per_class, self.generator, rng)
