"""TFA's second stage (Wang et al., ICML 2020): widen the base detector's last layer to the novel classes (base rows
copied) and fine-tune it on a balanced K-shot set, everything before it frozen; or fine-tune everything, TFA's
"FRCN+ft-full" baseline.

With everything before the last layer frozen (batch norm too), a canvas's proposals and the box head's feature of
each proposal are the same at every step: only which RoIs a step samples changes. So the features of every proposal
(and every ground-truth box, which torchvision adds to them) are computed once into a `RoIBank`, and each step samples
RoIs from it as torchvision's `RoIHeads` does (128 a canvas, a quarter foreground) and takes the loss torchvision
takes (`fastrcnn_loss`): the same training, thousands of steps in seconds. The bank depends on the K-shot set and the
frozen layers alone, so the arms that fine-tune the last layer of one base detector on one K-shot set (fc or cosine,
with or without hallucination) can share it (`k_shot_bank`).

With a hallucinator (`hallucination.RoIHallucinator`), each step also takes synthetic RoI features of the step's
novel classes into the classification loss, weighted (`weighted_classification_loss`); they have no box, so no box
regression target."""
import copy
from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch.nn import functional as F
from torchvision.models.detection.roi_heads import fastrcnn_loss

from ..device import autocast
from .canvases import NUM_NOVEL_CLASSES, collate_canvases
from .config import DetectionConfig
from .model import check_targets, freeze_all_but_predictor, tfa_surgery, unfreeze_all


@dataclass(frozen=True)
class RoIBank:
    """The box head's features of every proposal and ground-truth box of a set of canvases, as torchvision's
    `RoIHeads` matches them in training: ``labels`` 0 for the background, ``regression_targets`` encoded by its box
    coder, ``canvas`` the index of each RoI's canvas, ``rows[i]`` the indices of canvas ``i``'s RoIs."""

    features: torch.Tensor  # [R, d]
    labels: torch.Tensor  # [R] int64
    regression_targets: torch.Tensor  # [R, 4]
    canvas: torch.Tensor  # [R] int64
    rows: tuple[torch.Tensor, ...]  # per canvas, int64

    @property
    def canvases(self) -> int:
        return len(self.rows)


@torch.no_grad()
def roi_bank(detector, dataset, *, device: torch.device, precision: str = "fp32", batch_size: int = 32) -> RoIBank:
    """The `RoIBank` of ``detector`` (its backbone, RPN and box head) on every canvas of ``dataset``: the RPN's
    proposals as in training (the detector's training and test proposal counts are the same here), the ground-truth
    boxes added, matched at IoU 0.5."""
    detector.eval()
    heads = detector.roi_heads
    features, labels, regression_targets, canvas = [], [], [], []
    for images, targets in torch.utils.data.DataLoader(dataset, batch_size=batch_size, collate_fn=collate_canvases):
        check_targets(images, targets)
        images = [image.to(device) for image in images]
        targets = [{key: value.to(device) for key, value in target.items()} for target in targets]
        batch, targets = detector.transform(images, targets)
        with autocast(device, precision):
            maps = OrderedDict([("0", detector.backbone(batch.tensors))])
            proposals, _ = detector.rpn(batch, maps)
        gt_boxes = [target["boxes"] for target in targets]
        proposals = heads.add_gt_proposals([boxes.float() for boxes in proposals], gt_boxes)
        matched, matched_labels = heads.assign_targets_to_proposals(proposals, gt_boxes,
                                                                    [target["labels"] for target in targets])
        matched_boxes = [boxes[index] if len(boxes) else torch.zeros_like(proposal)
                         for boxes, index, proposal in zip(gt_boxes, matched, proposals)]
        with autocast(device, precision):
            pooled = heads.box_roi_pool(maps, proposals, batch.image_sizes)
            features.append(heads.box_head(pooled).float())
        labels += matched_labels
        regression_targets += heads.box_coder.encode(matched_boxes, proposals)
        first = len(canvas)
        canvas += [torch.full((len(p),), first + i, dtype=torch.long, device=device) for i, p in enumerate(proposals)]
    counts = [len(rows) for rows in canvas]
    rows = torch.arange(sum(counts), device=device).split(counts)  # each canvas's RoIs follow the one before's
    return RoIBank(torch.cat(features), torch.cat(labels), torch.cat(regression_targets), torch.cat(canvas), rows)


def k_shot_bank(base_detector, k_shot_set, config: DetectionConfig, *, device: torch.device) -> RoIBank:
    """The `RoIBank` `adapt` fine-tunes the last layer on: ``base_detector``'s layers before its last, frozen as
    fine-tuning freezes them (batch norm too), on every canvas of ``k_shot_set``. The same for every last-layer arm
    and seed on that set: compute it once and hand it to each `adapt`."""
    frozen = freeze_all_but_predictor(copy.deepcopy(base_detector)).to(device)
    return roi_bank(frozen, k_shot_set, device=device, precision=config.precision)


def _sample(detector, bank: RoIBank, canvases: torch.Tensor) -> torch.Tensor:
    """Indices into ``bank`` of the RoIs torchvision's sampler draws for each of ``canvases`` (torch's global
    random stream, as torchvision's)."""
    per_canvas = [bank.rows[index] for index in canvases.tolist()]
    chosen_fg, chosen_bg = detector.roi_heads.fg_bg_sampler([bank.labels[rows] for rows in per_canvas])
    return torch.cat([rows[(fg | bg).bool()] for rows, fg, bg in zip(per_canvas, chosen_fg, chosen_bg)])


def weighted_classification_loss(scores: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``fastrcnn_loss``'s classification term with a weight per RoI: ``sum_i w_i CE(scores_i, labels_i) / sum_i
    w_i`` (with every weight 1, the mean cross-entropy torchvision takes)."""
    return (weights * F.cross_entropy(scores, labels, reduction="none")).sum() / weights.sum()


def finetune_last_layer(detector, bank: RoIBank, config: DetectionConfig, *, steps: int, seed: int,
                        hallucinator=None) -> list[dict]:
    """Train ``detector.roi_heads.box_predictor`` on ``bank`` for ``steps`` steps of ``finetune_batch_size``
    canvases each (drawn without replacement, epoch after epoch), SGD with momentum; return a loss row every 50
    steps. In place.

    ``hallucinator`` (a `hallucination.RoIHallucinator`): each step adds ``config.n_synthetic`` synthetic features
    for each novel class with a canvas in the step (seeded by that class's foreground RoIs in ``bank``), each
    weighing ``synthetic_mass / n_synthetic`` in the classification loss, fresh every step from a stream of their
    own (seeded by ``seed``): the real RoIs sampled are those of the run without them."""
    predictor = detector.roi_heads.box_predictor
    optimizer = torch.optim.SGD(predictor.parameters(), lr=config.finetune_lr, momentum=config.finetune_momentum,
                                weight_decay=config.finetune_weight_decay)
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    if hallucinator is not None:
        novel_rows = (bank.labels > hallucinator.base_classes).nonzero().flatten()  # the seeds to draw from
        synthetic_stream = torch.Generator(device=bank.features.device).manual_seed(seed)
    order, history = torch.empty(0, dtype=torch.long), []
    for step in range(1, steps + 1):
        if len(order) < config.finetune_batch_size:
            order = torch.cat([order, torch.randperm(bank.canvases, generator=generator)])
        canvases, order = order[:config.finetune_batch_size], order[config.finetune_batch_size:]
        rows = _sample(detector, bank, canvases)
        labels = bank.labels[rows]
        scores, deltas = predictor(bank.features[rows])
        classification, box = fastrcnn_loss(scores, deltas, [labels], [bank.regression_targets[rows]])
        if hallucinator is not None:
            in_step = novel_rows[torch.isin(bank.labels[novel_rows], labels[labels > hallucinator.base_classes])]
            synthetic, synthetic_labels, weights = hallucinator(
                bank.features[in_step], bank.labels[in_step], n_per_class=config.n_synthetic,
                synthetic_mass=config.synthetic_mass, rng=synthetic_stream)
            synthetic_scores, _ = predictor(synthetic)  # no box: their deltas take no loss
            classification = weighted_classification_loss(
                torch.cat([scores, synthetic_scores]), torch.cat([labels, synthetic_labels]),
                torch.cat([weights.new_ones(len(rows)), weights]))
        optimizer.zero_grad(set_to_none=True)
        (classification + box).backward()
        optimizer.step()
        if step % 50 == 0 or step == steps:
            history.append({"step": step, "loss_classifier": float(classification.detach()),
                            "loss_box_reg": float(box.detach())})
    return history


def finetune_all(detector, dataset, config: DetectionConfig, *, steps: int, seed: int, device: torch.device
                 ) -> list[dict]:
    """TFA's "FRCN+ft-full": every layer of ``detector`` trains on ``dataset`` for ``steps`` steps of
    ``finetune_batch_size`` canvases, SGD with momentum, in train mode; return a loss row every 50 steps."""
    optimizer = torch.optim.SGD(detector.parameters(), lr=config.finetune_lr, momentum=config.finetune_momentum,
                                weight_decay=config.finetune_weight_decay)
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    detector.train()
    order, history = torch.empty(0, dtype=torch.long), []
    for step in range(1, steps + 1):
        if len(order) < config.finetune_batch_size:
            order = torch.cat([order, torch.randperm(len(dataset), generator=generator)])
        indices, order = order[:config.finetune_batch_size], order[config.finetune_batch_size:]
        images, targets = collate_canvases([dataset[i] for i in indices.tolist()])
        images = [image.to(device) for image in images]
        targets = [{key: value.to(device) for key, value in target.items()} for target in targets]
        with autocast(device, config.precision):
            losses = detector(images, targets)
        optimizer.zero_grad(set_to_none=True)
        sum(losses.values()).backward()
        optimizer.step()
        if step % 50 == 0 or step == steps:
            history.append({"step": step, **{name: float(value.detach()) for name, value in losses.items()}})
    detector.eval()
    return history


def adapt(base_detector, k_shot_set, config: DetectionConfig, *, seed: int, device: torch.device,
          num_novel: int = NUM_NOVEL_CLASSES, bank: RoIBank | None = None,
          hallucinator=None) -> tuple[object, list[dict]]:
    """TFA's second stage on a K-shot set (``k_shot_set.k_shot`` canvases a class): a copy of ``base_detector``
    with its last layer widened by ``num_novel`` classes (``config.predictor``: cosine or fc), fine-tuned for
    ``finetune_steps_per_shot * k_shot`` steps, the last layer alone or everything (``config.finetune``). Returns the
    fine-tuned detector (eval mode) and its loss rows; ``base_detector`` is left as it was.

    Last-layer fine-tuning takes ``bank`` (`k_shot_bank` of this base detector and set) when given, else computes
    it. With ``config.hallucinator`` other than "none" it needs ``hallucinator``, one fitted on this base detector
    (`hallucination.roi_hallucinator`); with "none", none."""
    if (config.hallucinator == "none") != (hallucinator is None):
        raise ValueError(f"config.hallucinator is {config.hallucinator!r} but "
                         f"{'a' if hallucinator is not None else 'no'} hallucinator was given: hallucinated RoI "
                         f"features need both (hallucination.roi_hallucinator builds one), no hallucination neither")
    detector = tfa_surgery(base_detector, num_novel=num_novel, predictor=config.predictor,
                           scale=config.cosine_scale, generator=torch.Generator().manual_seed(seed)).to(device)
    steps = config.finetune_steps_per_shot * k_shot_set.k_shot
    if config.finetune == "last_layer":
        freeze_all_but_predictor(detector)
        if bank is None:
            bank = k_shot_bank(base_detector, k_shot_set, config, device=device)
        history = finetune_last_layer(detector, bank, config, steps=steps, seed=seed, hallucinator=hallucinator)
    else:
        unfreeze_all(detector)
        history = finetune_all(detector, k_shot_set, config, steps=steps, seed=seed, device=device)
    return detector.eval(), history
