"""Choosing hallucination's n_synthetic and synthetic_mass for TFA w/ cos on validation canvases, never on the test
canvases: a grid at one K over a few K-shot seeds, each cell's novel AP50 and its paired gain over TFA w/ cos
without hallucination on the same K-shot sets.

    python benchmarks/detection_hallucination_recipe.py [CHECKPOINT] [--k-shot 1] [--seeds 3] [--images 300]
        [--n-synthetic 5 20 50] [--synthetic-mass 0.5 2 8] [--out docs/detection_hallucination_recipe.json]

The validation canvases are the test set's kind (2-5 annotated characters, at least one novel, 0-3 distractors) but
drawn by the train drawers (1-10; the test canvases' are 11-20), from a seed of their own, each annotated character
by a drawer that none of the K-shot sets of the grid's seeds holds for its class: new drawings of every class. The
calibration hallucinator is fitted once, with DetectionConfig's calibration settings. The chosen cell is the one of
the highest mean validation novel AP50; prints every cell as a JSON line and a Markdown table, writes --out.
"""
import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import torch

from hallucinate import load
from hallucinate.detection import K_SHOT_SEEDS, K_SHOTS, KShotCanvases, load_glyphs
from hallucinate.detection.canvases import VALIDATION_SEED, NovelValidationCanvases
from hallucinate.detection.evaluation import k_shot_arms, paired_gains, proposal_features
from hallucinate.detection.hallucination import roi_hallucinator
from hallucinate.device import resolve_device
from hallucinate.training.run_files import write_json_atomic
from run_header import print_run_header


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", nargs="?", default="checkpoints/omniglot_detection_tfa_conv4.pt")
    parser.add_argument("--k-shot", type=int, default=1, choices=K_SHOTS)
    parser.add_argument("--seeds", type=int, default=3, choices=range(2, len(K_SHOT_SEEDS) + 1))
    parser.add_argument("--images", type=int, default=300, help="validation canvases")
    parser.add_argument("--n-synthetic", type=int, nargs="+", default=[5, 20, 50])
    parser.add_argument("--synthetic-mass", type=float, nargs="+", default=[0.5, 2.0, 8.0])
    parser.add_argument("--data-root")
    parser.add_argument("--device", help="default: cuda when available, else cpu")
    parser.add_argument("--out", default="docs/detection_hallucination_recipe.json")
    args = parser.parse_args()
    start = print_run_header()
    device = resolve_device(args.device)
    model = load(args.checkpoint, device=str(device))
    detector, config = model.detector, dataclasses.replace(model.config, hallucinator="none")
    glyphs = load_glyphs("train", args.data_root)
    seeds = range(args.seeds)
    validation = NovelValidationCanvases(glyphs, size=args.images, seed=VALIDATION_SEED,
                                         k_shot_sets=[KShotCanvases(glyphs, k_shot=args.k_shot, seed=seed)
                                                      for seed in seeds])
    features = proposal_features(detector, validation, device=device, precision=config.precision, progress=True)
    hallucinating = dataclasses.replace(config, hallucinator="calibration")
    fit_start = time.perf_counter()
    hallucinator = roi_hallucinator(detector, hallucinating, glyphs=glyphs, device=device)
    fit_s = time.perf_counter() - fit_start
    arms = {"off": config} | {f"n{n}_m{mass:g}": dataclasses.replace(hallucinating, n_synthetic=n, synthetic_mass=mass)
                              for n in args.n_synthetic for mass in args.synthetic_mass}
    results = k_shot_arms(detector, arms, k_shot=args.k_shot, seeds=seeds, train_glyphs=glyphs, test_set=validation,
                          device=device, test_features=features, hallucinator=hallucinator, progress=True)
    cells = []
    for name, result in results.items():
        cell = {"arm": name, **result}
        if name != "off":
            cell["gain"] = paired_gains(result, results["off"])
        cells.append(cell)
        print(json.dumps(cell), flush=True)
    chosen = max(cells[1:], key=lambda cell: cell["nap50"])
    lines = [f"Validation ({args.images} canvases of the train drawers, new drawings), K={args.k_shot}, K-shot seeds "
             f"0..{args.seeds - 1}; off: nAP50 {results['off']['nap50']:.2f} ± {results['off']['nap50_ci95']:.2f}, "
             f"bAP50 {results['off']['bap50']:.2f}", "",
             "| n_synthetic | synthetic_mass | nAP50 | gain nAP50 | bAP50 | gain bAP50 |",
             "| --- | --- | --- | --- | --- | --- |"]
    for cell in cells[1:]:
        gain = cell["gain"]
        lines.append(f"| {cell['n_synthetic']} | {cell['synthetic_mass']:g} | {cell['nap50']:.2f} ± "
                     f"{cell['nap50_ci95']:.2f} | {gain['nap50']:+.2f} ± {gain['nap50_ci95']:.2f} | "
                     f"{cell['bap50']:.2f} | {gain['bap50']:+.2f} ± {gain['bap50_ci95']:.2f} |")
    print("\n".join(lines))
    print(f"chosen: n_synthetic={chosen['n_synthetic']}, synthetic_mass={chosen['synthetic_mass']:g}")
    write_json_atomic(Path(args.out), {
        "command": " ".join(["python", *sys.argv]), "checkpoint": args.checkpoint, "k_shot": args.k_shot,
        "seeds": args.seeds, "validation_images": args.images, "validation_seed": VALIDATION_SEED,
        "calibration": {key: getattr(hallucinating, key) for key in ("calibration_k", "calibration_alpha",
                                                                    "calibration_tukey", "calibration_canvases")},
        "hallucinator_fit_seconds": round(fit_s, 1), "cells": cells,
        "chosen": {"n_synthetic": chosen["n_synthetic"], "synthetic_mass": chosen["synthetic_mass"]},
        "seconds": round(time.perf_counter() - start, 1), "torch_threads": torch.get_num_threads()})
    print(f"wrote {args.out} in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
