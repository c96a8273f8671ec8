"""The noise GAN hallucinator (the design before the calibrated GAN, kept for comparison): Gaussian noise around the
seed, a generator trained jointly with the learner (Wang et al. 2018) and adversarially against a class-conditional
WGAN-GP critic with an anti-collapse term (Li et al. 2020, AFHN), the critic's real samples the episode's queries."""
import torch
from torch import nn

from .functional import TrainingStep, sample_seeds
from .mlp import MLPHallucinator
from ..learners.protonet import class_means


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
    """The MLP hallucinator plus the critic that trains its generator adversarially (the critic only trains). The
    condition is the class's mean support feature; the adversarial terms train G alone (its seeds are detached, so
    they cannot pull the backbone)."""

    def __init__(self, *, feature_dim: int, noise_dim: int = 64, hidden: int = 256, critic_hidden: int = 256,
                 synthetic_mass: float | None = None, adversarial_weight: float = 0.1,
                 anti_collapse_weight: float = 1.0, gradient_penalty_weight: float = 10.0):
        super().__init__(feature_dim=feature_dim, noise_dim=noise_dim, hidden=hidden, synthetic_mass=synthetic_mass)
        self.critic = Critic(feature_dim, critic_hidden)
        self.adversarial_weight, self.anti_collapse_weight = adversarial_weight, anti_collapse_weight
        self.gradient_penalty_weight = gradient_penalty_weight

    def critic_parameters(self) -> list[nn.Parameter]:
        return list(self.critic.parameters())

    def training_step(self, support, support_labels, query, query_labels, *, n_way, n_per_class, rng=None,
                      class_ids=None) -> TrainingStep:
        generator = self.generator
        seeds = sample_seeds(support_labels, n_per_class, rng, n_way=n_way)
        noise = generator.sample_noise(len(seeds), support, rng)
        synthetic = generator(support[seeds], noise)
        k_shot, q_query = len(support) // n_way, len(query) // n_way
        real = torch.cat([support.detach().unflatten(0, (n_way, k_shot)),
                          query.detach().unflatten(0, (n_way, q_query))], 1)
        detached_seeds = support[seeds].detach()
        condition = class_means(support.detach(), support_labels, n_way)[support_labels[seeds]]
        fake = generator(detached_seeds, noise)
        other = generator(detached_seeds, generator.sample_noise(len(seeds), support, rng))
        losses = {"adversarial": -self.adversarial_weight * self.critic(fake, condition).mean(),
                  "anti_collapse": self.anti_collapse_weight * anti_collapse(fake, other, same_class_gap(real))}
        real_queries = query.detach()[sample_seeds(query_labels, n_per_class, rng, n_way=n_way)]
        fake = fake.detach()

        def critic_losses() -> dict[str, torch.Tensor]:
            return {"critic": self.critic(fake, condition).mean() - self.critic(real_queries, condition).mean(),
                    "gradient_penalty": self.gradient_penalty_weight
                    * gradient_penalty(self.critic, real_queries, fake, condition, rng)}

        return self._augmented(support, support_labels, seeds, synthetic, n_per_class, losses=losses,
                               critic_losses=critic_losses)
