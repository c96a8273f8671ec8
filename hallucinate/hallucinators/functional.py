"""The functional face of a hallucinator: ``(features, labels, n_per_class, generator) -> (features, labels,
support weights)``, and the module face every hallucinator shares, with the one training hook the loop calls.

A generator is any callable ``generator(seeds, noise) -> synthetic`` that also says how its noise is drawn,
``generator.sample_noise(n, like, rng)``: Gaussian for the MLP, GAN and calibration generators, base-class pairs
for the analogy generator."""
from dataclasses import dataclass, field
from typing import Callable, Protocol

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


def synthetic_weights(n_synthetic: int, n_per_class: int, mass: float | None, like: torch.Tensor) -> torch.Tensor:
    """The support weight of each of ``n_synthetic`` synthetic examples made ``n_per_class`` to a class: ``mass /
    n_per_class``, so a class's synthetic examples weigh ``mass`` in all against its K real ones at weight 1 (in a
    weighted class mean they take the share ``mass / (mass + K)``, which fades as K grows); ``mass=None``: each weighs
    1, as a real example does."""
    weight = 1.0 if mass is None else mass / n_per_class
    return like.new_full((n_synthetic,), weight)


def hallucinate(features: torch.Tensor, labels: torch.Tensor, n_per_class: int, generator: Generator | None,
                rng: torch.Generator | None = None, *, weights: torch.Tensor | None = None,
                synthetic_mass: float | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Append ``n_per_class`` synthetic features per class, each ``generator(seed feature, noise)`` from a real
    seed of that class, and return ``(features, labels, support weights)``: the real examples keep ``weights``
    (none: 1 each), the synthetic ones get `synthetic_weights`. With ``n_per_class == 0`` the inputs come back
    untouched."""
    if weights is None:
        weights = features.new_ones(len(features))
    if n_per_class == 0:
        return features, labels, weights
    seeds = sample_seeds(labels, n_per_class, rng)
    synthetic = generator(features[seeds], generator.sample_noise(len(seeds), features, rng))
    return (torch.cat([features, synthetic]), torch.cat([labels, labels[seeds]]),
            torch.cat([weights, synthetic_weights(len(seeds), n_per_class, synthetic_mass, weights)]))


@dataclass
class TrainingStep:
    """What a hallucinator makes of one training episode: the support set with its synthetic examples and their
    weights, the generator's own losses (already weighted; the loop adds them to the learner's), and, for a
    hallucinator with a critic, ``critic_losses()``: the critic's losses on this step's detached samples, which the
    loop minimises with the critic's optimizer after the main step."""

    support: torch.Tensor
    support_labels: torch.Tensor
    support_weights: torch.Tensor
    losses: dict[str, torch.Tensor] = field(default_factory=dict)
    critic_losses: Callable[[], dict[str, torch.Tensor]] | None = None


class Hallucinator(nn.Module):
    """The module face: owns ``self.generator`` (and whatever trains it) and hallucinates with it when called.

    ``synthetic_mass``: the total support weight of a class's synthetic examples (see `synthetic_weights`); None
    gives each the weight of a real example. ``training_step`` is all the training loop knows of a hallucinator; the
    base class's adds synthetic examples and no loss of its own (the learner's loss alone trains the generator)."""

    generator: Generator
    synthetic_mass: float | None = None
    # True when the hallucinator holds state that each training process would fill from its own episodes (the
    # analogy bank), so that ranks under torchrun would drift apart: such a hallucinator trains in one process.
    per_process_state = False
    # True when the generator is built on statistics of the frozen embedding's base-class features (`before_training`):
    # trained jointly with the backbone, those features would move away from the statistics.
    needs_frozen_embedding = False

    def critic_parameters(self) -> list[nn.Parameter]:
        """The parameters the critic's optimizer steps (none for a hallucinator without a critic)."""
        return []

    def training_step(self, support: torch.Tensor, support_labels: torch.Tensor, query: torch.Tensor,
                      query_labels: torch.Tensor, *, n_way: int, n_per_class: int,
                      rng: torch.Generator | None = None, class_ids: torch.Tensor | None = None) -> TrainingStep:
        """One training episode (``support`` and ``query`` real features, ``class_ids`` the episode's base classes):
        the support set to hand the learner, and this hallucinator's losses."""
        seeds = sample_seeds(support_labels, n_per_class, rng, n_way=n_way)
        synthetic = self.generator(support[seeds], self.generator.sample_noise(len(seeds), support, rng))
        return self._augmented(support, support_labels, seeds, synthetic, n_per_class)

    def _augmented(self, support, support_labels, seeds, synthetic, n_per_class, **rest) -> TrainingStep:
        weights = torch.cat([support.new_ones(len(support)),
                             synthetic_weights(len(seeds), n_per_class, self.synthetic_mass, support)])
        return TrainingStep(torch.cat([support, synthetic]), torch.cat([support_labels, support_labels[seeds]]),
                            weights, **rest)

    def before_training(self, base_features: torch.Tensor, base_labels: torch.Tensor) -> None:
        """Called by the training loop on a frozen backbone, with every base-class feature ``[N, D]`` and its label
        ``[N]``, before the first episode: a hallucinator that needs base-class statistics takes them here."""

    @property
    def needs_base_statistics(self) -> bool:
        """True when the hallucinator's base-class statistics were left out of its checkpoint and are not yet
        recomputed: `hallucinate.load` then hands `before_training` the train split's features."""
        return False

    def before_validation(self, model: nn.Module, base_split, *, seed: int, device: torch.device,
                          precision: str) -> None:
        """Called by the training loop before each validation, with the model in training mode: a hallucinator
        that keeps features seen in training refreshes them here. Nothing to do for most."""

    def forward(self, features: torch.Tensor, labels: torch.Tensor, n_per_class: int,
                rng: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return hallucinate(features, labels, n_per_class, self.generator, rng, synthetic_mass=self.synthetic_mass)
