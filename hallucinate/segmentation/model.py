"""The lecture's few-shot segmenter (as PANet, Wang et al. 2019, does it): one backbone embeds the references and the
scene; masked average pooling of the references' features gives a foreground and a background prototype; each scene
pixel is scored by its cosine similarity to both, scaled by 20, and the two scores are its logits."""
import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.nn import functional as F

from ..backbones import Conv4
from ..hallucinators import HALLUCINATORS
from ..training.checkpoint import CheckpointError
from .config import SegmentationConfig
from .scenes import REFERENCE_SIZE

# Hallucinators trained by the segmentation loss alone; the others need a critic step, a frozen embedding's base-class
# statistics or a bank of base-class pairs, which this loop does not give them.
SEGMENTATION_HALLUCINATORS = ("mlp",)
MASK_EPSILON = 1e-5  # PANet's: an all-empty mask pools to zeros instead of dividing by zero


def feature_maps(*, width: int = 64, pooled: int = 2, context: int = 0, in_channels: int = 3) -> nn.Sequential:
    """Conv-4 with max-pooling in its first ``pooled`` blocks only, so a 96-pixel scene keeps a ``96 / 2**pooled``
    feature map, then ``context`` blocks of 3x3 convolutions dilated 2, 4, 8, ... (a receptive field that grows to
    a whole character at no loss of resolution), and without the last ReLU (as PANet's VGG has none): cosine
    similarities of non-negative features could never be negative."""
    blocks = list(Conv4(in_channels=in_channels, image_size=REFERENCE_SIZE, width=width, pooled=pooled).blocks)
    for i in range(context):
        dilation = 2 ** (i + 1)
        blocks.append(nn.Sequential(nn.Conv2d(width, width, 3, padding=dilation, dilation=dilation),
                                    nn.BatchNorm2d(width), nn.ReLU(inplace=True)))
    return nn.Sequential(*blocks[:-1], blocks[-1][:-1])


def masked_average_pool(features: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """``features [N, C, h, w]``, ``masks [N, H, W]`` (0..1) -> ``[N, C]``: the features upsampled (bilinear) to the
    mask's size, averaged over the mask."""
    upsampled = F.interpolate(features, size=masks.shape[-2:], mode="bilinear", align_corners=False)
    masks = masks.to(upsampled.dtype).unsqueeze(1)
    return (upsampled * masks).sum(dim=(2, 3)) / (masks.sum(dim=(2, 3)) + MASK_EPSILON)


def cosine_logits(features: torch.Tensor, prototypes: torch.Tensor, scale: float) -> torch.Tensor:
    """``features [N, C, h, w]``, ``prototypes [N, P, C]`` (each image its own) -> ``[N, P, h, w]``: ``scale`` times
    the cosine similarity of every pixel's feature to every prototype."""
    return scale * F.cosine_similarity(features.unsqueeze(1), prototypes[..., None, None], dim=2)


def alignment_loss(query_features: torch.Tensor, query_scores: torch.Tensor, support_features: torch.Tensor,
                   support_masks: torch.Tensor, scale: float) -> torch.Tensor:
    """PANet's prototype alignment (PAR): prototypes pooled from each query's own prediction (argmax at feature
    resolution) must segment its episode's references. ``query_features [E, C, h, w]`` and ``query_scores
    [E, 2, h, w]`` (one query per episode), ``support_features [E, K, C, h', w']``, ``support_masks [E, K, H, W]``."""
    predicted = query_scores.argmax(dim=1)
    prototypes = torch.stack([masked_average_pool(query_features, predicted == label) for label in (0, 1)], dim=1)
    episodes, shots = support_features.shape[:2]
    scores = cosine_logits(support_features.flatten(0, 1), prototypes.repeat_interleave(shots, dim=0), scale)
    logits = F.interpolate(scores, size=support_masks.shape[-2:], mode="bilinear", align_corners=False)
    per_pixel = F.cross_entropy(logits, support_masks.flatten(0, 1).long(), reduction="none")
    # PANet skips a way whose predicted mask is empty: its prototype is pooled from nothing.
    found = (predicted == 1).flatten(1).any(dim=1).repeat_interleave(shots)
    return (per_pixel.mean(dim=(1, 2)) * found).sum() / found.sum().clamp(min=1)


class Refinement(nn.Module):
    """A light decoder at the scene's resolution: from the upsampled cosine logits and the scene itself, a
    correction to the logits. A 24x24 feature map cannot draw strokes one or two pixels wide (upsampled, even the
    true mask pooled to 24x24 scores about 38% IoU on 4-character scenes); with the scene's pixels it can. Its last
    layer starts at zero, so it starts as the plain method."""

    def __init__(self, hidden: int = 16):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(2 + 3, hidden, 3, padding=1), nn.ReLU(inplace=True),
                                 nn.Conv2d(hidden, hidden, 3, padding=1), nn.ReLU(inplace=True),
                                 nn.Conv2d(hidden, 2, 3, padding=1))
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, logits: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        return logits + self.net(torch.cat([logits, images], dim=1))


def image_tensor(image: Image.Image) -> torch.Tensor:
    """A PIL image -> float ``[3, H, W]`` in 0..1, at its own size."""
    return torch.from_numpy(np.array(image.convert("RGB"))).permute(2, 0, 1).float().div_(255)


class PrototypeSegmenter(nn.Module):
    """``forward(support_images [S, 3, h, w], support_masks [S, h, w], query_images [Q, 3, H, W]) -> logits
    [Q, 2, H, W]`` (channel 0 background, 1 foreground): one episode, its S references of one target.

    With a hallucinator and ``n_synthetic > 0``, each episode's foreground features pooled from its references get
    ``n_synthetic`` synthetic ones, weighted as the hallucinator says, and the foreground prototype is their
    weighted mean; `set_hallucination` switches that on and off. ``transform`` turns a PIL image into the tensor
    ``forward`` expects (no resizing)."""

    transform = staticmethod(image_tensor)

    def __init__(self, backbone: nn.Module, *, scale: float = 20.0, refinement: nn.Module | None = None,
                 hallucinator: nn.Module | None = None, n_synthetic: int = 0, ink_input: bool = False):
        super().__init__()
        self.backbone, self.refinement, self.hallucinator = backbone, refinement, hallucinator
        self.scale, self.n_synthetic, self.ink_input = scale, n_synthetic, ink_input
        self.hallucinating = hallucinator is not None and n_synthetic > 0

    def set_hallucination(self, on: bool) -> "PrototypeSegmenter":
        if on and (self.hallucinator is None or self.n_synthetic == 0):
            raise ValueError("this segmenter has no hallucinator (or n_synthetic is 0); it cannot hallucinate")
        self.hallucinating = on
        return self

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """``[N, 3, H, W]`` in 0..1 -> feature maps ``[N, C, H / 2**pooled, W / 2**pooled]``; with ``ink_input``
        the backbone sees only the brightest colour channel, so matching shapes cannot depend on hue (the
        refinement still sees the colours)."""
        return self.backbone(images.amax(dim=1, keepdim=True) if self.ink_input else images)

    def prototypes(self, support_features: torch.Tensor, support_masks: torch.Tensor,
                   rng: torch.Generator | None = None) -> torch.Tensor:
        """``support_features [E, K, C, h, w]``, ``support_masks [E, K, H, W]`` -> ``[E, 2, C]``: each episode's
        background and foreground prototypes, each the mean over its K references of their masked average pools."""
        episodes, shots = support_features.shape[:2]
        features, masks = support_features.flatten(0, 1), support_masks.flatten(0, 1).float()
        background = masked_average_pool(features, 1 - masks).unflatten(0, (episodes, shots)).mean(dim=1)
        foreground = masked_average_pool(features, masks)
        labels = torch.arange(episodes, device=features.device).repeat_interleave(shots)
        weights = foreground.new_ones(len(foreground))
        if self.hallucinating:
            foreground, labels, weights = self.hallucinator(foreground, labels, self.n_synthetic, rng)
        weighted = torch.zeros(episodes, foreground.shape[1], device=foreground.device, dtype=foreground.dtype)
        weighted.index_add_(0, labels, foreground * weights[:, None])
        total = torch.zeros(episodes, device=weights.device, dtype=weights.dtype).index_add_(0, labels, weights)
        return torch.stack([background, weighted / total[:, None]], dim=1)

    def scores(self, support_features: torch.Tensor, support_masks: torch.Tensor, query_features: torch.Tensor,
               rng: torch.Generator | None = None) -> torch.Tensor:
        """``query_features [E, Q, C, h, w]`` -> cosine logits ``[E, Q, 2, h, w]`` at feature resolution."""
        prototypes = self.prototypes(support_features, support_masks, rng)
        episodes, queries = query_features.shape[:2]
        scores = cosine_logits(query_features.flatten(0, 1), prototypes.repeat_interleave(queries, dim=0),
                               self.scale)
        return scores.unflatten(0, (episodes, queries))

    def decode(self, scores: torch.Tensor, query_images: torch.Tensor) -> torch.Tensor:
        """``scores [N, 2, h, w]`` of ``query_images [N, 3, H, W]`` -> logits ``[N, 2, H, W]``: upsampled
        (bilinear), then refined when the segmenter has a `Refinement`."""
        logits = F.interpolate(scores, size=query_images.shape[-2:], mode="bilinear", align_corners=False)
        return logits if self.refinement is None else self.refinement(logits, query_images)

    def segment(self, support_images: torch.Tensor, support_masks: torch.Tensor, query_images: torch.Tensor,
                rng: torch.Generator | None = None) -> torch.Tensor:
        """Several episodes at once: ``support_images [E, K, 3, h, w]``, ``support_masks [E, K, h, w]``,
        ``query_images [E, Q, 3, H, W]`` -> logits ``[E, Q, 2, H, W]``."""
        support_features = self.embed(support_images.flatten(0, 1)).unflatten(0, support_images.shape[:2])
        query_features = self.embed(query_images.flatten(0, 1)).unflatten(0, query_images.shape[:2])
        scores = self.scores(support_features, support_masks, query_features, rng)
        return self.decode(scores.flatten(0, 1), query_images.flatten(0, 1)).unflatten(0, scores.shape[:2])

    def forward(self, support_images: torch.Tensor, support_masks: torch.Tensor, query_images: torch.Tensor, *,
                rng: torch.Generator | None = None) -> torch.Tensor:
        check_episode(support_images, support_masks, query_images)
        return self.segment(support_images[None], support_masks[None], query_images[None], rng)[0]


def check_episode(support_images: torch.Tensor, support_masks: torch.Tensor, query_images: torch.Tensor) -> None:
    """Refuse, saying why, what `PrototypeSegmenter.forward` cannot segment."""
    for name, images in (("support_images", support_images), ("query_images", query_images)):
        if images.ndim != 4 or images.shape[1] != 3 or len(images) == 0:
            raise ValueError(f"{name} must be [N, 3, H, W] RGB images (N >= 1), got shape {tuple(images.shape)}")
    expected = (support_images.shape[0], *support_images.shape[2:])
    if tuple(support_masks.shape) != expected:
        raise ValueError(f"support_masks must be [S, h, w] = {list(expected)}, one per support image and of its "
                         f"size, got shape {tuple(support_masks.shape)}")
    empty = [i for i, mask in enumerate(support_masks) if not (mask > 0).any()]
    if empty:
        raise ValueError(f"support mask(s) {empty} are empty: a foreground prototype needs at least one foreground "
                         f"pixel in every reference")


def build_segmenter(config) -> PrototypeSegmenter:
    """The segmenter a `SegmentationConfig` describes (how `hallucinate.load` rebuilds a checkpoint)."""
    hallucinator = None
    if config.hallucinator != "none":
        if config.hallucinator not in SEGMENTATION_HALLUCINATORS:
            raise ValueError(f"segmentation trains the hallucinators {', '.join(SEGMENTATION_HALLUCINATORS)} (or "
                             f"none), not {config.hallucinator!r}")
        hallucinator = HALLUCINATORS.build(config.hallucinator, config, feature_dim=config.width)
    backbone = feature_maps(width=config.width, pooled=config.pooled, context=config.context_blocks,
                            in_channels=1 if config.ink_input else 3)
    refinement = Refinement() if config.refinement else None
    return PrototypeSegmenter(backbone, scale=config.cosine_scale, refinement=refinement, hallucinator=hallucinator,
                              n_synthetic=config.n_synthetic, ink_input=config.ink_input)


def load_segmenter(state: dict, checkpoint) -> PrototypeSegmenter:
    """The segmenter of a loaded segmentation checkpoint, with its best-on-validation weights."""
    config = SegmentationConfig.from_saved(state["config"])
    model = build_segmenter(config)
    missing, unexpected = model.load_state_dict(state["best_model"], strict=False)
    if missing or unexpected:
        raise CheckpointError(f"{checkpoint} does not match the segmenter its config describes: missing {missing}, "
                              f"unexpected {unexpected}")
    model.config = config
    return model
