"""Where a segmenter's foreground goes: of the pixels it predicts as the target, how many lie on the target's strokes,
on the other characters' strokes, and on blank ground; and how much of the target it recovers. Tells a model that
cannot find its target among the characters (its foreground on the distractors) from one that cannot draw strokes
(its foreground on blank ground).

    python benchmarks/segmentation_errors.py [CHECKPOINT ...] [--subset val-one-shot] [--clutter 4] [--images 500]

Validation scenes by default: this is for choosing what to change, never on the test split. Pixel counts are summed
over the scenes; prints one JSON line per checkpoint.
"""
import argparse
import json
import sys
from pathlib import Path

import torch

from hallucinate.device import resolve_device
from hallucinate.segmentation import CLUTTER_LEVELS, SUBSETS, evaluation_scenes, fixed_scenes, load_glyphs
from hallucinate.segmentation.metric import inked, predicted_masks
from hallucinate.segmentation.model import load_segmenter
from hallucinate.segmentation.scenes import model_inputs
from hallucinate.training import load_checkpoint
from run_header import print_run_header


@torch.no_grad()
def error_shares(model, scenes, device: torch.device) -> dict:
    counts = torch.zeros(5, dtype=torch.float64)  # on target, on distractor ink, on blank, target, distractor ink
    model.eval()
    for batch in scenes.batches:
        support, support_masks, query, truth = model_inputs(batch, device)
        predicted = predicted_masks(model.segment(support, support_masks, query[:, None])[:, 0])
        target, ink = truth.bool(), inked(batch["query"]).to(device)
        distractor = ink & ~target
        counts += torch.stack([(predicted & target).sum(), (predicted & distractor).sum(), (predicted & ~ink).sum(),
                               target.sum(), distractor.sum()]).double().cpu()
    on_target, on_distractor, on_blank, target, distractor = counts.tolist()
    predicted = on_target + on_distractor + on_blank
    return {"predicted_on_target": round(on_target / predicted, 4),
            "predicted_on_distractor_ink": round(on_distractor / predicted, 4),
            "predicted_on_blank": round(on_blank / predicted, 4),
            "target_recovered": round(on_target / target, 4),
            "distractor_ink_predicted": round(on_distractor / distractor, 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="*", default=["checkpoints/cluttered_omniglot_segmentation_conv4.pt"])
    parser.add_argument("--subset", default="val-one-shot", choices=[name for name in SUBSETS if name != "train"])
    parser.add_argument("--clutter", type=int, default=4, choices=CLUTTER_LEVELS)
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--data-root")
    parser.add_argument("--device")
    args = parser.parse_args()
    print_run_header()
    device = resolve_device(args.device)
    glyphs = load_glyphs(args.subset, args.data_root)
    for path in map(Path, args.checkpoints):
        state = load_checkpoint(path)
        if state.get("task") != "segmentation":
            parser.error(f"{path} is not a segmentation checkpoint")
        model = load_segmenter(state, path).to(device)
        scenes = fixed_scenes(evaluation_scenes(glyphs, clutter=args.clutter, size=args.images,
                                                k_shot=model.config.k_shot, same_drawer=model.config.same_drawer))
        print(json.dumps({"checkpoint": str(path), "subset": args.subset, "clutter": args.clutter,
                          "images": args.images, "same_drawer": model.config.same_drawer}
                         | error_shares(model, scenes, device)), flush=True)


if __name__ == "__main__":
    sys.exit(main())
