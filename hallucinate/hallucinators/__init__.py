"""Hallucinators: a pure function ``(features, labels, n_per_class, generator) -> (features, labels, weights)`` and
the modules that own the generators and their losses (`Hallucinator.training_step`). ``HALLUCINATORS[name](
feature_dim=..., **its settings)`` builds one (keywords named as a task's config names them);
``HALLUCINATORS.build(name, config, feature_dim=...)`` takes them from a config."""
from ..registry import Registry
from .analogy import AnalogyHallucinator, analogy_loss
from .calibrated_gan import CalibratedGANHallucinator, CalibratedGenerator, per_sample_loss
from .calibration import DistributionCalibration
from .functional import Hallucinator, TrainingStep, gaussian_noise, hallucinate, sample_seeds, synthetic_weights
from .gan import Critic, GANHallucinator, anti_collapse, gradient_penalty, same_class_gap
from .mlp import FeatureGenerator, MLPHallucinator


def _mass(shot_aware_weights: bool, synthetic_mass: float) -> float | None:
    return synthetic_mass if shot_aware_weights else None


def _gan(*, feature_dim: int, gan_generator: str, noise_dim: int, hallucinator_hidden: int, critic_hidden: int,
         calibration_k: int, calibration_alpha: float, calibration_tukey: float, calibration_rank: int,
         calibration_in_checkpoint: bool, shot_aware_weights: bool, synthetic_mass: float, adversarial_weight: float,
         anti_collapse_weight: float, per_sample_weight: float, gradient_penalty_weight: float):
    mass = _mass(shot_aware_weights, synthetic_mass)
    if gan_generator == "calibrated":
        return CalibratedGANHallucinator(
            feature_dim=feature_dim, k=calibration_k, alpha=calibration_alpha, tukey=calibration_tukey,
            rank=calibration_rank, hidden=hallucinator_hidden, critic_hidden=critic_hidden, synthetic_mass=mass,
            adversarial_weight=adversarial_weight, per_sample_weight=per_sample_weight,
            gradient_penalty_weight=gradient_penalty_weight, keep_statistics=calibration_in_checkpoint)
    if gan_generator == "noise":
        return GANHallucinator(
            feature_dim=feature_dim, noise_dim=noise_dim, hidden=hallucinator_hidden, critic_hidden=critic_hidden,
            synthetic_mass=mass, adversarial_weight=adversarial_weight, anti_collapse_weight=anti_collapse_weight,
            gradient_penalty_weight=gradient_penalty_weight)
    raise ValueError(f"unknown gan_generator {gan_generator!r}; valid: calibrated, noise")


def _mlp(*, feature_dim: int, noise_dim: int, hallucinator_hidden: int, shot_aware_weights: bool,
         synthetic_mass: float) -> MLPHallucinator:
    return MLPHallucinator(feature_dim=feature_dim, noise_dim=noise_dim, hidden=hallucinator_hidden,
                           synthetic_mass=_mass(shot_aware_weights, synthetic_mass))


def _analogy(*, feature_dim: int, hallucinator_hidden: int, analogy_weight: float, shot_aware_weights: bool,
             synthetic_mass: float) -> AnalogyHallucinator:
    return AnalogyHallucinator(feature_dim=feature_dim, hidden=hallucinator_hidden, analogy_weight=analogy_weight,
                               synthetic_mass=_mass(shot_aware_weights, synthetic_mass))


def _calibration(*, feature_dim: int, calibration_k: int, calibration_alpha: float, calibration_tukey: float,
                 shot_aware_weights: bool, synthetic_mass: float) -> DistributionCalibration:
    return DistributionCalibration(feature_dim=feature_dim, k=calibration_k, alpha=calibration_alpha,
                                   tukey=calibration_tukey, synthetic_mass=_mass(shot_aware_weights, synthetic_mass))


HALLUCINATORS = Registry("hallucinator")
HALLUCINATORS["gan"] = _gan
HALLUCINATORS["mlp"] = _mlp
HALLUCINATORS["analogy"] = _analogy
HALLUCINATORS["calibration"] = _calibration

__all__ = ["HALLUCINATORS", "AnalogyHallucinator", "CalibratedGANHallucinator", "CalibratedGenerator", "Critic",
           "DistributionCalibration", "FeatureGenerator", "GANHallucinator", "Hallucinator", "MLPHallucinator",
           "TrainingStep", "analogy_loss", "anti_collapse", "gaussian_noise", "gradient_penalty", "hallucinate",
           "per_sample_loss", "same_class_gap", "sample_seeds", "synthetic_weights"]
