"""Few-shot detection's metrics as TFA reports them on COCO: novel and base AP50 (COCO's 101-point AP at IoU 0.5,
per class, averaged over the novel or the base classes) and mAP@[.5:.95] over all classes, at most 100 detections
per image, computed by torchmetrics with the faster-coco-eval backend; over seeds, mean and 95% interval. Also the
RPN's recall at IoU 0.5 of its first 100 proposals. TFA's VOC numbers are 11-point VOC07 AP: not comparable."""
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torchvision.ops import box_iou

from ..evaluation.statistics import mean_ci95

SUMMARY_KEYS = ("novel_ap50", "base_ap50", "map")


@dataclass(frozen=True)
class DetectionAP:
    """In percent. ``novel_ap50`` / ``base_ap50``: mean AP50 over the novel / base labels that have ground truth
    (None where none has); ``map``: COCO mAP@[.5:.95] over every label with ground truth; ``ap50_per_class``:
    label -> AP50 for those labels."""

    novel_ap50: float | None
    base_ap50: float | None
    map: float
    ap50_per_class: dict[int, float]

    def as_dict(self) -> dict:
        rounded = {key: None if getattr(self, key) is None else round(getattr(self, key), 3) for key in SUMMARY_KEYS}
        return {**rounded, "ap50_per_class": {label: round(ap, 3) for label, ap in self.ap50_per_class.items()}}


def _metric(**kwargs):
    from torchmetrics.detection import MeanAveragePrecision  # heavy: imported where used

    return MeanAveragePrecision(box_format="xyxy", iou_type="bbox", backend="faster_coco_eval", **kwargs)


def _on_cpu(dicts: Sequence[dict], keys: tuple[str, ...]) -> list[dict]:
    """What the COCO backend reads: CPU tensors, float boxes and scores (bf16 ones too), int64 labels."""
    return [{key: d[key].detach().cpu().long() if key == "labels" else d[key].detach().cpu().float() for key in keys}
            for d in dicts]


def average_precision(predictions: Sequence[dict], targets: Sequence[dict], *, novel_labels: Sequence[int],
                      base_labels: Sequence[int]) -> DetectionAP:
    """``predictions``: what the detector returns in eval mode (``boxes`` xyxy, ``scores``, ``labels``), one dict
    per image; ``targets``: ``boxes`` and ``labels`` of the same images. Labels as the detector's (dataset class
    ``c`` is label ``c + 1``); every ground-truth label must be novel or base."""
    if len(predictions) != len(targets):
        raise ValueError(f"{len(predictions)} predictions but {len(targets)} targets: one of each per image")
    novel, base = {int(label) for label in novel_labels}, {int(label) for label in base_labels}
    if novel & base:
        raise ValueError(f"labels {sorted(novel & base)} are both novel and base")
    present = {int(label) for target in targets for label in target["labels"]}
    if not present:
        raise ValueError("AP needs ground truth: no target has a box")
    unknown = present - novel - base
    if unknown:
        raise ValueError(f"ground-truth labels {sorted(unknown)} are in neither novel_labels nor base_labels")
    predictions, targets = _on_cpu(predictions, ("boxes", "scores", "labels")), _on_cpu(targets, ("boxes", "labels"))
    at_50, overall = _metric(iou_thresholds=[0.5], class_metrics=True), _metric()
    at_50.update(predictions, targets)
    overall.update(predictions, targets)
    per_class = at_50.compute()
    classes, aps = per_class["classes"].flatten(), per_class["map_per_class"].flatten()  # 0-d for one class
    ap50 = {int(label): 100 * float(ap) for label, ap in zip(classes, aps) if int(label) in present}

    def group_mean(labels: set[int]) -> float | None:
        values = [ap50[label] for label in sorted(labels) if label in ap50]
        return sum(values) / len(values) if values else None

    return DetectionAP(novel_ap50=group_mean(novel), base_ap50=group_mean(base),
                       map=100 * float(overall.compute()["map"]), ap50_per_class=dict(sorted(ap50.items())))


def summarize_seeds(results: Sequence[DetectionAP]) -> dict[str, dict]:
    """Per metric (novel AP50, base AP50, mAP): the mean over seeds, its 95% interval ``1.96 * std / sqrt(n)`` and
    the per-seed values. A metric that is None for every seed is left out; None for only some is an error."""
    summary = {}
    for key in SUMMARY_KEYS:
        values = [getattr(result, key) for result in results]
        if all(value is None for value in values):
            continue
        if any(value is None for value in values):
            raise ValueError(f"{key} is missing for seeds {[i for i, v in enumerate(values) if v is None]}: the "
                             f"seeds were not evaluated on the same classes")
        mean, ci95 = mean_ci95(values)
        summary[key] = {"mean": mean, "ci95": ci95, "per_seed": values}
    return summary


def rpn_recall(proposals: Sequence[torch.Tensor], gt_boxes: Sequence[torch.Tensor], *, iou_threshold: float = 0.5,
               top: int = 100) -> float:
    """Percent of ground-truth boxes (over all images) that one of their image's first ``top`` proposals (the RPN
    sorts them best first) overlaps with IoU >= ``iou_threshold``."""
    if len(proposals) != len(gt_boxes):
        raise ValueError(f"{len(proposals)} proposal sets but {len(gt_boxes)} ground-truth sets: one of each per "
                         f"image")
    found = total = 0
    for boxes, truth in zip(proposals, gt_boxes):
        total += len(truth)
        if len(truth) and len(boxes):
            found += int((box_iou(truth.float(), boxes[:top].float()).amax(dim=1) >= iou_threshold).sum())
    if total == 0:
        raise ValueError("recall needs at least one ground-truth box; all images are empty")
    return 100 * found / total
