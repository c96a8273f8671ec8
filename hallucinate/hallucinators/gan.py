"""The GAN hallucinator: a generator trained jointly with the learner (Wang et al. 2018) and adversarially against
a class-conditional WGAN-GP critic with an anti-collapse term (Li et al. 2020, AFHN)."""
import torch
from torch import nn

from .mlp import MLPHallucinator


class Critic(nn.Module):
    """``D(feature, condition) -> score``: the condition is the mean real feature of the class (its prototype)."""

    def __init__(self, feature_dim: int, hidden: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2 * feature_dim, hidden), nn.LeakyReLU(0.2),
                                 nn.Linear(hidden, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, 1))

    def forward(self, feature: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([feature, condition], dim=1)).squeeze(1)


def gradient_penalty(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor, condition: torch.Tensor,
                     rng: torch.Generator | None = None) -> torch.Tensor:
    """WGAN-GP (Gulrajani et al. 2017): ``E[(||grad_x D(x, c)|| - 1)^2]`` at random points between paired real
    and fake features of the same class."""
    alpha = torch.rand(len(real), 1, generator=rng, device=real.device, dtype=real.dtype)
    mixed = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(mixed, condition).sum(), mixed, create_graph=True)
    return (grad.norm(dim=1) - 1).pow(2).mean()


def anti_collapse(fake_a: torch.Tensor, fake_b: torch.Tensor, real_gap: torch.Tensor) -> torch.Tensor:
    """Zero when the two synthetic features that one seed gives under two noises lie at least as far apart (mean
    absolute difference) as two real examples of a class do (``real_gap``); it grows as G ignores its noise and
    the pair collapses onto one feature. Unlike an unbounded ratio it asks for real-sized diversity, no more."""
    return nn.functional.relu(1 - (fake_a - fake_b).abs().mean(1) / real_gap).mean()


def same_class_gap(features: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference between two examples of the same class; ``features`` is ``[n_way, n, D]``, n >= 2."""
    n_way, n, dim = features.shape
    return torch.cdist(features, features, p=1).sum() / (n_way * n * (n - 1) * dim)


class GANHallucinator(MLPHallucinator):
    """The MLP hallucinator plus the critic that trains its generator adversarially (the critic only trains)."""

    def __init__(self, *, feature_dim: int, noise_dim: int = 64, hidden: int = 256, critic_hidden: int = 256):
        super().__init__(feature_dim=feature_dim, noise_dim=noise_dim, hidden=hidden)
        self.critic = Critic(feature_dim, critic_hidden)
