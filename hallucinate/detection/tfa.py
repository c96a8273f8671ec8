"""TFA's second stage (Wang et al., ICML 2020): widen the base detector's last layer to the novel classes (base rows
copied) and fine-tune it on a balanced K-shot set, everything before it frozen; or fine-tune everything, TFA's
"FRCN+ft-full" baseline.

With everything before the last layer frozen (batch norm too), a canvas's proposals and the box head's feature of
each proposal are the same at every step: only which RoIs a step samples changes. So the features of every proposal
(and every ground-truth box, which torchvision adds to them) are computed once into a `RoIBank`, and each step samples
RoIs from it as torchvision's `RoIHeads` does (128 a canvas, a quarter foreground) and takes the loss torchvision
takes (`fastrcnn_loss`): the same training, thousands of steps in seconds."""
from collections import OrderedDict
from dataclasses import dataclass

import torch
from torchvision.models.detection.roi_heads import fastrcnn_loss

from ..device import autocast
from .canvases import NUM_NOVEL_CLASSES, collate_canvases
from .config import DetectionConfig
from .model import check_targets, freeze_all_but_predictor, tfa_surgery, unfreeze_all


@dataclass(frozen=True)
class RoIBank:
    """The box head's features of every proposal and ground-truth box of a set of canvases, as torchvision's
    `RoIHeads` matches them in training: ``labels`` 0 for the background, ``regression_targets`` encoded by its box
    coder, ``canvas`` the index of each RoI's canvas."""

    features: torch.Tensor  # [R, d]
    labels: torch.Tensor  # [R] int64
    regression_targets: torch.Tensor  # [R, 4]
    canvas: torch.Tensor  # [R] int64

    @property
    def canvases(self) -> int:
        return int(self.canvas.max()) + 1


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
    return RoIBank(torch.cat(features), torch.cat(labels), torch.cat(regression_targets), torch.cat(canvas))


def _sample(detector, bank: RoIBank, canvases: torch.Tensor) -> torch.Tensor:
    """Indices into ``bank`` of the RoIs torchvision's sampler draws for each of ``canvases`` (torch's global
    random stream, as torchvision's)."""
    per_canvas = [torch.nonzero(bank.canvas == index).flatten() for index in canvases.tolist()]
    chosen_fg, chosen_bg = detector.roi_heads.fg_bg_sampler([bank.labels[rows] for rows in per_canvas])
    return torch.cat([rows[(fg | bg).bool()] for rows, fg, bg in zip(per_canvas, chosen_fg, chosen_bg)])


def finetune_last_layer(detector, bank: RoIBank, config: DetectionConfig, *, steps: int, seed: int) -> list[dict]:
    """Train ``detector.roi_heads.box_predictor`` on ``bank`` for ``steps`` steps of ``finetune_batch_size``
    canvases each (drawn without replacement, epoch after epoch), SGD with momentum; return a loss row every 50
    steps. In place."""
    predictor = detector.roi_heads.box_predictor
    optimizer = torch.optim.SGD(predictor.parameters(), lr=config.finetune_lr, momentum=config.finetune_momentum,
                                weight_decay=config.finetune_weight_decay)
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    order, history = torch.empty(0, dtype=torch.long), []
    for step in range(1, steps + 1):
        if len(order) < config.finetune_batch_size:
            order = torch.cat([order, torch.randperm(bank.canvases, generator=generator)])
        canvases, order = order[:config.finetune_batch_size], order[config.finetune_batch_size:]
        rows = _sample(detector, bank, canvases.to(bank.canvas.device))
        scores, deltas = predictor(bank.features[rows])
        classification, box = fastrcnn_loss(scores, deltas, [bank.labels[rows]], [bank.regression_targets[rows]])
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
          num_novel: int = NUM_NOVEL_CLASSES) -> tuple[object, list[dict]]:
    """TFA's second stage on a K-shot set (``k_shot_set.k_shot`` canvases a class): a copy of ``base_detector``
    with its last layer widened by ``num_novel`` classes (``config.predictor``: cosine or fc), fine-tuned for
    ``finetune_steps_per_shot * k_shot`` steps, the last layer alone or everything (``config.finetune``). Returns the
    fine-tuned detector (eval mode) and its loss rows; ``base_detector`` is left as it was."""
    detector = tfa_surgery(base_detector, num_novel=num_novel, predictor=config.predictor,
                           scale=config.cosine_scale, generator=torch.Generator().manual_seed(seed)).to(device)
    steps = config.finetune_steps_per_shot * k_shot_set.k_shot
    if config.finetune == "last_layer":
        freeze_all_but_predictor(detector)
        bank = roi_bank(detector, k_shot_set, device=device, precision=config.precision)
        history = finetune_last_layer(detector, bank, config, steps=steps, seed=seed)
    else:
        unfreeze_all(detector)
        history = finetune_all(detector, k_shot_set, config, steps=steps, seed=seed, device=device)
    return detector.eval(), history
