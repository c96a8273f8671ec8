"""Hallucinators: a pure function ``(features, labels, n_per_class, generator) -> (features, labels)`` and the
modules that own the generators (and whatever trains them). ``HALLUCINATORS[name](feature_dim=..., config=...)``
builds one from a run's settings."""
from ..registry import Registry
from .analogy import AnalogyHallucinator, analogy_loss
from .calibration import DistributionCalibration
from .functional import Hallucinator, gaussian_noise, hallucinate, sample_seeds
from .gan import Critic, GANHallucinator, anti_collapse, gradient_penalty, same_class_gap
from .mlp import FeatureGenerator, MLPHallucinator

HALLUCINATORS = Registry("hallucinator")
HALLUCINATORS["mlp"] = lambda *, feature_dim, config: MLPHallucinator(
    feature_dim=feature_dim, noise_dim=config.noise_dim, hidden=config.hallucinator_hidden)
HALLUCINATORS["gan"] = lambda *, feature_dim, config: GANHallucinator(
    feature_dim=feature_dim, noise_dim=config.noise_dim, hidden=config.hallucinator_hidden,
    critic_hidden=config.critic_hidden)
HALLUCINATORS["analogy"] = lambda *, feature_dim, config: AnalogyHallucinator(
    feature_dim=feature_dim, hidden=config.hallucinator_hidden, analogy_weight=config.analogy_weight)
HALLUCINATORS["calibration"] = lambda *, feature_dim, config: DistributionCalibration(
    feature_dim=feature_dim, k=config.calibration_k, alpha=config.calibration_alpha, tukey=config.calibration_tukey)

__all__ = ["HALLUCINATORS", "AnalogyHallucinator", "Critic", "DistributionCalibration", "FeatureGenerator",
           "GANHallucinator", "Hallucinator", "MLPHallucinator", "analogy_loss", "anti_collapse", "gaussian_noise",
           "gradient_penalty", "hallucinate", "same_class_gap", "sample_seeds"]
