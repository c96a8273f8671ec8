"""Hallucinators: a pure function ``(features, labels, n_per_class, generator) -> (features, labels)`` and the
modules that own the generators' weights."""
from ..registry import Registry
from .functional import hallucinate, sample_noise, sample_seeds
from .gan import Critic, FeatureGenerator, GANHallucinator, anti_collapse, gradient_penalty, same_class_gap

HALLUCINATORS = Registry("hallucinator")
HALLUCINATORS["gan"] = GANHallucinator

__all__ = ["HALLUCINATORS", "Critic", "FeatureGenerator", "GANHallucinator", "anti_collapse", "gradient_penalty",
           "hallucinate", "same_class_gap", "sample_noise", "sample_seeds"]
