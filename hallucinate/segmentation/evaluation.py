"""Scoring a segmenter on a fixed set of scenes: per-image IoU, localisation and the two floors."""
from collections.abc import Iterator

import torch
from tqdm import tqdm

from .metric import SegmentationResult, inked, iou_per_image, localised, predicted_masks
from .scenes import CLUTTER_LEVELS, FixedScenes, evaluation_scenes, fixed_scenes, load_glyphs, model_inputs


@torch.no_grad()
def evaluate(model, scenes: FixedScenes, *, hallucinate: bool, device: torch.device, seed: int = 0,
             progress: bool = False) -> SegmentationResult:
    """``model`` (a `PrototypeSegmenter`) on every scene of ``scenes``, each against its own references, with
    hallucination on or off; the noise of hallucination is seeded by ``seed``, so on and off, or two checkpoints,
    are compared on the same scenes."""
    was_training, was_hallucinating = model.training, model.hallucinating
    model.eval()
    model.set_hallucination(hallucinate)
    rng = torch.Generator(device=device).manual_seed(seed)
    ious, hits, empty_floor, inked_floor = [], [], [], []
    try:
        for batch in tqdm(scenes.batches, desc=f"{scenes.subset} clutter {scenes.clutter}", disable=not progress,
                          leave=False):
            support, support_masks, query, truth = model_inputs(batch, device)
            predicted = predicted_masks(model.segment(support, support_masks, query[:, None], rng)[:, 0])
            ious += iou_per_image(predicted, truth).tolist()
            hits += localised(predicted, truth).tolist()
            empty_floor += iou_per_image(torch.zeros_like(truth), truth).tolist()
            inked_floor += iou_per_image(inked(batch["query"]).to(device), truth).tolist()
    finally:
        model.train(was_training)
        model.hallucinating = was_hallucinating
    return SegmentationResult(tuple(ious), tuple(hits), tuple(empty_floor), tuple(inked_floor), subset=scenes.subset,
                              clutter=scenes.clutter, same_drawer=scenes.same_drawer, k_shot=scenes.k_shot,
                              hallucinate=hallucinate)


def evaluate_levels(model, *, levels: list[int], subset: str, images: int, same_drawer: bool, hallucinate: bool,
                    device: torch.device, seed: int = 0, data_root=None, progress: bool = False) -> Iterator[dict]:
    """`evaluate` on the first ``images`` scenes of ``subset`` at each clutter level in turn, yielding each level's
    result as a dict (`SegmentationResult.as_dict`) as soon as it is measured."""
    unknown = [level for level in levels if level not in CLUTTER_LEVELS]
    if unknown:
        raise ValueError(f"Cluttered Omniglot has no clutter level {', '.join(map(str, unknown))}; valid: "
                         f"{', '.join(map(str, CLUTTER_LEVELS))}")
    if images < 2:
        raise ValueError(f"--images must be at least 2 (a 95% interval needs two), got {images}")
    glyphs = load_glyphs(subset, data_root)
    for level in levels:
        dataset = evaluation_scenes(glyphs, clutter=level, size=images, k_shot=model.config.k_shot,
                                    same_drawer=same_drawer)
        result = evaluate(model, fixed_scenes(dataset), hallucinate=hallucinate, device=device, seed=seed,
                          progress=progress)
        yield result.as_dict()
