"""The few-shot detector users hold (`hallucinate.load` of a detection checkpoint): a base-trained Faster R-CNN that
`adapt` turns, by TFA's fine-tuning on a few annotated images, into a detector of the user's own classes."""
import dataclasses

import numpy as np
import torch
from PIL import Image
from torch import nn

from ..training.checkpoint import CheckpointError
from .canvases import NUM_BASE_CLASSES, load_glyphs
from .config import DetectionConfig
from .hallucination import RoIHallucinator, roi_hallucinator
from .model import build_detector, check_support, check_targets
from .tfa import adapt as tfa_adapt


class _SupportSet(torch.utils.data.Dataset):
    """A user's support images and targets as a canvas data set, labels moved past the base classes' (label
    ``NUM_BASE_CLASSES + 1 + c`` for class ``c``); ``k_shot`` is the fewest boxes any class has."""

    def __init__(self, images: list[torch.Tensor], targets: list[dict], classes: int):
        self.images = images
        self.targets = [{"boxes": t["boxes"].float(), "labels": t["labels"] + NUM_BASE_CLASSES + 1} for t in targets]
        counts = torch.bincount(torch.cat([t["labels"] for t in targets]), minlength=classes)
        self.k_shot = int(counts.min())

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        return self.images[index], self.targets[index]


class FewShotDetector(nn.Module):
    """``forward(images: list of [1, H, W] tensors in 0..1)`` in eval mode returns torchvision's ``[{"boxes",
    "labels", "scores"}]``. Before `adapt` the labels are the base classes' (0..99, Omniglot-Det's class ids);
    after it, they index the classes of the support targets, and only those classes are detected.

    ``transform`` turns a PIL image into the tensor ``forward`` takes: one channel, bright ink on a dark ground as
    Omniglot-Det's canvases have it, at its own size (the detector itself scales it to 96 pixels).

    ``hallucinating``: whether `adapt` adds hallucinated RoI features (``config.hallucinator``) to the fine-tuning;
    on when the config names a hallucinator, switched by `set_hallucination`."""

    def __init__(self, detector, config: DetectionConfig, *, classes: int | None = None):
        super().__init__()
        self.detector, self.config, self.classes = detector, config, classes
        self.hallucinating = config.hallucinator != "none"
        self._hallucinator: tuple[tuple, RoIHallucinator] | None = None  # (the settings it was fitted with, it)

    @staticmethod
    def transform(image: Image.Image) -> torch.Tensor:
        return torch.from_numpy(np.array(image.convert("L"))).unsqueeze(0).float().div_(255)

    def set_hallucination(self, on: bool) -> "FewShotDetector":
        """Whether the next `adapt` adds hallucinated RoI features (``config.hallucinator``) to its fine-tuning."""
        if on and self.config.hallucinator == "none":
            raise ValueError("this detector's config names no hallucinator (hallucinator='none'), so it cannot "
                             "hallucinate: name one first, e.g. detector.config = dataclasses.replace("
                             "detector.config, hallucinator='calibration')")
        self.hallucinating = on
        return self

    def roi_hallucinator(self, *, data_root=None) -> RoIHallucinator:
        """The hallucinator of ``config.hallucinator`` fitted on this (base) detector's RoI features of base
        canvases of the train drawers (Omniglot under ``data_root``, else the data root): fitted at the first call,
        kept for the next ones while the config's hallucination settings and the detector's device stay the same."""
        config, device = self.config, next(self.detector.parameters()).device
        settings = (config.hallucinator, config.calibration_k, config.calibration_alpha, config.calibration_tukey,
                    config.calibration_canvases, config.precision, device)
        if self._hallucinator is None or self._hallucinator[0] != settings:
            fitted = roi_hallucinator(self.detector, config, glyphs=load_glyphs("train", data_root), device=device)
            self._hallucinator = settings, fitted
        return self._hallucinator[1]

    def adapt(self, support_images: list[torch.Tensor], support_targets: list[dict], *, seed: int = 0,
              data_root=None) -> "FewShotDetector":
        """A new detector of the support targets' classes (labels ``0..C-1``, each with at least one box), the base
        detector's last layer widened to them and fine-tuned on the support images as the checkpoint's config says
        (TFA: the last layer alone, cosine classifier), with hallucinated RoI features when `hallucinating` (their
        base statistics need Omniglot under ``data_root``, else the data root, the first time). This detector is
        left as it was."""
        if self.classes is not None:
            raise ValueError("adapt starts from the base detector; this one is already adapted")
        classes = check_support(support_images, support_targets)
        device = next(self.detector.parameters()).device
        support = _SupportSet([image.to(device) for image in support_images], support_targets, classes)
        config = self.config if self.hallucinating else dataclasses.replace(self.config, hallucinator="none")
        hallucinator = self.roi_hallucinator(data_root=data_root) if self.hallucinating else None
        detector, _ = tfa_adapt(self.detector, support, config, seed=seed, device=device, num_novel=classes,
                                hallucinator=hallucinator)
        return FewShotDetector(detector, config, classes=classes).eval()

    def forward(self, images: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        check_targets(images, None)
        outputs = self.detector(images)
        if self.classes is None:
            return [{**output, "labels": output["labels"] - 1} for output in outputs]
        kept = []
        for output in outputs:
            new = output["labels"] > NUM_BASE_CLASSES
            kept.append({"boxes": output["boxes"][new], "scores": output["scores"][new],
                         "labels": output["labels"][new] - NUM_BASE_CLASSES - 1})
        return kept


def load_detector(state: dict, checkpoint) -> FewShotDetector:
    """The base detector of a loaded detection checkpoint."""
    config = DetectionConfig.from_saved(state["config"])
    detector = build_detector(num_classes=NUM_BASE_CLASSES, width=config.width,
                              representation_size=config.representation_size, predictor="fc")
    missing, unexpected = detector.load_state_dict(state["model"], strict=False)
    if missing or unexpected:
        raise CheckpointError(f"{checkpoint} does not match the detector its config describes: missing {missing}, "
                              f"unexpected {unexpected}")
    return FewShotDetector(detector, config)
