"""``hallucinate report RUN_DIR`` on a segmentation run: its learning curve, its IoU on the test-one-shot scenes at
a few clutter levels beside the floors and the published models (with and without hallucination, paired, when it
has a hallucinator), and a few test scenes with what it predicted."""
import json
from pathlib import Path

import torch

from ..plots import pyplot, save_figure
from .evaluation import evaluate
from .metric import SegmentationResult, iou_per_image, paired_iou_gain, predicted_masks
from .model import load_segmenter
from .scenes import CLUTTER_LEVELS, evaluation_scenes, fixed_scenes, load_glyphs, model_inputs

# Michaelis et al. 2018, one-shot IoU % on test-one-shot with the target's own drawing as reference, by characters
# per scene: only the values shared/anchors/segmentation.md marks as verified.
PUBLISHED_IOU = {"Siamese-U-Net": {4: 97.1, 32: 62.4, 256: 38.4}, "MaskNet": {4: 95.8, 32: 65.6, 256: 43.7}}
PUBLISHED_SOURCE = "Michaelis, Bethge & Ecker, ICML 2018 (arXiv:1803.09597), via paperswithcode"
TEST_SUBSET = "test-one-shot"
DEFAULT_IMAGES = 500
SHOWN_SCENES = 4


def published_iou(subset: str, same_drawer: bool, clutter: int) -> dict[str, float | None]:
    """Each published model's IoU on these scenes' task and level; None where it published none (or none verified)."""
    task = subset == TEST_SUBSET and same_drawer
    return {model: levels.get(clutter) if task else None for model, levels in PUBLISHED_IOU.items()}


def default_levels(clutter: int) -> list[int]:
    """The run's level and the next two (the last three levels for a run at one of the top two)."""
    start = min(CLUTTER_LEVELS.index(clutter), len(CLUTTER_LEVELS) - 3)
    return list(CLUTTER_LEVELS[start:start + 3])


def _row(cells) -> str:
    return "| " + " | ".join(str(cell) for cell in cells) + " |"


def _iou(result: dict) -> str:
    return f"{result['iou']:.2f} ± {result['ci95']:.2f}"


def _gain(gain: tuple[float, float]) -> str:
    return f"{gain[0]:+.2f} ± {gain[1]:.2f}"


def write_segmentation_report(run_dir: Path, state: dict, *, data_root=None, device: torch.device,
                              images: int | None = None, levels: list[int] | None = None,
                              progress: bool = True) -> Path:
    """Evaluate the best weights of the segmentation checkpoint ``state`` (``run_dir/checkpoint.pt``) on the first
    ``images`` test-one-shot scenes at each of ``levels`` (default: `default_levels` of the run's) and write
    ``run_dir/report/report.md`` with its PNGs; return the report's path."""
    images = DEFAULT_IMAGES if images is None else images
    if images < 2:
        raise ValueError(f"--images must be at least 2 (a 95% interval needs two), got {images}")
    log = run_dir / "metrics.jsonl"
    if not log.is_file():
        raise FileNotFoundError(f"no metrics.jsonl in {run_dir}: the learning curve is drawn from it")
    model = load_segmenter(state, run_dir / "checkpoint.pt").to(device).eval()
    config = model.config
    levels = list(levels or default_levels(config.clutter))
    glyphs = load_glyphs(TEST_SUBSET, data_root)
    datasets = [evaluation_scenes(glyphs, clutter=level, size=images, k_shot=config.k_shot,
                                  same_drawer=config.same_drawer) for level in levels]  # refuses unknown levels now
    out = run_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    hallucinator = config.hallucinator if model.hallucinating else None

    measured = []  # per level: (off, on or None)
    for dataset in datasets:
        scenes = fixed_scenes(dataset)
        off = evaluate(model, scenes, hallucinate=False, device=device, progress=progress)
        on = evaluate(model, scenes, hallucinate=True, device=device, progress=progress) if hallucinator else None
        measured.append((off, on))
    shown, shown_ious = _shown_scenes(model, glyphs, device)

    rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    training = plot_learning_curve(rows, out / "training.png", run_dir.name)
    curve = plot_iou_against_clutter(measured, out / "iou_vs_clutter.png",
                                     f"{run_dir.name}: {TEST_SUBSET}, {images} scenes per level")
    grid = plot_scenes(shown, shown_ious, out / "scenes.png")

    references = "the target's own drawing" if config.same_drawer else "another drawer's drawing of the target"
    command = f"hallucinate report {run_dir} --images {images} --clutter {' '.join(map(str, levels))}"
    lines = [f"# Run report: {run_dir.name}", "",
             f"Prototype segmenter (Conv-4, {config.width} channels, "
             f"{'with' if config.refinement else 'without'} the refinement decoder) "
             + (f"with the {hallucinator} hallucinator (M = {config.n_synthetic} synthetic foreground features per "
                "scene)" if hallucinator else "without a hallucinator")
             + f"; trained {state['step']} steps of {config.batch_size} scenes of {config.clutter} characters, "
             f"{config.k_shot} reference(s) each ({references}); best validation IoU {state['best_val_iou']:.2f}% "
             f"({config.val_subset}, {config.val_images} scenes) at step {state['best_step']}.", "",
             f"Made by `{command}`.", "",
             "## Learning curve", "", f"![learning curve]({training.name})", "",
             f"`{training.name}`: the training losses and the IoU of the training batches, and the validation IoU "
             "(95% interval), from the run's `metrics.jsonl`.", "",
             f"## Test IoU against clutter ({TEST_SUBSET}, the first {images} scenes per level, 95% interval)", ""]
    lines += _iou_table(measured, hallucinator)
    lines += ["", f"![IoU against clutter]({curve.name})", "",
              f"`{curve.name}`: the table's IoU against the characters per scene, with the inked floor"
              + (" and the published models." if config.same_drawer else "."),
              "", "Floors: predicting nothing (empty) and predicting every inked pixel (inked). Published: "
              f"{PUBLISHED_SOURCE}, on the authors' own scenes (these are generated to their spec, not "
              "byte-identical), with the target's own drawing as reference; — where none is published or verified.",
              "",
              f"## Test scenes ({TEST_SUBSET}, {config.clutter} characters)", "", f"![test scenes]({grid.name})", "",
              f"`{grid.name}`: the first {len(shown_ious)} test scenes, each with its reference, the predicted mask "
              f"(hallucination {'on' if hallucinator else 'off'}) and the true one; IoU "
              + ", ".join(f"{100 * iou:.1f}%" for iou in shown_ious) + ".", "",
              "## Files", "", "- `report.md`: this page", f"- `{training.name}`: the learning curve",
              f"- `{curve.name}`: IoU against clutter", f"- `{grid.name}`: test scenes and predicted masks"]
    (out / "report.md").write_text("\n".join(lines) + "\n")
    return out / "report.md"


def _iou_table(measured: list[tuple[SegmentationResult, SegmentationResult | None]],
               hallucinator: str | None) -> list[str]:
    published = list(PUBLISHED_IOU)
    if hallucinator:
        header = ["characters", "hallucination off", "hallucination on", "on - off (paired)",
                  "localisation % (on)"]
    else:
        header = ["characters", "IoU %", "localisation %"]
    lines = [_row(header + ["empty floor", "inked floor", *published]),
             _row(["---"] * (len(header) + 2 + len(published)))]
    verdicts = []
    for off, on in measured:
        summary = off.as_dict()
        cells = [off.clutter, _iou(summary)]
        if on is not None:
            gain = paired_iou_gain(on, off)
            cells += [_iou(on.as_dict()), _gain(gain)]
            summary = on.as_dict()
            verdicts.append(_verdict(off.clutter, gain))
        reference = published_iou(off.subset, off.same_drawer, off.clutter)
        cells += [f"{summary['localisation']:.1f}", f"{summary['floor_empty_iou']:.2f}",
                  f"{summary['floor_inked_iou']:.2f}", *("—" if reference[name] is None else reference[name]
                                                         for name in published)]
        lines.append(_row(cells))
    return lines + (["", "**Verdict:** hallucination " + "; ".join(verdicts) + "."] if verdicts else [])


def _verdict(clutter: int, gain: tuple[float, float]) -> str:
    change, ci = gain
    if change - ci > 0:
        return f"helped at {clutter} characters ({_gain(gain)} points)"
    if change + ci < 0:
        return f"hurt at {clutter} characters ({_gain(gain)} points)"
    return f"made no difference the interval can detect at {clutter} characters ({_gain(gain)})"


@torch.no_grad()
def _shown_scenes(model, glyphs, device: torch.device) -> tuple[dict[str, torch.Tensor], list[float]]:
    """The first `SHOWN_SCENES` test scenes at the run's level, with the predicted masks (hallucination as the
    model has it, seed 0) under ``"predicted"``, and their IoUs."""
    config = model.config
    dataset = evaluation_scenes(glyphs, clutter=config.clutter, size=SHOWN_SCENES, k_shot=config.k_shot,
                                same_drawer=config.same_drawer)
    batch = fixed_scenes(dataset).batches[0]
    support, support_masks, query, truth = model_inputs(batch, device)
    rng = torch.Generator(device=device).manual_seed(0)
    predicted = predicted_masks(model.segment(support, support_masks, query[:, None], rng)[:, 0])
    return batch | {"predicted": predicted.cpu()}, iou_per_image(predicted, truth).tolist()


def plot_scenes(batch: dict[str, torch.Tensor], ious: list[float], path: Path) -> Path:
    """One row per scene: the scene, its (first) reference, the predicted mask with its IoU, the true mask."""
    plt = pyplot()
    figure, axes = plt.subplots(len(ious), 4, figsize=(8, 2.1 * len(ious)), squeeze=False)
    for i, (row, iou) in enumerate(zip(axes, ious)):
        panels = [(batch["query"][i].permute(1, 2, 0), f"scene {i}"),
                  (batch["support"][i, 0].permute(1, 2, 0), "reference"),
                  (batch["predicted"][i], f"predicted, IoU {100 * iou:.1f}%"),
                  (batch["query_mask"][i], "true mask")]
        for axis, (image, title) in zip(row, panels):
            axis.imshow(image.numpy(), cmap="gray" if image.ndim == 2 else None, interpolation="nearest")
            axis.set(title=title, xticks=[], yticks=[])
            axis.title.set_fontsize(8)
    return save_figure(figure, path)


def plot_learning_curve(rows: list[dict], path: Path, title: str = "") -> Path:
    """Training losses, and the validation IoU (95% interval) with the training batches' IoU, from a segmentation
    run's metrics rows."""
    plt = pyplot()
    figure, (loss_axis, iou_axis) = plt.subplots(1, 2, figsize=(10, 3.6))
    train = [row for row in rows if "segmentation" in row]
    for name in ("segmentation", "alignment"):
        points = [(row["step"], row[name]) for row in train if row.get(name) is not None]
        if points:
            loss_axis.plot(*zip(*points), label=name)
    points = [(row["step"], 100 * row["iou"]) for row in train if row.get("iou") is not None]
    if points:
        iou_axis.plot(*zip(*points), alpha=0.5, label="training batches")
    val = [row for row in rows if "val_iou" in row]
    iou_axis.errorbar([row["step"] for row in val], [row["val_iou"] for row in val],
                      yerr=[row["val_ci95"] for row in val], capsize=3, marker="o", label="validation")
    loss_axis.set(xlabel="training step", ylabel="loss", title="training losses")
    iou_axis.set(xlabel="training step", ylabel="IoU % (95% interval)", title="IoU")
    for axis in (loss_axis, iou_axis):
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
    figure.suptitle(title, fontsize=9)
    return save_figure(figure, path)


def plot_iou_against_clutter(measured: list[tuple[SegmentationResult, SegmentationResult | None]], path: Path,
                             title: str) -> Path:
    """IoU (95% interval) against characters per scene, hallucination off (and on), the inked floor and the
    published models where they are published for these scenes' task."""
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(5.5, 3.8))
    levels = [off.clutter for off, _ in measured]
    curves = {"hallucination off" if measured[0][1] is not None else "this run": [off for off, _ in measured]}
    if measured[0][1] is not None:
        curves["hallucination on"] = [on for _, on in measured]
    for name, results in curves.items():
        summaries = [result.as_dict() for result in results]
        axis.errorbar(levels, [s["iou"] for s in summaries], yerr=[s["ci95"] for s in summaries], marker="o",
                      capsize=3, label=name)
    axis.plot(levels, [off.as_dict()["floor_inked_iou"] for off, _ in measured], linestyle="--", color="grey",
              label="inked floor")
    for marker, name in zip("s^", PUBLISHED_IOU):
        points = [(off.clutter, published_iou(off.subset, off.same_drawer, off.clutter)[name]) for off, _ in measured]
        points = [(level, value) for level, value in points if value is not None]
        if points:
            axis.plot(*zip(*points), marker=marker, linestyle="none", color="black", label=f"{name} (published)")
    axis.set_xscale("log", base=2)
    axis.set_xticks(levels, [str(level) for level in levels])
    axis.set(xlabel="characters per scene", ylabel="IoU % (95% interval)", title=title)
    axis.title.set_fontsize(9)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7)
    return save_figure(figure, path)
