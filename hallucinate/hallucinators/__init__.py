"""Hallucinators: a pure function ``(features, labels, n_per_class, generator) -> (features, labels, weights)`` and
the modules that own the generators and their losses (`Hallucinator.training_step`). ``HALLUCINATORS[name](
feature_dim=..., config=...)`` builds one from a run's settings, each reading only its own."""
from ..registry import Registry
from .analogy import AnalogyHallucinator, analogy_loss
from .calibrated_gan import CalibratedGANHallucinator, CalibratedGenerator, per_sample_loss
from .calibration import DistributionCalibration
from .functional import Hallucinator, TrainingStep, gaussian_noise, hallucinate, sample_seeds, synthetic_weights
from .gan import Critic, GANHallucinator, anti_collapse, gradient_penalty, same_class_gap
from .mlp import FeatureGenerator, MLPHallucinator


def _mass(config) -> float | None:
    return config.synthetic_mass if config.shot_aware_weights else None


def _gan(*, feature_dim: int, config):
    if config.gan_generator == "calibrated":
        return CalibratedGANHallucinator(
            feature_dim=feature_dim, k=config.calibration_k, alpha=config.calibration_alpha,
            tukey=config.calibration_tukey, rank=config.calibration_rank, hidden=config.hallucinator_hidden,
            critic_hidden=config.critic_hidden, synthetic_mass=_mass(config),
            adversarial_weight=config.adversarial_weight, per_sample_weight=config.per_sample_weight,
            gradient_penalty_weight=config.gradient_penalty_weight)
    if config.gan_generator == "noise":
        return GANHallucinator(
            feature_dim=feature_dim, noise_dim=config.noise_dim, hidden=config.hallucinator_hidden,
            critic_hidden=config.critic_hidden, synthetic_mass=_mass(config),
            adversarial_weight=config.adversarial_weight, anti_collapse_weight=config.anti_collapse_weight,
            gradient_penalty_weight=config.gradient_penalty_weight)
    raise ValueError(f"unknown gan_generator {config.gan_generator!r}; valid: calibrated, noise")


HALLUCINATORS = Registry("hallucinator")
HALLUCINATORS["gan"] = _gan
HALLUCINATORS["mlp"] = lambda *, feature_dim, config: MLPHallucinator(
    feature_dim=feature_dim, noise_dim=config.noise_dim, hidden=config.hallucinator_hidden,
    synthetic_mass=_mass(config))
HALLUCINATORS["analogy"] = lambda *, feature_dim, config: AnalogyHallucinator(
    feature_dim=feature_dim, hidden=config.hallucinator_hidden, analogy_weight=config.analogy_weight,
    synthetic_mass=_mass(config))
HALLUCINATORS["calibration"] = lambda *, feature_dim, config: DistributionCalibration(
    feature_dim=feature_dim, k=config.calibration_k, alpha=config.calibration_alpha, tukey=config.calibration_tukey,
    synthetic_mass=_mass(config))

__all__ = ["HALLUCINATORS", "AnalogyHallucinator", "CalibratedGANHallucinator", "CalibratedGenerator", "Critic",
           "DistributionCalibration", "FeatureGenerator", "GANHallucinator", "Hallucinator", "MLPHallucinator",
           "TrainingStep", "analogy_loss", "anti_collapse", "gaussian_noise", "gradient_penalty", "hallucinate",
           "per_sample_loss", "same_class_gap", "sample_seeds", "synthetic_weights"]
