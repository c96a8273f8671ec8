"""Faster R-CNN (Ren et al. 2015) on torchvision with the project's Conv-4, sized for 1-channel 96x96 canvases, and
TFA's (Wang et al. 2020) two-stage fine-tuning: a base detector, a widened last layer (fc or cosine) whose base rows
are copied, and everything but that layer frozen.

Label layout (torchvision's): label 0 is the background, so dataset class ``c`` is label ``c + 1``. A detector of
``C_base`` base classes has labels ``1..C_base``; after surgery the ``C_novel`` novel classes are labels
``C_base + 1..C_base + C_novel``. ``num_classes`` of the builders here counts object classes, without the background;
the predictors, like torchvision's `FastRCNNPredictor`, take the count with it."""
import copy
from collections import OrderedDict

import torch
from torch import nn
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.rpn import RPNHead
from torchvision.models.detection.transform import resize_boxes
from torchvision.ops import MultiScaleRoIAlign
from torchvision.ops.misc import FrozenBatchNorm2d

from ..backbones import Conv4
from .config import PREDICTORS

CANVAS_SIZE = 96
CHANNELS = 1
POOLED = 3  # max-pool in the first three blocks: stride 8, a 12x12 map of a 96-pixel canvas
ANCHOR_SIZES = ((12, 24, 48),)  # glyphs are 24-40 px; torchvision's 32-512 would miss them
ASPECT_RATIOS = ((0.5, 1.0, 2.0),)
ROI_SIZE = 7
COSINE_EPSILON = 1e-5  # TFA's: x / (|x| + 1e-5)
NOVEL_INIT_STD = 0.01  # TFA's `randinit` surgery, for both the classifier and the box regression rows


class ConvFeatures(nn.Sequential):
    """Conv-4 blocks as a Faster R-CNN backbone: ``[N, 1, H, W] -> [N, width, H / 8, W / 8]``, returned in float32
    whatever autocast computed it in, so that the heads after it decode boxes in float32."""

    def __init__(self, blocks: nn.Sequential, out_channels: int):
        super().__init__(*blocks)
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x).float()


def feature_maps(*, width: int = 64, channels_last: bool = False) -> ConvFeatures:
    """The project's Conv-4 with max-pooling in three blocks (stride 8). ``channels_last`` stores its weights so,
    which makes oneDNN run the convolutions in that layout (about 2x faster on CPU, as in the classification
    stack)."""
    backbone = ConvFeatures(Conv4(in_channels=CHANNELS, image_size=CANVAS_SIZE, width=width, pooled=POOLED).blocks,
                            out_channels=width)
    return backbone.to(memory_format=torch.channels_last) if channels_last else backbone


class _Float32:
    """Mixin: the head computes in float32 even under autocast. Boxes decoded from bf16 deltas (and bf16
    proposals, which torchvision then also casts the targets to) are off by up to half a pixel on a 96-pixel
    canvas, which costs AP at IoU 0.9 and above; the heads are a small part of the compute."""

    def forward(self, x):
        device = (x[0] if isinstance(x, list) else x).device.type
        with torch.autocast(device, enabled=False):
            return super().forward(x)


class RPNHead32(_Float32, RPNHead):
    """torchvision's `RPNHead`, in float32 under autocast."""


class TwoMLPHead32(_Float32, TwoMLPHead):
    """torchvision's `TwoMLPHead`, in float32 under autocast."""


class FastRCNNPredictor32(_Float32, FastRCNNPredictor):
    """torchvision's `FastRCNNPredictor` (TFA "w/ fc"), in float32 under autocast."""


class CosineBoxPredictor(nn.Module):
    """TFA's cosine classifier (``CosineSimOutputLayers``) with class-specific box regression: ``x [N, d] ->
    (scores [N, num_classes], deltas [N, 4 * num_classes])``, as `FastRCNNPredictor` returns them, ``num_classes``
    counting the background. Scores are ``scale`` times the cosine of ``x`` and each row of ``cls_score.weight``
    (both divided by their norm + 1e-5, the rows again at every forward); the background is a row like any other.
    Computes in float32 under autocast, as the other heads do."""

    def __init__(self, in_features: int, num_classes: int, scale: float = 20.0):
        super().__init__()
        self.cls_score = nn.Linear(in_features, num_classes, bias=False)
        self.bbox_pred = nn.Linear(in_features, 4 * num_classes)
        self.scale = scale

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = x.flatten(1)
        weight = self.cls_score.weight
        with torch.autocast(x.device.type, enabled=False):
            cosine = (x / (x.norm(dim=1, keepdim=True) + COSINE_EPSILON)) @ (
                weight / (weight.norm(dim=1, keepdim=True) + COSINE_EPSILON)).T
            return self.scale * cosine, self.bbox_pred(x)


def _predictor(kind: str, in_features: int, num_classes: int, scale: float) -> nn.Module:
    if kind == "fc":
        return FastRCNNPredictor32(in_features, num_classes)
    if kind == "cosine":
        return CosineBoxPredictor(in_features, num_classes, scale)
    raise ValueError(f"predictor must be one of {', '.join(PREDICTORS)}, got {kind!r}")


def build_detector(*, num_classes: int, width: int = 64, representation_size: int = 256, predictor: str = "fc",
                   scale: float = 20.0, channels_last: bool = False) -> FasterRCNN:
    """A Faster R-CNN over ``num_classes`` object classes (labels ``1..num_classes``, 0 the background) for
    1-channel canvases in 0..1, sized for 96x96: no rescaling (``min_size = max_size = 96``; 96 needs no padding
    to 32) and no normalisation (batch norm does it, as in the classification stack), one stride-8 map, 12-48 px
    anchors, a narrow box head (``representation_size`` 256) and small-image proposal counts (300 before NMS, 100
    after, 128 RoIs per image for the box loss, at most 100 detections). ``predictor``: "fc" (torchvision's, for
    base training) or "cosine" (`CosineBoxPredictor` with ``scale``)."""
    if num_classes < 1:
        raise ValueError(f"a detector needs at least one object class, got num_classes={num_classes}")
    backbone = feature_maps(width=width, channels_last=channels_last)
    anchors = AnchorGenerator(sizes=ANCHOR_SIZES, aspect_ratios=ASPECT_RATIOS)
    return FasterRCNN(
        backbone, min_size=CANVAS_SIZE, max_size=CANVAS_SIZE, image_mean=[0.0] * CHANNELS,
        image_std=[1.0] * CHANNELS, rpn_anchor_generator=anchors,
        rpn_head=RPNHead32(width, anchors.num_anchors_per_location()[0]),
        rpn_pre_nms_top_n_train=300, rpn_pre_nms_top_n_test=300, rpn_post_nms_top_n_train=100,
        rpn_post_nms_top_n_test=100, box_roi_pool=MultiScaleRoIAlign(["0"], ROI_SIZE, sampling_ratio=2),
        box_head=TwoMLPHead32(width * ROI_SIZE**2, representation_size),
        box_predictor=_predictor(predictor, representation_size, num_classes + 1, scale),
        box_batch_size_per_image=128, box_detections_per_img=100)


def tfa_surgery(base: FasterRCNN, *, num_novel: int, predictor: str = "cosine", scale: float = 20.0,
                generator: torch.Generator | None = None) -> FasterRCNN:
    """A copy of ``base`` (``C_base`` classes) over ``C_base + num_novel`` classes, its last layer replaced by an fc
    or cosine predictor: the background row 0 and the base rows ``1..C_base`` copied from ``base`` (the 4 rows of
    each class for box regression), the novel rows drawn from normal(0, 0.01), novel biases 0. A bias is copied
    where both layers have one (a cosine classifier has none). ``base`` is left as it was."""
    if num_novel < 1:
        raise ValueError(f"surgery adds at least one novel class, got num_novel={num_novel}")
    old = base.roi_heads.box_predictor
    kept, in_features = old.cls_score.weight.shape  # background + base classes
    detector = copy.deepcopy(base)
    new = _predictor(predictor, in_features, kept + num_novel, scale)  # on the CPU, where ``generator`` draws
    with torch.no_grad():
        for name, rows in (("cls_score", kept), ("bbox_pred", 4 * kept)):
            source, target = getattr(old, name), getattr(new, name)
            target.weight.normal_(0.0, NOVEL_INIT_STD, generator=generator)
            target.weight[:rows] = source.weight
            if target.bias is not None:
                target.bias.zero_()
                if source.bias is not None:
                    target.bias[:rows] = source.bias
    detector.roi_heads.box_predictor = new.to(old.cls_score.weight.device)
    return detector


def freeze_batch_norm(module: nn.Module) -> nn.Module:
    """Replace every `BatchNorm2d` in ``module`` (in place) by a `FrozenBatchNorm2d` with its statistics and affine
    parameters, as detectron2 (TFA's code base) runs its backbones: a frozen backbone must not move its running
    statistics, nor normalise by the statistics of a few-shot batch, in train mode."""
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            frozen = FrozenBatchNorm2d(child.num_features, eps=child.eps).to(child.running_mean.device)
            for key in ("weight", "bias", "running_mean", "running_var"):
                getattr(frozen, key).copy_(getattr(child, key).detach())
            setattr(module, name, frozen)
        else:
            freeze_batch_norm(child)
    return module


def freeze_all_but_predictor(detector: FasterRCNN) -> FasterRCNN:
    """TFA's fine-tuning: only ``roi_heads.box_predictor`` (classifier and box regression) trains; backbone (batch
    norm frozen too), RPN and box head stay as base training left them. In place; returns ``detector``."""
    detector.requires_grad_(False)
    freeze_batch_norm(detector.backbone)
    detector.roi_heads.box_predictor.requires_grad_(True)
    return detector


def unfreeze_all(detector: FasterRCNN) -> FasterRCNN:
    """TFA's "FRCN+ft-full" baseline: every parameter trains. In place; returns ``detector``."""
    return detector.requires_grad_(True)


@torch.no_grad()
def propose(detector: FasterRCNN, images: list[torch.Tensor]) -> list[torch.Tensor]:
    """The RPN's proposals for ``images`` (``[1, H, W]`` each), best first, at most ``rpn_post_nms_top_n_test``
    per image, in the images' own pixel coordinates; what RPN recall is measured on. ``detector`` must be in eval
    mode (in train mode the RPN samples anchors for its loss and needs targets)."""
    if detector.training:
        raise ValueError("propose needs the detector in eval mode (call detector.eval() first)")
    check_targets(images, None)
    batch, _ = detector.transform(images)
    proposals, _ = detector.rpn(batch, OrderedDict([("0", detector.backbone(batch.tensors))]))
    return [resize_boxes(boxes, size, image.shape[-2:])
            for boxes, size, image in zip(proposals, batch.image_sizes, images)]


def check_targets(images: list[torch.Tensor], targets: list[dict] | None, *,
                  num_classes: int | None = None) -> None:
    """Refuse, saying why, what the detector would train on silently wrong (torchvision gives NaN losses for some,
    an index error deep in the box loss for others): an image that is not ``[1, H, W]``; a target without float
    ``boxes [N, 4]`` (xyxy, pixels) and int64 ``labels [N]``; a box with ``x2 <= x1`` or ``y2 <= y1`` (xywh given as
    xyxy) or outside its image; a label outside ``1..num_classes`` (0 is the background). An image without objects
    has ``boxes`` of shape ``(0, 4)``."""
    for i, image in enumerate(images):
        if image.ndim != 3 or image.shape[0] != CHANNELS:
            raise ValueError(f"image {i} has shape {tuple(image.shape)}: the detector takes {CHANNELS}-channel "
                             f"canvases [{CHANNELS}, H, W]")
    if targets is None:
        return
    if len(targets) != len(images):
        raise ValueError(f"{len(images)} images but {len(targets)} targets: one target dict per image")
    for i, (image, target) in enumerate(zip(images, targets)):
        boxes, labels = target.get("boxes"), target.get("labels")
        if not isinstance(boxes, torch.Tensor) or boxes.ndim != 2 or boxes.shape[1] != 4 \
                or not boxes.is_floating_point():
            raise ValueError(f"target {i}: 'boxes' must be a float tensor [N, 4] (x1, y1, x2, y2), got "
                             f"{None if boxes is None else (type(boxes).__name__, tuple(getattr(boxes, 'shape', ())))}")
        if not isinstance(labels, torch.Tensor) or labels.dtype != torch.int64 or labels.shape != boxes.shape[:1]:
            raise ValueError(f"target {i}: 'labels' must be an int64 tensor [N] with one label per box "
                             f"({len(boxes)} boxes), got "
                             f"{None if labels is None else (labels.dtype, tuple(labels.shape))}")
        height, width = image.shape[-2:]
        degenerate = ((boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1]) | ~boxes.isfinite().all(dim=1))
        if degenerate.any():
            raise ValueError(f"target {i}: box(es) {degenerate.nonzero().flatten().tolist()} have no area "
                             f"(x2 <= x1 or y2 <= y1, e.g. {boxes[degenerate][0].tolist()}): boxes are "
                             f"(x1, y1, x2, y2) with x2 > x1 and y2 > y1")
        outside = (boxes[:, :2] < 0).any(dim=1) | (boxes[:, 2] > width) | (boxes[:, 3] > height)
        if outside.any():
            raise ValueError(f"target {i}: box(es) {outside.nonzero().flatten().tolist()} lie outside the "
                             f"{width}x{height} image (e.g. {boxes[outside][0].tolist()}): valid boxes have "
                             f"0 <= x1 < x2 <= {width} and 0 <= y1 < y2 <= {height}")
        wrong = labels < 1 if num_classes is None else (labels < 1) | (labels > num_classes)
        if wrong.any():
            valid = f"1..{num_classes}" if num_classes is not None else "1 or more"
            raise ValueError(f"target {i}: labels {labels[wrong].tolist()} are not object labels ({valid}; 0 is "
                             f"the background, dataset class c is label c + 1)")


def check_support(support_images: list[torch.Tensor], support_targets: list[dict]) -> int:
    """Refuse, saying why, a few-shot support set a detector cannot learn from, and return its number of classes:
    the targets' labels name the new classes ``0..C-1`` (each with at least one box), the rest as `check_targets`."""
    if not support_images:
        raise ValueError("the support is empty: give at least one image with a box of each class")
    given = [target.get("labels") for target in support_targets]
    if any(isinstance(labels, torch.Tensor) and bool((labels < 0).any()) for labels in given):
        raise ValueError(f"support labels must be 0..C-1, one per new class; got "
                         f"{[l.tolist() if isinstance(l, torch.Tensor) else l for l in given]}")
    # check_targets takes the detector's labels (0 is its background): the user's shifted by one
    check_targets(support_images, [{**target, "labels": target["labels"] + 1}
                                   if isinstance(target.get("labels"), torch.Tensor) else target
                                   for target in support_targets])
    labels = torch.cat(given)
    if len(labels) == 0:
        raise ValueError("the support targets hold no box: each class needs at least one")
    classes = int(labels.max()) + 1
    missing = sorted(set(range(classes)) - set(labels.tolist()))
    if missing:
        raise ValueError(f"support labels must cover 0..{classes - 1}: classes {missing} have no box")
    return classes
