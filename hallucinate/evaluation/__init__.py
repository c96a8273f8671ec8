from .episodes import embed_split, evaluate, feature_bank
from .feature_quality import CopySeed, FeatureQuality, feature_quality, frechet_distance
from .statistics import EvalResult, mean_ci95, paired_gain

__all__ = ["CopySeed", "EvalResult", "FeatureQuality", "embed_split", "evaluate", "feature_bank", "feature_quality",
           "frechet_distance", "mean_ci95", "paired_gain"]
