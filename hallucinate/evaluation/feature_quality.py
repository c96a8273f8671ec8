"""How much hallucinated features look like real ones, on novel classes: Fréchet distance to held-out real features
(pytorch-fid's formula on backbone features), diversity against real diversity, and how often a classifier fitted on
real features puts a synthetic feature in its seed's class.

Protocol, per novel class: one real seed (the 1-shot regime hallucination is for); the class's other real features
split in two halves, A (the reference) and B (a real sample the size of the synthetic one). Each measure is also
computed for B, so each row has its real-data floor beside it, at the same sample sizes."""
import warnings
from dataclasses import dataclass

import numpy as np
import scipy.linalg
import torch
from torch import nn

from ..hallucinators import hallucinate


class CopySeed:
    """The do-nothing generator: every synthetic feature is a copy of its seed (the "no hallucination" row)."""

    def __call__(self, seed: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return seed.clone()

    def sample_noise(self, n: int, like: torch.Tensor, rng: torch.Generator | None = None) -> torch.Tensor:
        return like.new_zeros(n, 0)


def frechet_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """Fréchet distance between Gaussians fitted to feature sets ``a`` ``[n, D]`` and ``b`` ``[m, D]``."""
    from pytorch_fid.fid_score import calculate_frechet_distance

    a, b = a.double().cpu().numpy(), b.double().cpu().numpy()
    with warnings.catch_warnings():
        # A singular covariance (copies of a few seeds) is expected and handled by pytorch-fid's diagonal offset;
        # pytorch-fid 0.3 passes sqrtm an argument SciPy deprecates.
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        return float(calculate_frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0),
                                                np.cov(b, rowvar=False)))


def mean_pairwise_distance(features: torch.Tensor) -> torch.Tensor:
    n = len(features)
    return torch.pdist(features).sum() * 2 / (n * (n - 1))


def fit_logistic_regression(features: torch.Tensor, labels: torch.Tensor, *, weight_decay: float = 1e-3,
                            steps: int = 100):
    """Multinomial logistic regression on standardized ``features`` (L-BFGS from zero weights: deterministic).
    Returns ``predict(features) -> classes``."""
    mean, std = features.double().mean(0), features.double().std(0).clamp_min(1e-6)
    classifier = nn.Linear(features.shape[1], int(labels.max()) + 1, device=features.device).double()
    nn.init.zeros_(classifier.weight)
    nn.init.zeros_(classifier.bias)
    x = (features.double() - mean) / std
    optimizer = torch.optim.LBFGS(classifier.parameters(), max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(classifier(x), labels) + weight_decay * classifier.weight.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    return lambda new: classifier((new.double() - mean) / std).argmax(1)


@dataclass(frozen=True)
class FeatureQuality:
    frechet_distance: float  # synthetic vs reference real (A)
    real_frechet_distance: float  # real sample B vs A: the floor at this sample size
    diversity: float  # mean pairwise distance within a class, synthetic / real (B); 0 is total collapse
    collapsed_classes: float  # fraction of classes whose synthetic diversity is under 10% of the real one
    seed_class_agreement: float  # fraction of synthetic features a classifier fitted on A assigns to the seed's class
    real_agreement: float  # the same classifier on B: its accuracy on real features it did not see
    classes: int
    per_class: int  # synthetic (and B) features per class

    def as_dict(self) -> dict:
        return {key: round(value, 4) if isinstance(value, float) else value for key, value in vars(self).items()}


@torch.no_grad()
def split_real(bank: torch.Tensor, labels: np.ndarray, *, classes: int = 100, seed: int = 0):
    """Per class (at most ``classes`` of them, chosen by ``seed``; the logistic regression's cost grows with the
    number of classes): one seed index, and the rest split into A and B.
    Returns (seed features [C, D], A features, A labels, B features, B labels), labels ``0..C-1``."""
    rng = np.random.default_rng(seed)
    chosen = np.unique(labels)
    if classes < len(chosen):
        chosen = np.sort(rng.choice(chosen, size=classes, replace=False))
    seeds, a, b = [], [], []
    for c in chosen:
        members = rng.permutation(np.flatnonzero(labels == c))
        if len(members) < 5:
            raise ValueError(f"class {c} has {len(members)} images; measuring features needs at least 5")
        rest = members[1:]
        half = len(rest) // 2
        seeds.append(members[0])
        a.append(rest[half:])
        b.append(rest[:half])
    per_class = min(len(x) for x in b)
    b = [x[:per_class] for x in b]
    tensor = lambda groups: torch.as_tensor(np.concatenate(groups), device=bank.device)
    group_labels = lambda groups: torch.cat([torch.full((len(x),), i, device=bank.device)
                                             for i, x in enumerate(groups)])
    return (bank[torch.as_tensor(np.asarray(seeds), device=bank.device)], bank[tensor(a)], group_labels(a),
            bank[tensor(b)], group_labels(b))


@torch.no_grad()
def feature_quality(generator, bank: torch.Tensor, labels: np.ndarray, *, classes: int = 100,
                    seed: int = 0) -> FeatureQuality:
    """Measure ``generator`` (anything `hallucinate` takes: a hallucinator's ``.generator``, or `CopySeed()`) on the
    features ``bank`` ``[N, D]`` of a split's novel classes, ``labels`` ``[N]``."""
    seed_features, real_a, labels_a, real_b, labels_b = split_real(bank, labels, classes=classes, seed=seed)
    n_classes, per_class = len(seed_features), len(real_b) // len(seed_features)
    seed_labels = torch.arange(n_classes, device=bank.device)
    generated, generated_labels, _ = hallucinate(seed_features, seed_labels, per_class, generator,
                                              torch.Generator(device=bank.device).manual_seed(seed))
    synthetic, synthetic_labels = generated[n_classes:], generated_labels[n_classes:]
    predict = fit_logistic_regression(real_a, labels_a)
    agreement = lambda x, y: float((predict(x) == y).double().mean())
    ratios = torch.stack([mean_pairwise_distance(synthetic[synthetic_labels == c])
                          / mean_pairwise_distance(real_b[labels_b == c]) for c in range(n_classes)])
    return FeatureQuality(
        frechet_distance=frechet_distance(synthetic, real_a), real_frechet_distance=frechet_distance(real_b, real_a),
        diversity=float(ratios.mean()), collapsed_classes=float((ratios < 0.1).double().mean()),
        seed_class_agreement=agreement(synthetic, synthetic_labels), real_agreement=agreement(real_b, labels_b),
        classes=n_classes, per_class=per_class)
