"""Every segmentation number the docs show: each checkpoint on the same fixed Cluttered Omniglot test scenes.

    python benchmarks/segmentation_table.py [CHECKPOINT ...] [--clutter 4 8 16 32]
        [--subsets test-one-shot test-train] [--same-drawer true false] [--images 1000] [--baseline NAME]

Default checkpoints: checkpoints/cluttered_omniglot_segmentation_conv4.pt (no hallucinator) and
checkpoints/cluttered_omniglot_segmentation_mlp_conv4.pt (the MLP hallucinator); a missing one is reported as
missing. For each subset, kind of reference (the target's own drawing, or another drawer's) and clutter level it
generates the first --images scenes once and evaluates every checkpoint on them: hallucination off, and on where the
checkpoint has a hallucinator, with the paired on - off gain (mean and 95% interval over the same scenes), and each
hallucinating checkpoint (on) against each plain one, paired the same way; with --baseline (a plain checkpoint's
name), every other plain checkpoint against it too. Beside them: the two floors (predicting
nothing; predicting every inked pixel) and Michaelis et al.'s published IoU where it is published and verified
(test-one-shot, the target's own drawing). Prints one JSON line per cell and a Markdown table; writes
docs/segmentation.json (or --out).
"""
import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

from hallucinate.device import resolve_device
from hallucinate.segmentation import CLUTTER_LEVELS, SUBSETS, evaluate, evaluation_scenes, fixed_scenes, load_glyphs
from hallucinate.segmentation.metric import paired_iou_gain
from hallucinate.segmentation.model import load_segmenter
from hallucinate.segmentation.report import PUBLISHED_IOU, PUBLISHED_SOURCE, published_iou
from hallucinate.segmentation.scenes import FixedScenes
from hallucinate.training import load_checkpoint
from hallucinate.training.run_files import write_json_atomic
from run_header import print_run_header

DEFAULT_CHECKPOINTS = ["checkpoints/cluttered_omniglot_segmentation_conv4.pt",
                       "checkpoints/cluttered_omniglot_segmentation_mlp_conv4.pt"]
NAME_PREFIX = "cluttered_omniglot_segmentation_"
SCENE_ARRAYS = ("query", "query_mask", "support", "support_mask")


def checkpoint_name(path: Path) -> str:
    """A released checkpoint's name less the task's prefix; a run folder's name for its ``checkpoint.pt``."""
    return path.parent.name if path.name == "checkpoint.pt" else path.stem.removeprefix(NAME_PREFIX)


def scenes_md5(scenes: FixedScenes) -> str:
    """md5 of the scenes' arrays, each concatenated over the scenes in order (whatever the batch size), one after
    the other in `SCENE_ARRAYS` order."""
    digest = hashlib.md5()
    for key in SCENE_ARRAYS:
        for batch in scenes.batches:
            digest.update(batch[key].contiguous().numpy().tobytes())
    return digest.hexdigest()


def gain_cell(gain: tuple[float, float]) -> list[float]:
    return [round(gain[0], 3), round(gain[1], 3)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="*", default=DEFAULT_CHECKPOINTS)
    parser.add_argument("--clutter", type=int, nargs="+", default=[4, 8, 16, 32], choices=CLUTTER_LEVELS)
    parser.add_argument("--subsets", nargs="+", default=["test-one-shot", "test-train"],
                        choices=[name for name in SUBSETS if name != "train"])
    parser.add_argument("--same-drawer", nargs="+", default=["true", "false"], choices=["true", "false"])
    parser.add_argument("--images", type=int, default=1000, help="scenes per cell")
    parser.add_argument("--seed", type=int, default=0, help="of the hallucinators' noise")
    parser.add_argument("--data-root")
    parser.add_argument("--device", help="default: cuda when available, else cpu")
    parser.add_argument("--baseline", help="a plain checkpoint's name: the other plain ones' gains over it")
    parser.add_argument("--out", default="docs/segmentation.json")
    args = parser.parse_args()
    if args.images < 2:
        parser.error(f"--images must be at least 2 (a 95% interval needs two), got {args.images}")
    paths = [Path(path) for path in args.checkpoints]
    names = [checkpoint_name(path) for path in paths]
    if len(set(names)) < len(names):
        parser.error(f"two checkpoints share a name: {names}")
    start = print_run_header()
    device = resolve_device(args.device)

    missing = [str(path) for path in paths if not path.is_file()]
    for path in missing:
        print(f"missing: {path}", flush=True)
    models, checkpoints = {}, {}
    for name, path in zip(names, paths):
        if not path.is_file():
            continue
        state = load_checkpoint(path)
        if state.get("task") != "segmentation":
            parser.error(f"{path} is not a segmentation checkpoint")
        models[name] = load_segmenter(state, path).to(device).eval()
        checkpoints[name] = {"path": str(path), "config": state["config"], "steps": state["step"],
                             "best_val_iou": state["best_val_iou"], "best_step": state["best_step"]}
    if not models:
        print(f"segmentation_table.py: error: none of the checkpoints exists: {', '.join(missing)}", file=sys.stderr)
        return 2
    k_shots = {model.config.k_shot for model in models.values()}
    if len(k_shots) > 1:
        parser.error(f"the checkpoints take different numbers of references ({sorted(k_shots)}): their scenes differ")
    k_shot = k_shots.pop()
    hallucinating = [name for name, model in models.items() if model.hallucinating]
    plain = [name for name in models if name not in hallucinating]
    if args.baseline is not None and args.baseline not in plain:
        parser.error(f"--baseline must name a plain checkpoint of this run ({', '.join(plain)}), got {args.baseline!r}")
    over_baseline = [name for name in plain if args.baseline is not None and name != args.baseline]
    print(f"checkpoints: {json.dumps(checkpoints)}", flush=True)

    cells, evaluated, evaluation_s = [], 0, 0.0
    for subset in args.subsets:
        glyphs = load_glyphs(subset, args.data_root)
        for same_drawer in (choice == "true" for choice in args.same_drawer):
            for level in args.clutter:
                generation_start = time.perf_counter()
                scenes = fixed_scenes(evaluation_scenes(glyphs, clutter=level, size=args.images, k_shot=k_shot,
                                                        same_drawer=same_drawer))
                cell = {"subset": subset, "clutter": level, "same_drawer": same_drawer, "k_shot": k_shot,
                        "images": args.images, "scenes_md5": scenes_md5(scenes),
                        "generation_s": round(time.perf_counter() - generation_start, 3)}
                measured, results = {}, {}
                for name, model in models.items():
                    for on in (False, True) if name in hallucinating else (False,):
                        evaluation_start = time.perf_counter()
                        measured[name, on] = evaluate(model, scenes, hallucinate=on, device=device, seed=args.seed)
                        seconds = time.perf_counter() - evaluation_start
                        evaluated, evaluation_s = evaluated + args.images, evaluation_s + seconds
                        results.setdefault(name, {})["on" if on else "off"] = measured[name, on].as_dict() | {
                            "scenes_md5": cell["scenes_md5"], "scenes_per_s": round(args.images / seconds, 1)}
                    if name in hallucinating:
                        results[name]["on_minus_off"] = gain_cell(paired_iou_gain(measured[name, True],
                                                                                  measured[name, False]))
                floors = next(iter(measured.values())).as_dict()
                cell |= {"floor_empty_iou": floors["floor_empty_iou"], "floor_inked_iou": floors["floor_inked_iou"],
                         "published": published_iou(subset, same_drawer, level), "results": results,
                         "hallucinating_minus_plain": {
                             f"{h} on - {p}": gain_cell(paired_iou_gain(measured[h, True], measured[p, False]))
                             for h in hallucinating for p in plain},
                         "plain_minus_baseline": {
                             f"{p} - {args.baseline}": gain_cell(paired_iou_gain(measured[p, False],
                                                                                 measured[args.baseline, False]))
                             for p in over_baseline}}
                cells.append(cell)
                print(json.dumps(cell), flush=True)

    _print_table(args, cells, list(models), hallucinating, plain)
    if missing:
        print(f"\nnot evaluated, missing: {', '.join(missing)}")
    wall = time.perf_counter() - start
    print(f"\nevaluation: {evaluated} scenes in {evaluation_s:.1f} s, {evaluated / evaluation_s:.1f} scenes/s on "
          f"{device}; wall time {wall:.1f} s")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out, {"command": " ".join([Path(sys.executable).name, *sys.argv]), "images": args.images,
                            "seed": args.seed, "device": str(device), "checkpoints": checkpoints, "missing": missing,
                            "published_source": PUBLISHED_SOURCE, "cells": cells,
                            "scenes_per_s": round(evaluated / evaluation_s, 1), "wall_time_s": round(wall, 1)})
    print(f"wrote {out}")
    return 0


def _print_table(args, cells: list[dict], names: list[str], hallucinating: list[str], plain: list[str]) -> None:
    iou = lambda r: f"{r['iou']:.2f} ± {r['ci95']:.2f}"
    gain = lambda g: f"{g[0]:+.2f} ± {g[1]:.2f}"
    published = lambda value: "—" if value is None else f"{value:.1f}"
    columns = [(name, "off") for name in names] + [(name, mode) for name in hallucinating
                                                   for mode in ("on", "on_minus_off")]
    titles = {"off": "{} off", "on": "{} on", "on_minus_off": "{} on − off"}
    title = lambda name, mode: name if name in plain else titles[mode].format(name)
    pairs = [f"{h} on - {p}" for h in hallucinating for p in plain]
    baseline_pairs = [f"{p} - {args.baseline}" for p in plain if args.baseline is not None and p != args.baseline]
    print(f"\nIoU % ± 95% interval over the first {args.images} scenes of each cell, every checkpoint on the same "
          "scenes; gains paired image by image; floors: predicting nothing (empty) and every inked pixel (inked); "
          f"published: {PUBLISHED_SOURCE}, on the paper's task only (test-one-shot, the target's own drawing)\n")
    header = ["subset", "references", "characters", *(title(name, mode) for name, mode in columns),
              *(pair.replace(" - ", " − ") for pair in pairs + baseline_pairs), "empty floor", "inked floor",
              *PUBLISHED_IOU]
    print("| " + " | ".join(header) + " |")
    print("| " + " | ".join("---" for _ in header) + " |")
    for cell in cells:
        row = [cell["subset"], "same drawer" if cell["same_drawer"] else "other drawer", cell["clutter"]]
        row += [gain(cell["results"][name][mode]) if mode == "on_minus_off" else iou(cell["results"][name][mode])
                for name, mode in columns]
        row += [gain(cell["hallucinating_minus_plain"][pair]) for pair in pairs]
        row += [gain(cell["plain_minus_baseline"][pair]) for pair in baseline_pairs]
        row += [f"{cell['floor_empty_iou']:.2f}", f"{cell['floor_inked_iou']:.2f}",
                *(published(cell["published"][model]) for model in PUBLISHED_IOU)]
        print("| " + " | ".join(str(value) for value in row) + " |")


if __name__ == "__main__":
    sys.exit(main())
