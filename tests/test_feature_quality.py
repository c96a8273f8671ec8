"""The measures of synthetic features, on Gaussian classes whose answers are known."""
import numpy as np
import pytest
import torch

from hallucinate.evaluation import CopySeed, feature_quality, frechet_distance
from hallucinate.hallucinators import MLPHallucinator


def test_frechet_distance_of_a_set_with_itself_is_zero_and_a_shift_adds_its_square():
    features = torch.randn(2000, 8, generator=torch.Generator().manual_seed(0))
    assert frechet_distance(features, features) == pytest.approx(0, abs=1e-6)
    for norm in (0.5, 2.0):
        shift = torch.zeros(8)
        shift[0] = norm
        # Same covariance, means apart by `shift`: the Fréchet distance is |shift|^2.
        assert frechet_distance(features + shift, features) == pytest.approx(norm ** 2, rel=1e-4)
    wider = frechet_distance(2 * features, features)
    assert wider > frechet_distance(1.1 * features, features) > 0


def _classes(n_classes=6, per_class=41, dim=5, spread=0.3):
    rng = torch.Generator().manual_seed(0)
    centers = 3 * torch.randn(n_classes, dim, generator=rng)
    labels = np.repeat(np.arange(n_classes), per_class)
    return centers[labels] + spread * torch.randn(len(labels), dim, generator=rng), labels, centers


class ToCenter:
    """Synthetic features drawn from the true class distribution around the seed's class center: ideal."""

    def __init__(self, centers, spread):
        self.centers, self.spread = centers, spread

    def __call__(self, seed, noise):
        nearest = torch.cdist(seed, self.centers).argmin(1)
        return self.centers[nearest] + self.spread * noise

    def sample_noise(self, n, like, rng=None):
        return torch.randn(n, like.shape[1], generator=rng)


class OtherClass(ToCenter):
    def __call__(self, seed, noise):
        nearest = torch.cdist(seed, self.centers).argmin(1)
        return self.centers[(nearest + 1) % len(self.centers)] + self.spread * noise


def test_copying_the_seed_is_total_collapse_and_agrees_like_the_real_features():
    bank, labels, _ = _classes()
    quality = feature_quality(CopySeed(), bank, labels)
    assert quality.diversity == 0 and quality.collapsed_classes == 1
    assert quality.classes == 6 and quality.per_class == 20
    assert quality.real_agreement > 0.95 and quality.seed_class_agreement == 1  # well-separated classes


def test_ideal_generator_matches_the_real_floor_and_a_wrong_one_does_not():
    bank, labels, centers = _classes()
    ideal = feature_quality(ToCenter(centers, 0.3), bank, labels)
    assert ideal.diversity == pytest.approx(1, abs=0.15) and ideal.collapsed_classes == 0
    assert ideal.seed_class_agreement > 0.95
    assert ideal.frechet_distance < 3 * ideal.real_frechet_distance + 0.05
    # Every class's features moved onto the next class: pooled over classes the distribution is unchanged, so the
    # Fréchet distance cannot see it (why agreement is measured beside it), and agreement drops to zero.
    wrong = feature_quality(OtherClass(centers, 0.3), bank, labels)
    assert wrong.seed_class_agreement < 0.05
    assert wrong.frechet_distance < 3 * wrong.real_frechet_distance + 0.05


def test_measures_are_deterministic_under_a_seed_and_classes_are_capped():
    bank, labels, _ = _classes()
    generator = MLPHallucinator(feature_dim=5, noise_dim=3, hidden=8).generator
    assert feature_quality(generator, bank, labels, seed=3) == feature_quality(generator, bank, labels, seed=3)
    assert feature_quality(generator, bank, labels, classes=4).classes == 4
    with pytest.raises(ValueError, match="at least 5"):
        feature_quality(generator, bank[:4], labels[:4])
