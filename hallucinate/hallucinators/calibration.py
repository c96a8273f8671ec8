"""Distribution calibration (Yang et al. ICLR 2021): a training-free hallucinator. Each seed borrows the statistics
of its nearest base classes: synthetic features are drawn from a Gaussian whose mean averages the seed with the
``k`` nearest base-class means and whose covariance averages those classes' covariances (plus ``alpha``), all
after Tukey's power transform ``x -> x ** tukey`` that makes the features more Gaussian."""
import torch
from torch import nn

from .functional import Hallucinator, gaussian_noise


def tukey(x: torch.Tensor, power: float) -> torch.Tensor:
    return x.sign() * x.abs().pow(power)


class CalibratedSampler(nn.Module):
    """``G(seed, noise) = tukey^-1(mean(seed) + chol(cov(seed)) @ noise)``, the noise standard normal. The base
    statistics are not weights: `fit` computes them from base-class features, and checkpoints do not carry them."""

    def __init__(self, feature_dim: int, k: int, alpha: float, power: float):
        super().__init__()
        if k < 1 or alpha < 0 or power <= 0:
            raise ValueError(f"distribution calibration needs k >= 1, alpha >= 0 and tukey > 0; got k={k}, "
                             f"alpha={alpha}, tukey={power}")
        self.feature_dim, self.k, self.alpha, self.power = feature_dim, k, alpha, power
        self.register_buffer("means", torch.zeros(0, feature_dim), persistent=False)
        self.register_buffer("covariances", torch.zeros(0, feature_dim, feature_dim), persistent=False)
        self._roots: dict[tuple, torch.Tensor] = {}  # square roots already taken, by (nearest classes, alpha)

    @torch.no_grad()
    def fit(self, features: torch.Tensor, labels: torch.Tensor) -> "CalibratedSampler":
        """Mean and covariance (unbiased) of each base class's transformed features ``[N, D]``, labels ``[N]``."""
        if features.shape[1] != self.feature_dim:
            raise ValueError(f"features have {features.shape[1]} dimensions; this sampler expects {self.feature_dim}")
        classes = labels.unique()
        counts = torch.stack([(labels == c).sum() for c in classes])
        if len(classes) < self.k or counts.min() < 2:
            raise ValueError(f"calibration needs at least k={self.k} base classes of at least 2 examples each; got "
                             f"{len(classes)} classes, the smallest with {int(counts.min())}")
        transformed = tukey(features.double(), self.power)
        self.means = torch.stack([transformed[labels == c].mean(0) for c in classes]).float()
        self.covariances = torch.stack([transformed[labels == c].T.cov() for c in classes]).float()
        self._roots = {}
        return self

    def calibrate(self, seed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The calibrated mean ``[n, D]`` and covariance ``[n, D, D]`` of each seed, in the transformed space."""
        mean, covariance, which, _ = self._calibrate(seed)
        return mean, covariance[which]

    def _calibrate(self, seed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Means ``[n, D]``; covariances ``[u, D, D]`` of the u distinct sets ``[u, k]`` of nearest base classes (the
        seeds of one class share theirs), and which of them each seed has ``[n]``."""
        if len(self.means) == 0:
            raise RuntimeError("distribution calibration has no base-class statistics: call fit(features, labels) "
                               "on base-class features first")
        transformed = tukey(seed, self.power)
        nearest = torch.cdist(transformed, self.means).topk(self.k, largest=False).indices.sort(1).values
        mean = (self.means[nearest].sum(1) + transformed) / (self.k + 1)
        sets, which = nearest.unique(dim=0, return_inverse=True)
        covariance = self.covariances[sets].mean(1) + self.alpha * torch.eye(self.feature_dim, device=seed.device)
        return mean, covariance, which, sets

    def forward(self, seed: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        mean, covariance, which, sets = self._calibrate(seed)
        # A symmetric square root, not Cholesky: with alpha = 0 a covariance of dead (always-zero) features is only
        # positive semi-definite. An evaluation meets the same sets of nearest classes again and again, so each
        # root is taken once (`fit` forgets them).
        keys = [(tuple(row), self.alpha) for row in sets.tolist()]
        new = [i for i, key in enumerate(keys) if key not in self._roots]
        if new:
            values, vectors = torch.linalg.eigh(covariance[new])
            for i, root in zip(new, vectors * values.clamp_min(0).sqrt().unsqueeze(1)):
                self._roots[keys[i]] = root
        deviation = torch.empty_like(noise)
        for u, key in enumerate(keys):  # one matrix product per set (indexing a root per seed would copy n of them)
            members = (which == u).nonzero().squeeze(1)
            deviation[members] = noise[members] @ self._roots[key].T
        return tukey(mean + deviation, 1 / self.power)

    def sample_noise(self, n: int, like: torch.Tensor, rng: torch.Generator | None = None) -> torch.Tensor:
        return gaussian_noise(n, self.feature_dim, like, rng)


class DistributionCalibration(Hallucinator):
    def __init__(self, *, feature_dim: int, k: int = 2, alpha: float = 0.21, tukey: float = 0.5,
                 synthetic_mass: float | None = None):
        super().__init__()
        self.generator = CalibratedSampler(feature_dim, k, alpha, tukey)
        self.synthetic_mass = synthetic_mass

    def fit(self, features: torch.Tensor, labels: torch.Tensor) -> "DistributionCalibration":
        self.generator.fit(features, labels)
        return self


def use_calibration(model, base_split, *, device: torch.device, n_synthetic: int, precision: str = "fp32",
                    cache=None, synthetic_mass: float | None = None) -> None:
    """Give ``model`` a distribution-calibration hallucinator fitted on its backbone's features of ``base_split``
    (the train split, without augmentation), adding ``n_synthetic`` examples per class, each weighing
    ``synthetic_mass / n_synthetic`` (None: 1, Yang et al.'s pooling), with the settings in ``model.config``.
    Replaces any hallucinator the model had."""
    from ..evaluation.episodes import feature_bank

    bank = feature_bank(model, base_split, device=device, precision=precision, cache=cache)
    config = model.config
    calibration = DistributionCalibration(feature_dim=bank.shape[1], k=config.calibration_k,
                                          alpha=config.calibration_alpha, tukey=config.calibration_tukey,
                                          synthetic_mass=synthetic_mass)
    model.hallucinator = calibration.fit(bank, torch.as_tensor(base_split.labels, device=bank.device)).to(device)
    model.n_synthetic = n_synthetic
    model.hallucinating = n_synthetic > 0
