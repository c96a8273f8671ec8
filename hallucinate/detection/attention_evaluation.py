"""Scoring Attention-RPN in TFA's K-shot protocol, without fine-tuning: for each K-shot seed, each class's
prototype is the mean of its K support boxes in that seed's balanced K-shot set (the sets TFA fine-tunes on); every
test canvas is scored against every class's prototype, the detections of all classes merged (the best 100 of a
canvas kept), and `metric.average_precision` measures them on the same test canvases as TFA's, so the numbers
compare.

The query canvases' backbone maps do not depend on the support: `query_maps` computes them once for every seed."""
from dataclasses import dataclass

import torch
from tqdm import tqdm

from ..device import autocast
from .attention_rpn import AttentionRPN
from .canvases import BASE_LABELS, NOVEL_LABELS, KShotCanvases, collate_canvases
from .metric import average_precision, summarize_seeds

EVAL_BATCH = 32  # query canvases per forward
SUPPORT_CLASSES = 10  # classes whose support windows go through the backbone together


@dataclass(frozen=True)
class QueryMaps:
    """Per batch of a data set's canvases: the transformed batch and its backbone map; and every canvas's target."""

    batches: list[tuple[object, torch.Tensor]]
    targets: list[dict]


@torch.no_grad()
def query_maps(model: AttentionRPN, dataset, *, device: torch.device, precision: str = "fp32") -> QueryMaps:
    model.eval()
    batches, targets = [], []
    for images, batch_targets in torch.utils.data.DataLoader(dataset, batch_size=EVAL_BATCH,
                                                             collate_fn=collate_canvases):
        with autocast(device, precision):
            batch, maps = model.query_maps([image.to(device) for image in images])
        batches.append((batch, maps))
        targets += batch_targets
    return QueryMaps(batches, targets)


@torch.no_grad()
def k_shot_prototypes(model: AttentionRPN, k_shot_set: KShotCanvases, labels, *, device: torch.device,
                      precision: str = "fp32") -> torch.Tensor:
    """The prototypes ``[len(labels), C, r, r]`` of ``labels`` (class id + 1) from a K-shot set: each the mean of
    the class's ``k_shot`` boxes."""
    model.eval()
    labels, k = list(labels), k_shot_set.k_shot
    prototypes = []
    for first in range(0, len(labels), SUPPORT_CLASSES):
        chunk = labels[first:first + SUPPORT_CLASSES]
        images, targets = collate_canvases([k_shot_set[(label - 1) * k + shot] for label in chunk
                                            for shot in range(k)])
        targets = [{"boxes": t["boxes"].to(device), "labels": torch.full_like(t["labels"], j // k).to(device)}
                   for j, t in enumerate(targets)]
        with autocast(device, precision):
            prototypes.append(model.prototypes([image.to(device) for image in images], targets))
    return torch.cat(prototypes)


@torch.no_grad()
def detect_classes(model: AttentionRPN, maps: QueryMaps, prototypes: torch.Tensor, labels) -> list[dict]:
    """Detections on the canvases of ``maps`` against ``prototypes`` (one per label of ``labels``), on the CPU,
    labelled with ``labels``."""
    model.eval()
    labels = torch.as_tensor(list(labels))
    predictions = []
    for batch, batch_maps in maps.batches:
        for output in model.detect_from_maps(batch, batch_maps, prototypes):
            predictions.append({"boxes": output["boxes"].cpu(), "scores": output["scores"].cpu(),
                                "labels": labels[output["labels"].cpu()]})
    return predictions


def k_shot_ap(model: AttentionRPN, *, k_shot: int, seeds, train_glyphs, test_set, device: torch.device,
              precision: str = "fp32", maps: QueryMaps | None = None, base: bool = True,
              progress: bool = False) -> dict:
    """TFA's K-shot protocol for Attention-RPN at one K: per seed, the novel classes' (and with ``base`` the base
    classes') prototypes from that seed's K-shot set, ``test_set`` scored against all of them; novel AP50
    (``nap50``), base AP50 (``bap50``) and COCO mAP (``map``), each's mean, 95% interval over the seeds and per-seed
    values, the keys `evaluation.k_shot_ap` (TFA's) returns. Without ``base`` only the novel classes are scored (a
    sixth of the work) and measured: no ``bap50``, and ``map`` over the novel classes."""
    maps = maps or query_maps(model, test_set, device=device, precision=precision)
    labels = list(NOVEL_LABELS) + (list(BASE_LABELS) if base else [])
    targets = maps.targets if base else [_only(target, NOVEL_LABELS) for target in maps.targets]
    results = []
    for seed in tqdm(list(seeds), desc=f"{k_shot}-shot seeds", disable=not progress, leave=False):
        prototypes = k_shot_prototypes(model, KShotCanvases(train_glyphs, k_shot=k_shot, seed=seed), labels,
                                       device=device, precision=precision)
        predictions = detect_classes(model, maps, prototypes, labels)
        results.append(average_precision(predictions, targets, novel_labels=NOVEL_LABELS,
                                         base_labels=BASE_LABELS if base else ()))
    summary = summarize_seeds(results)
    flat = {"k_shot": k_shot, "seeds": len(results), "predictor": "multi_relation", "finetune": "none",
            "hallucinator": "none"}
    for key, name in {"novel_ap50": "nap50", "base_ap50": "bap50", "map": "map"}.items():
        if key in summary:
            flat |= {name: summary[key]["mean"], f"{name}_ci95": summary[key]["ci95"],
                     f"{name}_per_seed": summary[key]["per_seed"]}
    return flat


def _only(target: dict, labels) -> dict:
    keep = torch.isin(target["labels"], torch.as_tensor(list(labels)))
    return {"boxes": target["boxes"][keep], "labels": target["labels"][keep]}


def validation_ap(model: AttentionRPN, val_set, support_set: KShotCanvases, *, device: torch.device,
                  precision: str = "fp32") -> float:
    """Base AP50 of ``val_set`` (base canvases) scored against every base class's prototype from ``support_set``:
    the few-shot detection of seen classes, which training watches. The model's train/eval mode is restored."""
    was_training = model.training
    try:
        maps = query_maps(model, val_set, device=device, precision=precision)
        prototypes = k_shot_prototypes(model, support_set, BASE_LABELS, device=device, precision=precision)
        predictions = detect_classes(model, maps, prototypes, BASE_LABELS)
        return average_precision(predictions, maps.targets, novel_labels=(), base_labels=BASE_LABELS).base_ap50
    finally:
        model.train(was_training)


def evaluate_checkpoint(detector, *, k_shot: int, seeds: int, images: int, base: bool = True, data_root=None,
                        device: torch.device, progress: bool = False) -> dict:
    """`hallucinate eval` of an Attention-RPN checkpoint (an `AttentionRPNDetector`): `k_shot_ap` over K-shot seeds
    ``0..seeds-1`` on the first ``images`` test canvases."""
    from .canvases import K_SHOT_SEEDS, K_SHOTS, TEST_CANVASES, benchmark_test_set, load_glyphs

    if k_shot not in K_SHOTS:
        raise ValueError(f"Omniglot-Det has no {k_shot}-shot set; valid: {', '.join(map(str, K_SHOTS))}")
    if not 2 <= seeds <= len(K_SHOT_SEEDS):
        raise ValueError(f"--seeds must be 2..{len(K_SHOT_SEEDS)} (a 95% interval needs two), got {seeds}")
    if not 2 <= images <= TEST_CANVASES:
        raise ValueError(f"--images must be 2..{TEST_CANVASES} test canvases, got {images}")
    model, precision = detector.model.eval(), detector.config.precision
    test_set = benchmark_test_set(load_glyphs("test", data_root), size=images)
    result = k_shot_ap(model, k_shot=k_shot, seeds=range(seeds), train_glyphs=load_glyphs("train", data_root),
                       test_set=test_set, device=device, precision=precision, base=base, progress=progress)
    return result | {"images": images}
