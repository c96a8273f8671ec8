"""Scoring a detector on a fixed set of canvases: its detections, their AP (`metric.average_precision`), the RPN's
recall, and TFA's K-shot protocol over seeds, for one fine-tuning arm or several on the same K-shot sets, with their
paired gains.

A TFA fine-tuning changes the last layer only, so on a test set every fine-tuned detector of one base detector has
the same proposals and the same box-head feature of each: `proposal_features` computes them once, and
`detect_from_features` runs only the last layer and torchvision's post-processing on them, which is the detector's
own forward after its box head."""
import dataclasses
from collections import OrderedDict
from dataclasses import dataclass

import torch
from tqdm import tqdm

from ..device import autocast
from ..evaluation.statistics import mean_ci95
from .canvases import BASE_LABELS, NOVEL_LABELS, KShotCanvases, collate_canvases
from .config import DetectionConfig
from .metric import DetectionAP, average_precision, rpn_recall, summarize_seeds
from .model import propose
from .tfa import adapt, k_shot_bank

EVAL_BATCH = 32  # canvases per forward


def _batches(dataset, batch_size: int = EVAL_BATCH):
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, collate_fn=collate_canvases)


@torch.no_grad()
def detect(detector, dataset, *, device: torch.device, precision: str = "fp32",
           progress: bool = False) -> tuple[list[dict], list[dict]]:
    """``detector``'s detections on every canvas of ``dataset`` (eval mode; its train/eval mode is restored) and the
    canvases' targets, both on the CPU, one dict per canvas."""
    was_training = detector.training
    detector.eval()
    predictions, targets = [], []
    try:
        for images, batch_targets in tqdm(_batches(dataset), desc="detect", disable=not progress, leave=False):
            with autocast(device, precision):
                outputs = detector([image.to(device) for image in images])
            predictions += [{key: value.cpu() for key, value in output.items()} for output in outputs]
            targets += batch_targets
    finally:
        detector.train(was_training)
    return predictions, targets


@dataclass(frozen=True)
class ProposalFeatures:
    """Per batch of a data set's canvases: the RPN's proposals, the box head's feature of each, the images' sizes;
    and every canvas's target."""

    batches: list[tuple[list[torch.Tensor], torch.Tensor, list[tuple[int, int]]]]
    targets: list[dict]


@torch.no_grad()
def proposal_features(detector, dataset, *, device: torch.device, precision: str = "fp32",
                      progress: bool = False) -> ProposalFeatures:
    """What ``detector`` computes on ``dataset`` before its last layer, in eval mode."""
    detector.eval()
    batches, targets = [], []
    for images, batch_targets in tqdm(_batches(dataset), desc="proposals", disable=not progress, leave=False):
        batch, _ = detector.transform([image.to(device) for image in images])
        with autocast(device, precision):
            maps = OrderedDict([("0", detector.backbone(batch.tensors))])
            proposals, _ = detector.rpn(batch, maps)
            features = detector.roi_heads.box_head(detector.roi_heads.box_roi_pool(maps, proposals, batch.image_sizes))
        batches.append((proposals, features.float(), batch.image_sizes))
        targets += batch_targets
    return ProposalFeatures(batches, targets)


@torch.no_grad()
def detect_from_features(detector, features: ProposalFeatures) -> list[dict]:
    """The detections of ``detector`` (whose layers before the last made ``features``) on the canvases of
    ``features``, on the CPU: its last layer and torchvision's post-processing (score threshold, NMS, at most 100)."""
    detector.eval()
    heads, predictions = detector.roi_heads, []
    for proposals, box_features, image_sizes in features.batches:
        scores, deltas = heads.box_predictor(box_features)
        boxes, scores, labels = heads.postprocess_detections(scores, deltas, proposals, image_sizes)
        detections = [{"boxes": b, "labels": l, "scores": s} for b, s, l in zip(boxes, scores, labels)]
        detections = detector.transform.postprocess(detections, image_sizes, image_sizes)  # 96 px in, 96 px out
        predictions += [{key: value.cpu() for key, value in d.items()} for d in detections]
    return predictions


def detection_ap(detector, dataset, *, novel_labels, base_labels, device: torch.device, precision: str = "fp32",
                 progress: bool = False) -> DetectionAP:
    """`average_precision` of ``detector``'s detections on ``dataset``."""
    predictions, targets = detect(detector, dataset, device=device, precision=precision, progress=progress)
    return average_precision(predictions, targets, novel_labels=novel_labels, base_labels=base_labels)


@torch.no_grad()
def dataset_rpn_recall(detector, dataset, *, device: torch.device, top: int = 100) -> float:
    """The RPN's recall at IoU 0.5 with its first ``top`` proposals, over every box of ``dataset``."""
    was_training = detector.training
    detector.eval()
    proposals, truth = [], []
    try:
        for images, targets in _batches(dataset):
            proposals += [boxes.cpu() for boxes in propose(detector, [image.to(device) for image in images])]
            truth += [target["boxes"] for target in targets]
    finally:
        detector.train(was_training)
    return rpn_recall(proposals, truth, top=top)


def k_shot_arms(base_detector, arms: dict[str, DetectionConfig], *, k_shot: int, seeds, train_glyphs, test_set,
                device: torch.device, test_features: ProposalFeatures | None = None, hallucinator=None,
                progress: bool = False) -> dict[str, dict]:
    """TFA's protocol at one K for several fine-tuning arms (name -> config) on the same K-shot sets and test
    canvases: for each seed, ``base_detector`` fine-tuned as each arm's config says on that seed's K-shot set, then
    scored on ``test_set``; per arm, novel AP50 (``nap50``), base AP50 (``bap50``) and COCO mAP (``map``), each's
    mean, 95% interval over the seeds and per-seed values. The arms that fine-tune the last layer share each seed's
    `k_shot_bank` (every layer before the last is the base detector's, frozen), computed once: an arm gets what it
    gets alone. ``hallucinator`` (`hallucination.roi_hallucinator` of ``base_detector``) goes to the arms whose
    config names one. ``test_features`` (`proposal_features` of the base detector on ``test_set``) makes last-layer
    fine-tuning's evaluations cheap; fine-tuning everything ignores them."""
    results: dict[str, list[DetectionAP]] = {name: [] for name in arms}
    for seed in tqdm(list(seeds), desc=f"{k_shot}-shot seeds", disable=not progress, leave=False):
        k_shot_set = KShotCanvases(train_glyphs, k_shot=k_shot, seed=seed)
        banks = {}  # by precision, the one setting of the arms' that the bank depends on
        for name, config in arms.items():
            bank = None
            if config.finetune == "last_layer":
                if config.precision not in banks:
                    banks[config.precision] = k_shot_bank(base_detector, k_shot_set, config, device=device)
                bank = banks[config.precision]
            detector, _ = adapt(base_detector, k_shot_set, config, seed=seed, device=device, bank=bank,
                                hallucinator=hallucinator if config.hallucinator != "none" else None)
            if config.finetune == "last_layer" and test_features is not None:
                predictions, targets = detect_from_features(detector, test_features), test_features.targets
            else:
                predictions, targets = detect(detector, test_set, device=device, precision=config.precision)
            results[name].append(average_precision(predictions, targets, novel_labels=NOVEL_LABELS,
                                                   base_labels=BASE_LABELS))
    return {name: _flat(k_shot, config, results[name]) for name, config in arms.items()}


_NAMES = {"novel_ap50": "nap50", "base_ap50": "bap50", "map": "map"}


def _flat(k_shot: int, config: DetectionConfig, results: list[DetectionAP]) -> dict:
    summary = summarize_seeds(results)
    flat = {"k_shot": k_shot, "seeds": len(results), "predictor": config.predictor, "finetune": config.finetune,
            "hallucinator": config.hallucinator}
    if config.hallucinator != "none":
        flat |= {"n_synthetic": config.n_synthetic, "synthetic_mass": config.synthetic_mass}
    for key, name in _NAMES.items():
        flat |= {name: summary[key]["mean"], f"{name}_ci95": summary[key]["ci95"],
                 f"{name}_per_seed": summary[key]["per_seed"]}
    return flat


def k_shot_ap(base_detector, config: DetectionConfig, *, k_shot: int, seeds, train_glyphs, test_set,
              device: torch.device, test_features: ProposalFeatures | None = None, hallucinator=None,
              progress: bool = False) -> dict:
    """`k_shot_arms` of the one arm ``config``."""
    return k_shot_arms(base_detector, {"arm": config}, k_shot=k_shot, seeds=seeds, train_glyphs=train_glyphs,
                       test_set=test_set, device=device, test_features=test_features, hallucinator=hallucinator,
                       progress=progress)["arm"]


def paired_gains(treated: dict, control: dict) -> dict:
    """``treated - control`` seed by seed, for two `k_shot_arms` results on the same K-shot sets and test canvases:
    per metric (``nap50``, ``bap50``, ``map``), the mean difference, its 95% interval and the per-seed
    differences."""
    if (treated["k_shot"], treated["seeds"]) != (control["k_shot"], control["seeds"]):
        raise ValueError(f"paired gains need the same K-shot sets: K={treated['k_shot']} over {treated['seeds']} "
                         f"seeds vs K={control['k_shot']} over {control['seeds']}")
    gains = {}
    for name in _NAMES.values():
        differences = [a - b for a, b in zip(treated[f"{name}_per_seed"], control[f"{name}_per_seed"])]
        mean, ci95 = mean_ci95(differences)
        gains |= {name: mean, f"{name}_ci95": ci95, f"{name}_per_seed": differences}
    return gains


def evaluate_checkpoint(model, *, k_shot: int, seeds: int, images: int, data_root=None, device: torch.device,
                        progress: bool = False) -> dict:
    """`hallucinate eval` of a detection checkpoint (a `FewShotDetector`): `k_shot_ap` over K-shot seeds
    ``0..seeds-1`` on the first ``images`` test canvases (with hallucinated RoI features when the detector is
    `hallucinating`), with the base detector's RPN recall and base AP50 on the base test canvases."""
    from .canvases import K_SHOT_SEEDS, K_SHOTS, TEST_CANVASES, base_test_set, benchmark_test_set, load_glyphs

    if k_shot not in K_SHOTS:
        raise ValueError(f"Omniglot-Det has no {k_shot}-shot set; valid: {', '.join(map(str, K_SHOTS))}")
    if not 2 <= seeds <= len(K_SHOT_SEEDS):
        raise ValueError(f"--seeds must be 2..{len(K_SHOT_SEEDS)} (a 95% interval needs two), got {seeds}")
    if not 2 <= images <= TEST_CANVASES:
        raise ValueError(f"--images must be 2..{TEST_CANVASES} test canvases, got {images}")
    base = model.detector
    config = model.config if model.hallucinating else dataclasses.replace(model.config, hallucinator="none")
    hallucinator = model.roi_hallucinator(data_root=data_root) if model.hallucinating else None
    test_glyphs = load_glyphs("test", data_root)
    test_set, base_set = benchmark_test_set(test_glyphs, size=images), base_test_set(test_glyphs, size=images)
    features = proposal_features(base, test_set, device=device, precision=config.precision, progress=progress)
    result = k_shot_ap(base, config, k_shot=k_shot, seeds=range(seeds), train_glyphs=load_glyphs("train", data_root),
                       test_set=test_set, device=device, test_features=features, hallucinator=hallucinator,
                       progress=progress)
    base_ap = detection_ap(base, base_set, novel_labels=(), base_labels=BASE_LABELS, device=device,
                           precision=config.precision)
    return result | {"images": images, "base_detector_bap50": base_ap.base_ap50,
                     "base_detector_rpn_recall": dataset_rpn_recall(base, base_set, device=device)}
