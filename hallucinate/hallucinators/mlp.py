"""The hallucinator of Wang et al. 2018: an MLP generator trained jointly with the learner, by its loss alone."""
import torch
from torch import nn

from .functional import Hallucinator, gaussian_noise


class FeatureGenerator(nn.Module):
    """``G(seed, noise) = seed + MLP([seed, noise])``; the last layer starts near zero, so G starts near the
    identity on the seed and learns how far to move from it."""

    def __init__(self, feature_dim: int, noise_dim: int, hidden: int):
        super().__init__()
        self.noise_dim = noise_dim
        self.net = nn.Sequential(nn.Linear(feature_dim + noise_dim, hidden), nn.LeakyReLU(0.2),
                                 nn.Linear(hidden, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, feature_dim))
        nn.init.normal_(self.net[-1].weight, std=1e-3)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, seed: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return seed + self.net(torch.cat([seed, noise], dim=1))

    def sample_noise(self, n: int, like: torch.Tensor, rng: torch.Generator | None = None) -> torch.Tensor:
        return gaussian_noise(n, self.noise_dim, like, rng)


class MLPHallucinator(Hallucinator):
    def __init__(self, *, feature_dim: int, noise_dim: int = 64, hidden: int = 256,
                 synthetic_mass: float | None = None):
        super().__init__()
        self.generator = FeatureGenerator(feature_dim, noise_dim, hidden)
        self.synthetic_mass = synthetic_mass
