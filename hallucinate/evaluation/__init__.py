from .episodes import embed_split, evaluate, feature_bank
from .statistics import EvalResult, mean_ci95, paired_gain

__all__ = ["EvalResult", "embed_split", "evaluate", "feature_bank", "mean_ci95", "paired_gain"]
