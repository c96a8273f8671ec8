"""Attention-RPN with the multi-relation detector (Fan, Zhuo, Tang and Tai, CVPR 2020) on torchvision's detection
pieces and the project's Conv-4, for Omniglot-Det's 1-channel 96x96 canvases.

A class is given by its support: a few boxes of it on support canvases, each pooled (RoIAlign, 7x7) from the
backbone's map of a window around it, averaged over the shots into one prototype ``[C, 7, 7]``. The query's map is
correlated depth-wise with the prototype's global average (a ``C x 1 x 1`` kernel per channel: the map reweighted
channel by channel), and torchvision's `RegionProposalNetwork` runs on that attention map, so that it proposes boxes
of the support's class. Each proposal's RoI feature, pooled from the raw query map, is matched to the prototype by
three relation heads (global, local, patch); their summed 2-way logits (background, the support's class) score it,
and the patch head regresses its box, class-agnostic (FewX's layout).

Labels: the detector is binary per support (0 background, 1 the support's class); `AttentionRPN.detect` scores a
query against several prototypes and labels each detection by the index of its prototype, ``0..P-1``."""
from collections import OrderedDict

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.nn import functional as F
from torchvision.models.detection import _utils as det_utils
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.roi_heads import fastrcnn_loss
from torchvision.models.detection.rpn import RegionProposalNetwork
from torchvision.models.detection.transform import GeneralizedRCNNTransform
from torchvision.ops import MultiScaleRoIAlign, batched_nms, boxes as box_ops

from ..training.checkpoint import CheckpointError
from .attention_config import AttentionRPNConfig
from .model import (ANCHOR_SIZES, ASPECT_RATIOS, CANVAS_SIZE, CHANNELS, ROI_SIZE, RPNHead32, check_support,
                    check_targets, feature_maps, freeze_batch_norm)

SUPPORT_WINDOW = 64  # pixels: the square of a support canvas around a support box that the backbone sees
SCORE_THRESHOLD, NMS_THRESHOLD, DETECTIONS = 0.05, 0.5, 100  # torchvision's (and FewX's) test settings
CLASS_INIT_STD, BOX_INIT_STD = 0.01, 0.001  # FewX's initialisation of the score and box layers
BOX_WEIGHTS = (10.0, 10.0, 5.0, 5.0)  # torchvision's RoI box coder


def depthwise_correlation(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Each channel of ``x [N, C, H, W]`` cross-correlated (no padding, stride 1) with the same channel of
    ``kernel [N or 1, C, kh, kw]`` (one kernel per sample, or one for all): ``[N, C, H - kh + 1, W - kw + 1]``. A
    ``1 x 1`` kernel reweights the channels; a kernel as large as ``x`` gives one number per channel."""
    n, c, height, width = x.shape
    if kernel.ndim != 4 or kernel.shape[1] != c or kernel.shape[0] not in (1, n):
        raise ValueError(f"a depth-wise kernel for x of shape {tuple(x.shape)} must be [1 or {n}, {c}, kh, kw], got "
                         f"{tuple(kernel.shape)}")
    if kernel.shape[0] == 1:
        return F.conv2d(x, kernel.reshape(c, 1, *kernel.shape[2:]), groups=c)
    out = F.conv2d(x.reshape(1, n * c, height, width), kernel.reshape(n * c, 1, *kernel.shape[2:]), groups=n * c)
    return out.reshape(n, c, *out.shape[2:])


def _expand(support: torch.Tensor, n: int) -> torch.Tensor:
    """A prototype ``[C, r, r]`` or ``[n, C, r, r]`` as ``[n, C, r, r]``."""
    return support.expand(n, *support.shape[-3:]) if support.ndim == 3 else support


class GlobalRelation(nn.Module):
    """``(query [N, C, r, r], support [C, r, r] or [N, C, r, r]) -> logits [N, 2]``: both averaged over space,
    concatenated, and an MLP of two hidden layers."""

    def __init__(self, channels: int, hidden: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(2 * channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, hidden),
                                 nn.ReLU(inplace=True), nn.Linear(hidden, 2))

    def forward(self, query: torch.Tensor, support: torch.Tensor) -> torch.Tensor:
        support = _expand(support, len(query))
        return self.mlp(torch.cat([query.mean(dim=(2, 3)), support.mean(dim=(2, 3))], dim=1))


class LocalRelation(nn.Module):
    """``(query [N, C, r, r], support) -> logits [N, 2]``: a shared 1x1 convolution on both, the support's map as a
    depth-wise kernel over the query's (``r x r`` on ``r x r``: one number per channel), then a linear layer."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 1)
        self.score = nn.Linear(channels, 2)

    def forward(self, query: torch.Tensor, support: torch.Tensor) -> torch.Tensor:
        support = F.relu(self.conv(support if support.ndim == 4 else support.unsqueeze(0)))
        return self.score(depthwise_correlation(F.relu(self.conv(query)), support).flatten(1))


class PatchRelation(nn.Module):
    """``(query [N, C, r, r], support) -> (logits [N, 2], box deltas [N, 4])``: the two maps concatenated along
    channels, then 1x1 conv, 3x3 average pool, 3x3 conv, 1x1 conv (all unpadded) and a global average: the feature
    that both scores the pair and regresses the query's box (the detector's only box regressor)."""

    def __init__(self, channels: int, hidden: int):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(2 * channels, hidden, 1), nn.ReLU(inplace=True), nn.AvgPool2d(3, stride=1),
                                 nn.Conv2d(hidden, hidden, 3), nn.ReLU(inplace=True), nn.Conv2d(hidden, channels, 1),
                                 nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.score = nn.Linear(channels, 2)
        self.box = nn.Linear(channels, 4)

    def forward(self, query: torch.Tensor, support: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # the first 1x1 convolution of the concatenation, as the sum of its query half and its support half: one
        # support's half is computed once for all the RoIs scored against it
        first, channels = self.net[0], query.shape[1]
        mixed = F.conv2d(query, first.weight[:, :channels]) + F.conv2d(
            support if support.ndim == 4 else support.unsqueeze(0), first.weight[:, channels:], first.bias)
        feature = self.net[1:](mixed)
        return self.score(feature), self.box(feature)


class MultiRelationHead(nn.Module):
    """``(query RoI features [N, C, r, r], support [C, r, r] or [N, C, r, r]) -> (logits [N, 2], box deltas
    [N, 4])``: the sum of the global, local and patch relations' logits (column 1: the query RoI shows the support's
    class), and the patch relation's class-agnostic deltas. Computes in float32 under autocast."""

    def __init__(self, channels: int, hidden: int):
        super().__init__()
        self.global_relation = GlobalRelation(channels, hidden)
        self.local_relation = LocalRelation(channels)
        self.patch_relation = PatchRelation(channels, hidden)
        for layer in (self.global_relation.mlp[-1], self.local_relation.score, self.patch_relation.score):
            nn.init.normal_(layer.weight, std=CLASS_INIT_STD)
            nn.init.zeros_(layer.bias)
        nn.init.normal_(self.patch_relation.box.weight, std=BOX_INIT_STD)
        nn.init.zeros_(self.patch_relation.box.bias)

    def forward(self, query: torch.Tensor, support: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if query.ndim != 4 or support.shape[-3:] != query.shape[1:] or support.ndim not in (3, 4) \
                or (support.ndim == 4 and len(support) != len(query)):
            raise ValueError(f"the relation head pairs query RoIs [N, C, r, r] with one support [C, r, r] or one per "
                             f"RoI [N, C, r, r]; got {tuple(query.shape)} and {tuple(support.shape)}")
        with torch.autocast(query.device.type, enabled=False):
            query, support = query.float(), support.float()
            patch, deltas = self.patch_relation(query, support)
            return self.global_relation(query, support) + self.local_relation(query, support) + patch, deltas


def support_windows(images: list[torch.Tensor], boxes: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Each ``images[i]`` (``[1, H, W]``) cut to the `SUPPORT_WINDOW` square centred on each of its ``boxes[i]``
    (``[n_i, 4]`` xyxy), black beyond the image: ``(windows [sum n_i, 1, S, S], boxes [sum n_i, 4])`` with the boxes
    in their window's coordinates, clipped to it. Support features come from these windows at the canvas's own scale,
    not from whole canvases: a quarter of the pixels through the backbone, the same features where the box fits."""
    windows, local = [], []
    half = SUPPORT_WINDOW // 2
    for image, image_boxes in zip(images, boxes):
        padded = F.pad(image, (SUPPORT_WINDOW,) * 4)
        for box in image_boxes:
            left = int(torch.round((box[0] + box[2]) / 2)) - half
            top = int(torch.round((box[1] + box[3]) / 2)) - half
            windows.append(padded[:, top + SUPPORT_WINDOW:top + 2 * SUPPORT_WINDOW,
                                  left + SUPPORT_WINDOW:left + 2 * SUPPORT_WINDOW])
            local.append((box - box.new_tensor([left, top, left, top])).clamp(0, SUPPORT_WINDOW))
    if not windows:
        raise ValueError("the support holds no box: each class needs at least one")
    return torch.stack(windows), torch.stack(local)


class AttentionRPN(nn.Module):
    """The detector; see the module's docstring. ``prototypes`` turns support boxes into prototypes, ``detect`` (and
    ``forward``) scores query canvases against prototypes in eval mode, ``losses`` is 2-way contrastive training's
    loss on a batch of episodes."""

    def __init__(self, *, width: int = 64, relation_channels: int = 64, rois_per_episode: int = 128,
                 channels_last: bool = False):
        super().__init__()
        self.transform = GeneralizedRCNNTransform(CANVAS_SIZE, CANVAS_SIZE, [0.0] * CHANNELS, [1.0] * CHANNELS)
        self.backbone = feature_maps(width=width, channels_last=channels_last)
        anchors = AnchorGenerator(sizes=ANCHOR_SIZES, aspect_ratios=ASPECT_RATIOS)
        self.rpn = RegionProposalNetwork(
            anchors, RPNHead32(width, anchors.num_anchors_per_location()[0]), fg_iou_thresh=0.7, bg_iou_thresh=0.3,
            batch_size_per_image=256, positive_fraction=0.5, pre_nms_top_n={"training": 300, "testing": 300},
            post_nms_top_n={"training": 100, "testing": 100}, nms_thresh=0.7)
        self.roi_pool = MultiScaleRoIAlign(["0"], ROI_SIZE, sampling_ratio=2)
        self.relation = MultiRelationHead(width, relation_channels)
        self.box_coder = det_utils.BoxCoder(BOX_WEIGHTS)
        self.matcher = det_utils.Matcher(0.5, 0.5, allow_low_quality_matches=False)
        self.rois_per_episode = rois_per_episode

    def query_maps(self, images: list[torch.Tensor]):
        """``(ImageList, backbone map [N, C, h, w])`` of query canvases ``[1, H, W]`` in 0..1."""
        check_targets(images, None)
        batch, _ = self.transform(images)
        return batch, self.backbone(batch.tensors)

    def support_features(self, windows: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        """RoI features ``[n, C, r, r]`` of ``boxes [n, 4]``, one in each of ``windows [n, 1, S, S]``
        (`support_windows`)."""
        maps = self.backbone(windows)
        sizes = [tuple(windows.shape[-2:])] * len(windows)
        return self.roi_pool(OrderedDict([("0", maps)]), list(boxes.unsqueeze(1)), sizes)

    def prototypes(self, support_images: list[torch.Tensor], support_targets: list[dict]) -> torch.Tensor:
        """One prototype per class of the support, ``[P, C, r, r]``: the mean RoI feature of its boxes. Targets are
        torchvision's (``boxes`` xyxy in the images' pixels, ``labels``) with labels ``0..P-1``, each present."""
        classes = check_support(support_images, support_targets)
        labels = torch.cat([target["labels"] for target in support_targets])
        windows, boxes = support_windows(support_images, [target["boxes"] for target in support_targets])
        features = self.support_features(windows, boxes)
        total = torch.zeros(classes, *features.shape[1:], device=features.device).index_add_(
            0, labels.to(features.device), features.float())
        return total / torch.bincount(labels, minlength=classes).to(features.device).view(-1, 1, 1, 1)

    def propose(self, batch, maps: torch.Tensor, prototypes: torch.Tensor, targets: list[dict] | None = None):
        """The RPN on ``maps`` correlated with each image's prototype (``prototypes [N, C, r, r]``, one per image, or
        ``[1, C, r, r]`` for all):
        ``(proposals, losses)`` as torchvision's RPN returns them (losses in training, against ``targets``)."""
        with torch.autocast(maps.device.type, enabled=False):  # the RPN's head computes in float32
            attention = depthwise_correlation(maps.float(), prototypes.float().mean(dim=(2, 3), keepdim=True))
        return self.rpn(batch, OrderedDict([("0", attention)]), targets)

    def _roi_features(self, maps: torch.Tensor, boxes: list[torch.Tensor], image_sizes) -> torch.Tensor:
        return self.roi_pool(OrderedDict([("0", maps)]), boxes, image_sizes)

    def losses(self, images: list[torch.Tensor], targets: list[dict], positive: torch.Tensor,
               negative: torch.Tensor) -> dict[str, torch.Tensor]:
        """2-way contrastive training's losses on ``B`` episodes: query ``images``, ``targets`` the boxes of each
        query's positive class (``labels`` all 1), ``positive`` / ``negative`` the prototypes ``[B, C, r, r]`` of a
        class present in / absent from each query. The RPN trains on the positive attention map with the targets and
        on the negative one with none; the relation head on FewX's sample of each episode's RoIs (proposals and
        ground truth): foreground of the positive pair (label 1), twice as many of its hardest background RoIs and
        as many of the negative pair's hardest RoIs as there are foreground ones (label 0)."""
        if not self.training:
            raise ValueError("losses needs the model in train mode (call model.train() first)")
        n = len(images)
        if positive.shape != negative.shape or len(positive) != n:
            raise ValueError(f"{n} queries need positive and negative prototypes of shape [{n}, C, r, r]; got "
                             f"{tuple(positive.shape)} and {tuple(negative.shape)}")
        check_targets(images, targets, num_classes=1)
        batch, targets = self.transform(images, targets)
        maps = self.backbone(batch.tensors)
        empty = [{"boxes": t["boxes"][:0], "labels": t["labels"][:0]} for t in targets]
        proposals, rpn_losses = self.propose(_repeat(batch), maps.repeat(2, 1, 1, 1),
                                             torch.cat([positive, negative]), targets + empty)
        gt = [t["boxes"] for t in targets]
        rois = [torch.cat([p, g]) for p, g in zip(proposals, gt + gt)]  # ground truth joins both pairs' RoIs
        pairs = torch.cat([positive, negative])  # pair i's support: the positive for i < n, else the negative
        sizes, repeated = batch.image_sizes * 2, maps.repeat(2, 1, 1, 1)
        with torch.no_grad():  # which background RoIs are hardest: scored once, without the cost of gradients
            logits, _ = self.relation(self._roi_features(repeated, rois, sizes), _per_roi(pairs, rois))
            margins = (logits[:, 1] - logits[:, 0]).split([len(r) for r in rois])
        sampled, labels, regression_targets = [], [], []
        for i in range(n):
            matched = self.matcher(box_ops.box_iou(gt[i], rois[i]))
            foreground = torch.nonzero(matched >= 0).flatten()
            foreground = foreground[torch.randperm(len(foreground), device=foreground.device)
                                    [:self.rois_per_episode // 2]]
            background_0 = max(1, min(2 * len(foreground), self.rois_per_episode // 4))
            background_1 = max(1, min(len(foreground), background_0))
            hard_0 = _hardest(margins[i], matched < 0, background_0)
            hard_1 = _hardest(margins[n + i], torch.ones_like(matched, dtype=torch.bool), background_1)
            sampled += [rois[i][torch.cat([foreground, hard_0])], rois[n + i][hard_1]]
            labels.append(torch.cat([torch.ones_like(foreground), torch.zeros(len(hard_0) + len(hard_1),
                                                                                 dtype=torch.long,
                                                                                 device=foreground.device)]))
            regression_targets.append(torch.cat([
                self.box_coder.encode_single(gt[i][matched[foreground]], rois[i][foreground]),
                torch.zeros(len(hard_0) + len(hard_1), 4, device=foreground.device)]))
        order = [j for i in range(n) for j in (i, n + i)]  # sampled is episode by episode: pair i, then n + i
        features = self._roi_features(repeated[order], sampled, [sizes[j] for j in order])
        logits, deltas = self.relation(features, _per_roi(pairs[order], sampled))
        # the deltas are class-agnostic: put them in the foreground's column of torchvision's per-class layout
        per_class = torch.cat([torch.zeros_like(deltas), deltas], dim=1)
        classification, box = fastrcnn_loss(logits, per_class, labels, regression_targets)
        return {**rpn_losses, "loss_classifier": classification, "loss_box_reg": box}

    @torch.no_grad()
    def detect_from_maps(self, batch, maps: torch.Tensor, prototypes: torch.Tensor) -> list[dict]:
        """Detections of every prototype of ``prototypes [P, C, r, r]`` on query canvases already through the
        backbone (`query_maps`): per prototype, its attention RPN's proposals scored and regressed by the relation
        head, score above 0.05, NMS at 0.5; then the detections of all prototypes merged and the best 100 of each
        image kept. ``labels`` are indices into ``prototypes``."""
        if self.training:
            raise ValueError("detection needs the model in eval mode (call model.eval() first)")
        if prototypes.ndim != 4 or prototypes.shape[1:] != (maps.shape[1], ROI_SIZE, ROI_SIZE):
            raise ValueError(f"prototypes must be [P, {maps.shape[1]}, {ROI_SIZE}, {ROI_SIZE}], got "
                             f"{tuple(prototypes.shape)}")
        n = len(maps)
        found = [[] for _ in range(n)]
        for label, prototype in enumerate(prototypes):
            proposals, _ = self.propose(batch, maps, prototype.unsqueeze(0))
            logits, deltas = self.relation(self._roi_features(maps, proposals, batch.image_sizes), prototype)
            scores = F.softmax(logits, dim=1)[:, 1].split([len(p) for p in proposals])
            boxes = self.box_coder.decode(deltas, proposals).squeeze(1).split([len(p) for p in proposals])
            for i, (image_boxes, image_scores, size) in enumerate(zip(boxes, scores, batch.image_sizes)):
                image_boxes = box_ops.clip_boxes_to_image(image_boxes, size)
                keep = image_scores > SCORE_THRESHOLD
                image_boxes, image_scores = image_boxes[keep], image_scores[keep]
                keep = box_ops.remove_small_boxes(image_boxes, 1e-2)
                image_boxes, image_scores = image_boxes[keep], image_scores[keep]
                keep = batched_nms(image_boxes, image_scores, torch.zeros_like(image_scores, dtype=torch.long),
                                   NMS_THRESHOLD)[:DETECTIONS]
                found[i].append((image_boxes[keep], image_scores[keep], torch.full((len(keep),), label,
                                                                                   dtype=torch.long)))
        detections = []
        for i, parts in enumerate(found):
            boxes, scores, labels = (torch.cat(part) for part in zip(*parts))
            best = scores.argsort(descending=True)[:DETECTIONS]
            detections.append({"boxes": boxes[best], "labels": labels[best].to(boxes.device), "scores": scores[best]})
        return self.transform.postprocess(detections, batch.image_sizes, batch.image_sizes)

    def detect(self, images: list[torch.Tensor], prototypes: torch.Tensor) -> list[dict]:
        """`detect_from_maps` on query canvases ``images`` (``[1, H, W]`` each, in 0..1)."""
        batch, maps = self.query_maps(images)
        return self.detect_from_maps(batch, maps, prototypes)

    def forward(self, images: list[torch.Tensor], prototypes: torch.Tensor) -> list[dict]:
        return self.detect(images, prototypes)


def _per_roi(prototypes: torch.Tensor, rois: list[torch.Tensor]) -> torch.Tensor:
    """Each image's prototype (``prototypes [I, C, r, r]``) once for each of its RoIs: ``[sum len(rois), C, r, r]``."""
    return torch.cat([prototype.expand(len(boxes), -1, -1, -1) for prototype, boxes in zip(prototypes, rois)])


def _hardest(margins: torch.Tensor, candidates: torch.Tensor, count: int) -> torch.Tensor:
    """Indices of the ``count`` (or fewer) ``candidates`` (a bool mask) with the highest foreground margin."""
    rows = torch.nonzero(candidates).flatten()
    return rows[margins[rows].topk(min(count, len(rows))).indices]


def _repeat(batch):
    """An `ImageList` of the same images twice: the positive and the negative pair of each episode."""
    from torchvision.models.detection.image_list import ImageList

    return ImageList(batch.tensors.repeat(2, 1, 1, 1), batch.image_sizes * 2)


def build_attention_rpn(config: AttentionRPNConfig) -> AttentionRPN:
    """The model ``config`` describes (``channels_last``: the backbone's weights in that layout, which makes oneDNN
    run its convolutions about twice as fast on CPU); with a warm start (``init_from``) its backbone's batch norm is frozen (the
    base detector's statistics), so the weights it loads or is loaded with fit."""
    model = AttentionRPN(width=config.width, relation_channels=config.relation_channels,
                         rois_per_episode=config.rois_per_episode, channels_last=config.channels_last)
    if config.init_from:
        freeze_batch_norm(model.backbone)
    return model


def warm_start(model: AttentionRPN, state: dict, *, frozen_blocks: int, source: str = "the checkpoint") -> None:
    """Load the backbone of a base detector checkpoint (``state``, as `load_checkpoint` returns it: the TFA
    pipeline's) into ``model`` (built with frozen batch norm) and freeze its first ``frozen_blocks`` blocks."""
    if state.get("task") != "detection":
        raise CheckpointError(f"init_from={source} is not a base detector checkpoint (task {state.get('task')!r})")
    prefix = "backbone."
    weights = {key[len(prefix):]: value for key, value in state["model"].items() if key.startswith(prefix)}
    try:
        model.backbone.load_state_dict(weights)
    except RuntimeError as error:
        raise CheckpointError(f"{source}'s backbone does not fit this model (width {model.backbone.out_channels}): "
                              f"{str(error).splitlines()[0]}") from None
    for block in list(model.backbone)[:frozen_blocks]:
        block.requires_grad_(False)


class AttentionRPNDetector(nn.Module):
    """What `hallucinate.load` gives for an Attention-RPN checkpoint. ``adapt(support_images, support_targets)``
    keeps the support classes' prototypes (labels ``0..C-1``; no weight changes); ``forward(images)`` in eval mode
    returns torchvision's ``[{"boxes", "labels", "scores"}]``, labels indexing those classes. ``transform`` turns a
    PIL image into the ``[1, H, W]`` tensor it takes (bright ink on a dark ground, at Omniglot-Det's scale)."""

    def __init__(self, model: AttentionRPN, config: AttentionRPNConfig, prototypes: torch.Tensor | None = None):
        super().__init__()
        self.model, self.config, self.prototypes = model, config, prototypes

    @property
    def classes(self) -> int | None:
        return None if self.prototypes is None else len(self.prototypes)

    @staticmethod
    def transform(image: Image.Image) -> torch.Tensor:
        return torch.from_numpy(np.array(image.convert("L"))).unsqueeze(0).float().div_(255)

    def set_hallucination(self, on: bool) -> None:
        """Attention-RPN has no hallucination: only ``False`` is valid."""
        if on:
            raise ValueError("Attention-RPN does not hallucinate; set_hallucination(False) is the only setting")

    @torch.no_grad()
    def adapt(self, support_images: list[torch.Tensor], support_targets: list[dict]) -> "AttentionRPNDetector":
        device = next(self.model.parameters()).device
        self.model.eval()
        prototypes = self.model.prototypes([image.to(device) for image in support_images],
                                           [{key: value.to(device) for key, value in t.items()}
                                            for t in support_targets])
        return AttentionRPNDetector(self.model, self.config, prototypes).eval()

    def forward(self, images: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        if self.prototypes is None:
            raise ValueError("Attention-RPN detects the classes of a support set: call adapt(support_images, "
                             "support_targets) first")
        return self.model.eval().detect(images, self.prototypes)


def load_attention_rpn(state: dict, checkpoint) -> AttentionRPNDetector:
    """The detector of a loaded Attention-RPN checkpoint, before `adapt`."""
    config = AttentionRPNConfig.from_saved(state["config"])
    model = build_attention_rpn(config)
    missing, unexpected = model.load_state_dict(state["model"], strict=False)
    if missing or unexpected:
        raise CheckpointError(f"{checkpoint} does not match the model its config describes: missing {missing}, "
                              f"unexpected {unexpected}")
    return AttentionRPNDetector(model, config)
