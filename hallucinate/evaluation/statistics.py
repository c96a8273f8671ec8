"""Evaluation results as values: mean accuracy, its 95% interval, the per-episode accuracies, and paired gains."""
import math
from dataclasses import dataclass

import numpy as np


def mean_ci95(values) -> tuple[float, float]:
    """Mean and 95% interval half-width ``1.96 * std / sqrt(n)`` (sample standard deviation)."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) < 2:
        raise ValueError(f"a 95% interval needs at least 2 values, got {len(values)}")
    return float(values.mean()), float(1.96 * values.std(ddof=1) / math.sqrt(len(values)))


@dataclass(frozen=True)
class EvalResult:
    accuracies: tuple[float, ...]  # per episode, fraction correct
    n_way: int
    k_shot: int
    q_query: int
    seed: int
    hallucinate: bool

    @property
    def episodes(self) -> int:
        return len(self.accuracies)

    @property
    def accuracy(self) -> float:
        return 100 * mean_ci95(self.accuracies)[0]

    @property
    def ci95(self) -> float:
        return 100 * mean_ci95(self.accuracies)[1]

    def as_dict(self, per_episode: bool = False) -> dict:
        result = {"accuracy": round(self.accuracy, 3), "ci95": round(self.ci95, 3), "episodes": self.episodes,
                  "n_way": self.n_way, "k_shot": self.k_shot, "q_query": self.q_query, "seed": self.seed,
                  "hallucinate": self.hallucinate}
        if per_episode:
            result["per_episode"] = [round(a, 6) for a in self.accuracies]
        return result


def paired_gain(treated: EvalResult, control: EvalResult) -> tuple[float, float]:
    """Mean and 95% interval (percentage points) of ``treated - control``, episode by episode. Both must have
    been evaluated on the same episodes."""
    same = ("n_way", "k_shot", "q_query", "seed", "episodes")
    if any(getattr(treated, key) != getattr(control, key) for key in same):
        raise ValueError("paired gains need the same episodes: "
                         + ", ".join(f"{key} {getattr(treated, key)} vs {getattr(control, key)}" for key in same))
    mean, ci = mean_ci95(np.asarray(treated.accuracies) - np.asarray(control.accuracies))
    return 100 * mean, 100 * ci
