"""The calibrated GAN hallucinator: a generator that carries base-class variation onto the seed, trained on a frozen
embedding against a conditional WGAN-GP critic, with a per-sample classification term.

- **Conditioned on base-class statistics** (distribution calibration, Yang et al. ICLR 2021): after Tukey's power
  transform, the seed's ``k`` nearest base-class means give the calibrated mean ``(t(seed) + sum of the k means) /
  (k + 1)``, and their spread gives the calibrated deviation, a draw from the average of their covariances plus
  ``alpha``. Each covariance is kept in a compact form, its top ``rank`` principal directions plus one variance for
  the rest (probabilistic PCA), so the statistics travel in the checkpoint and `hallucinate.load` needs no data;
  where even that form would be too large (``keep_statistics=False``: relation networks' 1600- and 2304-dimensional
  feature maps, Omniglot's 4112 base classes), the checkpoint leaves them out and `hallucinate.load` recomputes them
  from the train split.
- **It starts at the calibrated sample**: ``G = t^-1(calibrated mean + deviation + R(t(seed), mean, deviation))``
  with the residual ``R`` zero at initialisation, so before training it is distribution calibration (with the
  compact covariances), and training can only learn a correction to it.
- **The critic's real samples are other examples of the seed's class** (the episode's queries), never the seed
  itself: with the seed as "real", copying the seed is the GAN's optimum.
- **Per-sample classification** (AFHN's regulariser, Li et al. CVPR 2020): each synthetic feature alone, as its
  class's prototype, must classify the episode's queries, so the loss sees every sample, not only their mean.
- In training the seed's own base class is excluded from its nearest neighbours: its mean would hand the generator
  the answer that a novel class never has."""
import math

import torch
from torch import nn

from .calibration import tukey
from .functional import Hallucinator, TrainingStep, sample_seeds
from .gan import Critic, gradient_penalty


class CalibratedGenerator(nn.Module):
    """``G(seed, noise)``; the noise is standard normal, ``k * rank`` numbers for the principal directions of the k
    nearest classes and ``feature_dim`` for the isotropic rest. `fit` sets the base statistics (buffers, saved with
    the weights unless ``keep_statistics`` is False; loading a state dict resizes them to the saved number of base
    classes)."""

    def __init__(self, feature_dim: int, *, k: int = 2, alpha: float = 0.21, power: float = 0.5, rank: int = 16,
                 hidden: int = 256, keep_statistics: bool = True):
        super().__init__()
        if k < 1 or alpha < 0 or power <= 0 or rank < 0:
            raise ValueError(f"the calibrated generator needs k >= 1, alpha >= 0, tukey > 0 and rank >= 0; got k={k}, "
                             f"alpha={alpha}, tukey={power}, rank={rank}")
        rank = min(rank, feature_dim)  # a D-dimensional covariance has at most D principal directions
        self.feature_dim, self.k, self.alpha, self.power, self.rank = feature_dim, k, alpha, power, rank
        self.register_buffer("base_means", torch.zeros(0, feature_dim), persistent=keep_statistics)
        self.register_buffer("base_directions", torch.zeros(0, feature_dim, rank), persistent=keep_statistics)
        self.register_buffer("base_residual_variance", torch.zeros(0), persistent=keep_statistics)
        self.residual = nn.Sequential(nn.Linear(3 * feature_dim, hidden), nn.LeakyReLU(0.2),
                                      nn.Linear(hidden, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, feature_dim))
        nn.init.zeros_(self.residual[-1].weight)
        nn.init.zeros_(self.residual[-1].bias)

    @torch.no_grad()
    def fit(self, features: torch.Tensor, labels: torch.Tensor) -> "CalibratedGenerator":
        """Base statistics from the base classes' features ``[N, D]`` and labels ``[N]`` in ``0..C-1``: per class, the
        mean of the transformed features and the probabilistic-PCA form of their covariance (unbiased), from the
        singular values of the centred features (a class has far fewer examples than dimensions, so this is much
        cheaper than the covariance's eigendecomposition and gives the same form)."""
        if features.shape[1] != self.feature_dim:
            raise ValueError(f"features have {features.shape[1]} dimensions; this generator expects {self.feature_dim}")
        classes = labels.unique()
        if not torch.equal(classes, torch.arange(len(classes), device=labels.device)):
            raise ValueError("base labels must be 0..C-1 (a split's labels), each class present")
        counts = torch.bincount(labels)
        if len(classes) < self.k + 1 or counts.min() < 2:
            raise ValueError(f"the calibrated generator needs more than k={self.k} base classes of at least 2 examples "
                             f"each; got {len(classes)} classes, the smallest with {int(counts.min())}")
        transformed = tukey(features.double(), self.power)
        means, directions, residuals = [], [], []
        dim = self.feature_dim
        for c in classes:
            members = transformed[labels == c]
            centred = members - members.mean(0)
            _, singular, vectors = torch.linalg.svd(centred, full_matrices=False)
            variances = singular.pow(2) / (len(members) - 1)  # the nonzero eigenvalues of the covariance, descending
            top = variances[:self.rank]
            rest = top.new_zeros(())
            if self.rank < dim:  # the mean of the eigenvalues past the top rank, zeros included
                rest = (variances.sum() - top.sum()).clamp_min(0) / (dim - self.rank)
            spread = (top - rest).clamp_min(0).sqrt()
            kept = vectors[:self.rank].T * spread  # a class of n examples has at most n - 1 directions: pad the rest
            directions.append(torch.cat([kept, kept.new_zeros(dim, self.rank - kept.shape[1])], 1))
            means.append(members.mean(0))
            residuals.append(rest)
        self.base_means = torch.stack(means).float()
        self.base_directions = torch.stack(directions).float()
        self.base_residual_variance = torch.stack(residuals).float()
        return self

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        for name in ("base_means", "base_directions", "base_residual_variance"):
            saved = state_dict.get(prefix + name)
            if saved is not None:
                setattr(self, name, torch.empty_like(saved, device=getattr(self, name).device))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def nearest(self, transformed: torch.Tensor, exclude: torch.Tensor | None = None) -> torch.Tensor:
        """Indices ``[n, k]`` of each transformed seed's nearest base classes, never its ``exclude`` class."""
        if len(self.base_means) == 0:
            raise RuntimeError("the calibrated generator has no base-class statistics: call fit(features, labels) on "
                               "the base classes' features first")
        # An episode's M synthetic examples of a class share its K seeds: measure each distinct (seed, exclude) once.
        keys = transformed if exclude is None else torch.cat([transformed, exclude.unsqueeze(1).to(transformed)], 1)
        distinct, inverse = keys.unique(dim=0, return_inverse=True)
        distances = torch.cdist(distinct[:, :self.feature_dim], self.base_means)
        if exclude is not None:
            distances = distances.scatter(1, distinct[:, self.feature_dim:].long(), float("inf"))
        return distances.topk(self.k, largest=False).indices[inverse]

    def calibrated(self, seed: torch.Tensor, noise: torch.Tensor, exclude: torch.Tensor | None = None):
        """The transformed seed, its calibrated mean and a calibrated deviation, each ``[n, D]``."""
        transformed = tukey(seed, self.power)
        nearest = self.nearest(transformed, exclude)
        mean = (self.base_means[nearest].sum(1) + transformed) / (self.k + 1)
        along = noise[:, :self.k * self.rank].unflatten(1, (self.k, self.rank))
        deviation = torch.einsum("nkdr,nkr->nd", self.base_directions[nearest], along) / math.sqrt(self.k)
        spread = (self.base_residual_variance[nearest].mean(1) + self.alpha).sqrt()
        return transformed, mean, deviation + spread.unsqueeze(1) * noise[:, self.k * self.rank:]

    def forward(self, seed: torch.Tensor, noise: torch.Tensor, exclude: torch.Tensor | None = None) -> torch.Tensor:
        transformed, mean, deviation = self.calibrated(seed, noise, exclude)
        sample = mean + deviation + self.residual(torch.cat([transformed, mean, deviation], dim=1))
        return tukey(sample, 1 / self.power)

    def sample_noise(self, n: int, like: torch.Tensor, rng: torch.Generator | None = None) -> torch.Tensor:
        return torch.randn(n, self.k * self.rank + self.feature_dim, generator=rng, device=like.device,
                           dtype=like.dtype)


def per_sample_loss(synthetic: torch.Tensor, query: torch.Tensor, query_labels: torch.Tensor) -> torch.Tensor:
    """AFHN's classification regulariser: ``synthetic`` ``[n_way, M, D]``; for each j, the j-th synthetic feature of
    every class is that class's prototype and classifies the queries (ProtoNet's logits); the mean cross-entropy."""
    n_way, m, _ = synthetic.shape
    prototypes = synthetic.flatten(0, 1)
    # |q - p|^2 expanded: the broadcast difference would be [n_query, n_way * M, D], the step's largest tensor.
    distances = query.pow(2).sum(1, keepdim=True) - 2 * query @ prototypes.T + prototypes.pow(2).sum(1)
    logits = -distances.view(len(query), n_way, m)
    return nn.functional.cross_entropy(logits, query_labels.unsqueeze(1).expand(-1, m))


class CalibratedGANHallucinator(Hallucinator):
    needs_frozen_embedding = True

    def __init__(self, *, feature_dim: int, k: int = 2, alpha: float = 0.21, tukey: float = 0.5, rank: int = 16,
                 hidden: int = 256, critic_hidden: int = 256, synthetic_mass: float | None = 1.0,
                 adversarial_weight: float = 0.1, per_sample_weight: float = 1.0,
                 gradient_penalty_weight: float = 10.0, keep_statistics: bool = True):
        super().__init__()
        self.generator = CalibratedGenerator(feature_dim, k=k, alpha=alpha, power=tukey, rank=rank, hidden=hidden,
                                             keep_statistics=keep_statistics)
        self.critic = Critic(feature_dim, critic_hidden)
        self.synthetic_mass = synthetic_mass
        self.adversarial_weight, self.per_sample_weight = adversarial_weight, per_sample_weight
        self.gradient_penalty_weight = gradient_penalty_weight

    def fit(self, features: torch.Tensor, labels: torch.Tensor) -> "CalibratedGANHallucinator":
        self.generator.fit(features, labels)
        return self

    @property
    def needs_base_statistics(self) -> bool:
        return len(self.generator.base_means) == 0

    def before_training(self, base_features: torch.Tensor, base_labels: torch.Tensor) -> None:
        self.fit(base_features, base_labels)

    def critic_parameters(self) -> list[nn.Parameter]:
        return list(self.critic.parameters())

    def training_step(self, support, support_labels, query, query_labels, *, n_way, n_per_class, rng=None,
                      class_ids=None) -> TrainingStep:
        if class_ids is None:
            raise ValueError("the calibrated GAN trains on base-class episodes and needs their class_ids (to keep "
                             "each seed's own class out of its nearest base classes)")
        seeds = sample_seeds(support_labels, n_per_class, rng, n_way=n_way)
        seed_labels = support_labels[seeds]
        seed_features = support[seeds].detach()
        synthetic = self.generator(seed_features, self.generator.sample_noise(len(seeds), support, rng),
                                   class_ids[seed_labels])
        condition = seed_features
        losses = {"per_sample": self.per_sample_weight
                  * per_sample_loss(synthetic.unflatten(0, (n_way, n_per_class)), query.detach(), query_labels),
                  "adversarial": -self.adversarial_weight * self.critic(synthetic, condition).mean()}
        fake = synthetic.detach()
        # Real: a query of the seed's class (queries are class by class, n_query / n_way of each).
        per_way = len(query) // n_way
        picks = torch.randint(per_way, (len(seeds),), generator=rng, device=query.device)
        real = query.detach()[seed_labels * per_way + picks]

        def critic_losses() -> dict[str, torch.Tensor]:
            return {"critic": self.critic(fake, condition).mean() - self.critic(real, condition).mean(),
                    "gradient_penalty": self.gradient_penalty_weight
                    * gradient_penalty(self.critic, real, fake, condition, rng)}

        return self._augmented(support, support_labels, seeds, synthetic, n_per_class, losses=losses,
                               critic_losses=critic_losses)
