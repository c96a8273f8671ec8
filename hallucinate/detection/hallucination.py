"""Hallucinated novel-class RoI features in TFA's fine-tuning (after Zhang & Wang, "Hallucination Improves Few-Shot
Object Detection", CVPR 2021), with the project's training-free hallucinator, distribution calibration (Yang et al.,
ICLR 2021; `hallucinators.DistributionCalibration`).

- **Base statistics**: the box head's features (those `tfa.roi_bank` computes) of the foreground RoIs of base
  canvases of the train drawers, the RPN's proposals matched to a base box at IoU 0.5 and the ground-truth boxes
  themselves: a few hundred RoIs a class, of a few dozen drawings seen at every offset the RPN proposes. Calibration
  fits each base class's mean and covariance on them after Tukey's transform (the features are post-ReLU, so
  non-negative, as in Yang et al.).
- **Seeds**: the novel foreground RoIs of the K-shot set's bank; a synthetic feature is a draw from the Gaussian
  calibrated at its seed (the seed and its nearest base classes' means, their covariances), of the seed's class.
  Draws are mapped back through Tukey's inverse and clipped at 0: the box head's features are a ReLU's, and a
  negative coordinate is one no real RoI has.
- **Fine-tuning** (`tfa.finetune_last_layer`): each step, for each novel class with a canvas in the step, the
  synthetic features join the classification loss at ``synthetic_mass`` in all against that class's real RoIs at 1
  each; the classes of the step, not all novel classes at every step, so that TFA's balanced sampling still decides
  how often each class is seen, and the synthetic mass a class gets stays in proportion to its real RoIs.

The statistics depend on the base detector alone: `roi_hallucinator` computes them once, the caller keeps the
result for every K-shot set and seed (`FewShotDetector` keeps its own)."""
import torch

from ..hallucinators import DistributionCalibration, hallucinate
from .canvases import BaseCanvases, Glyphs
from .config import DetectionConfig
from .tfa import roi_bank

STATISTICS_SEED = 1730940187  # the statistics' base canvases: new layouts of the train drawers, not the training ones


@torch.no_grad()
def base_roi_features(detector, glyphs: Glyphs, *, canvases: int, device: torch.device,
                      precision: str = "fp32") -> tuple[torch.Tensor, torch.Tensor]:
    """``(features [N, d], labels [N])``: ``detector``'s box-head features of the foreground RoIs (proposals matched
    at IoU 0.5, and the ground-truth boxes) of ``canvases`` base canvases of ``glyphs`` (the train drawers), with
    their detector labels ``1..C_base``."""
    if glyphs.split != "train":
        raise ValueError(f"base statistics come from the train drawers: load_glyphs('train'), not {glyphs.split!r}")
    bank = roi_bank(detector, BaseCanvases(glyphs, size=canvases, seed=STATISTICS_SEED), device=device,
                    precision=precision)
    foreground = bank.labels > 0
    return bank.features[foreground], bank.labels[foreground]


class RoIHallucinator:
    """Distribution calibration fitted on a base detector's base-class RoI features (labels ``1..base_classes``):
    ``hallucinator(seeds, seed_labels, n_per_class=, synthetic_mass=, rng=)`` -> ``(features, labels, weights)``,
    ``n_per_class`` synthetic RoI features for each distinct label of ``seed_labels``, each from a seed of that label
    (drawn with replacement), weighing ``synthetic_mass / n_per_class`` each (`hallucinators.synthetic_weights`)."""

    def __init__(self, calibration: DistributionCalibration, *, base_classes: int):
        self.calibration, self.base_classes = calibration, base_classes

    def __call__(self, seeds: torch.Tensor, seed_labels: torch.Tensor, *, n_per_class: int, synthetic_mass: float,
                 rng: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if len(seeds) == 0:
            return seeds, seed_labels, seeds.new_zeros(0)
        classes, local = seed_labels.unique(return_inverse=True)
        features, labels, weights = hallucinate(seeds, local, n_per_class, self.calibration.generator, rng,
                                                synthetic_mass=synthetic_mass)
        real = len(seeds)
        return features[real:].clamp_min(0), classes[labels[real:]], weights[real:]


def roi_hallucinator(base_detector, config: DetectionConfig, *, glyphs: Glyphs,
                     device: torch.device) -> RoIHallucinator:
    """The hallucinator ``config.hallucinator`` names, fitted on ``base_detector``'s RoI features of
    ``config.calibration_canvases`` base canvases of ``glyphs`` (the train drawers) with the ``calibration_*``
    settings."""
    if config.hallucinator != "calibration":
        raise ValueError(f"roi_hallucinator builds the 'calibration' hallucinator; config.hallucinator is "
                         f"{config.hallucinator!r}")
    features, labels = base_roi_features(base_detector, glyphs, canvases=config.calibration_canvases, device=device,
                                         precision=config.precision)
    base_classes = base_detector.roi_heads.box_predictor.cls_score.weight.shape[0] - 1  # row 0: the background
    missing = sorted(set(range(1, base_classes + 1)) - set(labels.unique().tolist()))
    if missing:
        raise ValueError(f"{config.calibration_canvases} base canvases left base labels {missing} without a "
                         f"foreground RoI: raise calibration_canvases")
    calibration = DistributionCalibration(feature_dim=features.shape[1], k=config.calibration_k,
                                          alpha=config.calibration_alpha, tukey=config.calibration_tukey)
    return RoIHallucinator(calibration.fit(features, labels).to(device), base_classes=base_classes)
