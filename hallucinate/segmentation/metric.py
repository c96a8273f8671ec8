"""Cluttered Omniglot's metric as Michaelis et al. compute it (``model.py``: ``calculate_IoU``): a pixel is
foreground where its softmax foreground probability exceeds 0.3; IoU per image, an empty union counting as 1,
averaged over images; and the localisation accuracy, the share of images whose predicted mask's centre of mass lies
within 5 pixels of the true mask's. Floors: predicting nothing, and predicting every inked pixel."""
from dataclasses import dataclass

import numpy as np
import torch

from ..evaluation.statistics import mean_ci95

THRESHOLD = 0.3
LOCALISATION_PIXELS = 5.0


def predicted_masks(logits: torch.Tensor) -> torch.Tensor:
    """``[N, 2, H, W]`` logits -> bool ``[N, H, W]``: foreground probability > 0.3."""
    return logits.float().softmax(dim=1)[:, 1] > THRESHOLD


def iou_per_image(predicted: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """bool ``[N, H, W]`` masks -> ``[N]`` IoU; 1 where both masks are empty."""
    intersection = (predicted & truth).flatten(1).sum(1)
    union = (predicted | truth).flatten(1).sum(1)
    return torch.where(union > 0, intersection / union.clamp(min=1), 1.0)


def centres_of_mass(masks: torch.Tensor) -> torch.Tensor:
    """bool ``[N, H, W]`` -> ``[N, 2]`` (row, column); NaN for an empty mask."""
    rows = torch.arange(masks.shape[1], dtype=torch.float64, device=masks.device)
    columns = torch.arange(masks.shape[2], dtype=torch.float64, device=masks.device)
    weights = masks.double()
    total = weights.sum(dim=(1, 2))
    return torch.stack([(weights.sum(2) * rows).sum(1) / total, (weights.sum(1) * columns).sum(1) / total], dim=1)


def localised(predicted: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """bool ``[N]``: the predicted mask's centre of mass within 5 pixels of the true one's (never for an empty
    prediction)."""
    distance = (centres_of_mass(predicted) - centres_of_mass(truth)).norm(dim=1)
    return distance <= LOCALISATION_PIXELS  # NaN compares false


def inked(scenes: torch.Tensor) -> torch.Tensor:
    """uint8 ``[N, 3, H, W]`` scenes -> bool ``[N, H, W]``: every pixel not black, the "all ink" floor's mask."""
    return (scenes > 0).any(dim=1)


@dataclass(frozen=True)
class SegmentationResult:
    """Per image: IoU, whether localised, and the two floors' IoUs; with what it was measured on."""

    ious: tuple[float, ...]
    localised: tuple[bool, ...]
    empty_floor: tuple[float, ...]
    inked_floor: tuple[float, ...]
    subset: str
    clutter: int
    same_drawer: bool
    k_shot: int
    hallucinate: bool

    @property
    def images(self) -> int:
        return len(self.ious)

    def as_dict(self, per_image: bool = False) -> dict:
        iou, ci95 = mean_ci95(self.ious)
        result = {"iou": round(100 * iou, 3), "ci95": round(100 * ci95, 3),
                  "localisation": round(100 * sum(self.localised) / self.images, 3), "images": self.images,
                  "floor_empty_iou": round(100 * sum(self.empty_floor) / self.images, 3),
                  "floor_inked_iou": round(100 * sum(self.inked_floor) / self.images, 3),
                  "subset": self.subset, "clutter": self.clutter, "same_drawer": self.same_drawer,
                  "k_shot": self.k_shot, "hallucinate": self.hallucinate}
        if per_image:
            result["per_image"] = [round(value, 6) for value in self.ious]
        return result


def paired_iou_gain(treated: SegmentationResult, control: SegmentationResult) -> tuple[float, float]:
    """Mean and 95% interval (IoU points) of ``treated - control``, image by image. Both must have been measured on
    the same scenes: the same subset, level, references and images, and the same inked floor image by image."""
    same = ("subset", "clutter", "same_drawer", "k_shot", "images")
    differences = [f"{key} {getattr(treated, key)} vs {getattr(control, key)}" for key in same
                   if getattr(treated, key) != getattr(control, key)]
    if not differences and treated.inked_floor != control.inked_floor:
        differences.append("the inked floor of some image")
    if differences:
        raise ValueError(f"paired gains need the same scenes; these differ: {', '.join(differences)}")
    mean, ci = mean_ci95(np.subtract(treated.ious, control.ious))
    return 100 * mean, 100 * ci
