"""Every detection number the docs show: a base detector's bAP50 and RPN recall, then TFA's K-shot protocol for
each fine-tuning arm over the same K-shot sets and the same test canvases.

    python benchmarks/detection_table.py [CHECKPOINT] [--k-shots 1 2 3 5 10] [--seeds 10]
        [--arms tfa_cos tfa_cos_hal tfa_fc ft_full] [--images 1000] [--out docs/detection.json]

Default checkpoint: checkpoints/omniglot_detection_tfa_conv4.pt. The base detector is measured on the 1000 base
test canvases (base AP50, COCO mAP, the RPN's recall at IoU 0.5 with 100 proposals, and the canvases a second of detection and
AP; training speed is the median of the checkpoint's logged canvases per second). Each arm fine-tunes it on the
K-shot sets of seeds 0..N-1 (Omniglot-Det's, balanced over the 120 classes, nested across K) and is scored on the
first --images test canvases: novel AP50, base AP50 and COCO mAP, mean and 95% interval over the seeds. Arms:
``tfa_cos`` (the last layer, cosine classifier: TFA w/ cos), ``tfa_cos_hal`` (TFA w/ cos with hallucinated RoI
features, the calibration hallucinator, fitted once on the base detector), ``tfa_fc`` (the last layer, fc classifier:
TFA w/ fc), ``ft_full`` (every layer, cosine classifier: TFA's "FRCN+ft-full"); each takes the checkpoint's
fine-tuning settings otherwise (hallucination's: DetectionConfig's defaults, which a checkpoint without them gets).
The arms of one K fine-tune on the same K-shot sets, the last-layer ones from one RoI bank per seed; with both
``tfa_cos`` and ``tfa_cos_hal``, the table adds the paired gain of hallucination (on - off, seed by seed). Prints
one JSON line per cell and a Markdown table; writes --out.
"""
import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import torch

from hallucinate import load
from hallucinate.detection import (BASE_LABELS, K_SHOT_SEEDS, K_SHOTS, NOVEL_LABELS, base_test_set,
                                   benchmark_test_set, load_glyphs)
from hallucinate.detection.evaluation import (dataset_rpn_recall, detection_ap, k_shot_arms, paired_gains,
                                              proposal_features)
from hallucinate.detection.hallucination import roi_hallucinator
from hallucinate.device import resolve_device
from hallucinate.training import load_checkpoint
from hallucinate.training.run_files import write_json_atomic
from run_header import print_run_header

ARMS = {"tfa_cos": {"finetune": "last_layer", "predictor": "cosine", "hallucinator": "none"},
        "tfa_cos_hal": {"finetune": "last_layer", "predictor": "cosine", "hallucinator": "calibration"},
        "tfa_fc": {"finetune": "last_layer", "predictor": "fc", "hallucinator": "none"},
        "ft_full": {"finetune": "all", "predictor": "cosine", "hallucinator": "none"}}
GAIN = ("tfa_cos_hal", "tfa_cos")  # hallucination on, off


def _cell(value: float, ci95: float) -> str:
    return f"{value:.2f} ± {ci95:.2f}"


def markdown(base: dict, cells: list[dict], gains: list[dict]) -> str:
    lines = [f"Base detector on {base['images']} base test canvases: bAP50 {base['bap50']:.2f}, mAP {base['map']:.2f}, "
             f"RPN recall@0.5 (100 proposals) {base['rpn_recall']:.2f}; inference {base['inference_canvases_per_s']:.1f} "
             f"canvases/s (AP included), training {base['training_canvases_per_s_median']:.1f} canvases/s (median of "
             f"the run's log rows); bAP50 on the few-shot test canvases {base['bap50_on_test_canvases']:.2f}", "",
             "| arm | K | nAP50 | bAP50 | mAP |", "| --- | --- | --- | --- | --- |"]
    for cell in cells:
        lines.append(f"| {cell['arm']} | {cell['k_shot']} | {_cell(cell['nap50'], cell['nap50_ci95'])} | "
                     f"{_cell(cell['bap50'], cell['bap50_ci95'])} | {_cell(cell['map'], cell['map_ci95'])} |")
    if gains:
        lines += ["", f"Paired gain {GAIN[0]} - {GAIN[1]} (mean and 95% interval of the per-seed differences):", "",
                  "| K | nAP50 | bAP50 | mAP |", "| --- | --- | --- | --- |"]
        lines += [f"| {gain['k_shot']} | {_cell(gain['nap50'], gain['nap50_ci95'])} | "
                  f"{_cell(gain['bap50'], gain['bap50_ci95'])} | {_cell(gain['map'], gain['map_ci95'])} |"
                  for gain in gains]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", nargs="?", default="checkpoints/omniglot_detection_tfa_conv4.pt")
    parser.add_argument("--k-shots", type=int, nargs="+", default=list(K_SHOTS), choices=K_SHOTS)
    parser.add_argument("--seeds", type=int, default=len(K_SHOT_SEEDS), choices=range(2, len(K_SHOT_SEEDS) + 1))
    parser.add_argument("--arms", nargs="*", default=list(ARMS), choices=list(ARMS),
                        help="none: the base detector's numbers alone")
    parser.add_argument("--images", type=int, default=1000, help="test canvases (1000: all)")
    parser.add_argument("--data-root")
    parser.add_argument("--device", help="default: cuda when available, else cpu")
    parser.add_argument("--out", default="docs/detection.json")
    args = parser.parse_args()
    if not Path(args.checkpoint).is_file():
        parser.error(f"no checkpoint at {args.checkpoint}")
    start = print_run_header()
    device = resolve_device(args.device)
    model = load(args.checkpoint, device=str(device))
    detector, config = model.detector, model.config
    train_glyphs, test_glyphs = load_glyphs("train", args.data_root), load_glyphs("test", args.data_root)

    base_set = base_test_set(test_glyphs)
    inference_start = time.perf_counter()
    base_ap = detection_ap(detector, base_set, novel_labels=(), base_labels=BASE_LABELS, device=device,
                           precision=config.precision, progress=True)
    inference_s = time.perf_counter() - inference_start  # detection and AP of the base test canvases
    training_speeds = sorted(row["canvases_per_s"] for row in load_checkpoint(args.checkpoint)["metrics"]
                             if "canvases_per_s" in row)
    base = {"images": len(base_set), "bap50": base_ap.base_ap50, "map": base_ap.map,
            "rpn_recall": dataset_rpn_recall(detector, base_set, device=device),
            "inference_canvases_per_s": len(base_set) / inference_s,
            "training_canvases_per_s_median": training_speeds[len(training_speeds) // 2]}

    test_set = benchmark_test_set(test_glyphs, size=args.images)
    # the base detector on the few-shot test canvases (it never names a novel class): the base AP fine-tuning keeps
    base["bap50_on_test_canvases"] = detection_ap(detector, test_set, novel_labels=NOVEL_LABELS,
                                                  base_labels=BASE_LABELS, device=device,
                                                  precision=config.precision).base_ap50
    print(json.dumps({"base_detector": base}), flush=True)
    features = proposal_features(detector, test_set, device=device, precision=config.precision,
                                 progress=True) if args.arms else None
    arms = {arm: dataclasses.replace(config, **ARMS[arm]) for arm in args.arms}
    hallucinator, hallucinator_s = None, 0.0
    if any(arm_config.hallucinator != "none" for arm_config in arms.values()):
        fit_start = time.perf_counter()
        hallucinator = roi_hallucinator(detector, arms["tfa_cos_hal"], glyphs=train_glyphs, device=device)
        hallucinator_s = round(time.perf_counter() - fit_start, 1)
        print(json.dumps({"hallucinator_fit_seconds": hallucinator_s}), flush=True)
    cells, gains = [], []
    for k_shot in args.k_shots:
        k_start = time.perf_counter()
        results = k_shot_arms(detector, arms, k_shot=k_shot, seeds=range(args.seeds), train_glyphs=train_glyphs,
                              test_set=test_set, device=device, test_features=features, hallucinator=hallucinator,
                              progress=True)
        seconds = round(time.perf_counter() - k_start, 1)  # all the arms of this K, which share its RoI banks
        for arm, cell in results.items():
            cells.append({"arm": arm, **cell, "seconds_all_arms": seconds})
            print(json.dumps(cells[-1]), flush=True)
        if all(arm in results for arm in GAIN):
            gains.append({"k_shot": k_shot, "treated": GAIN[0], "control": GAIN[1],
                          **paired_gains(results[GAIN[0]], results[GAIN[1]])})
            print(json.dumps({"paired_gain": gains[-1]}), flush=True)
    cells.sort(key=lambda cell: list(arms).index(cell["arm"]))  # arm by arm, as the table reads
    print(markdown(base, cells, gains))
    write_json_atomic(Path(args.out), {
        "command": " ".join(["python", *sys.argv]), "checkpoint": args.checkpoint, "config": config.as_dict(),
        "test_images": args.images, "seeds": args.seeds, "base_detector": base, "cells": cells,
        "paired_gains": gains, "hallucinator_fit_seconds": hallucinator_s,
        "seconds": round(time.perf_counter() - start, 1), "torch_threads": torch.get_num_threads()})
    print(f"wrote {args.out} in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
