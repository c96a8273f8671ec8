"""``hallucinate report RUN_DIR`` on a detection run: its learning curve, the base detector's bAP50, mAP and RPN
recall on base test canvases, TFA's 1-shot fine-tuning on one K-shot set (novel and base AP50 on Omniglot-Det's test
canvases), and a few test canvases with the true boxes and what the fine-tuned detector found. One K-shot seed gives
no interval: `hallucinate eval CHECKPOINT --k-shot K --seeds 10` is the measured protocol, and the report says so."""
import json
from pathlib import Path

import torch

from ..plots import pyplot, save_figure
from .canvases import (BASE_LABELS, K_SHOTS, NOVEL_LABELS, NUM_BASE_CLASSES, NUM_NOVEL_CLASSES, TEST_CANVASES,
                       KShotCanvases, base_test_set, benchmark_test_set, load_glyphs)
from .detector import load_detector
from .evaluation import dataset_rpn_recall, detect, detection_ap
from .tfa import adapt

DEFAULT_IMAGES = 200
K_SHOT, K_SHOT_SEED = 1, 0  # the one fine-tuning the report runs
RPN_PROPOSALS = 100
SHOWN_CANVASES = 8
SCORE_THRESHOLD = 0.5  # predictions drawn on the shown canvases
LOSSES = ("loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg")
TRUE_COLOUR, PREDICTED_COLOUR = "lime", "magenta"
TEXT = {"fontsize": 6, "bbox": {"facecolor": "black", "alpha": 0.6, "pad": 0.3, "linewidth": 0}}  # boxes' labels


def _row(cells) -> str:
    return "| " + " | ".join(str(cell) for cell in cells) + " |"


def _percent(value: float | None) -> str:
    """An AP50 as the table shows it: a dash where no class of its group had ground truth."""
    return "—" if value is None else f"{value:.2f}"


def write_detection_report(run_dir: Path, state: dict, *, data_root=None, device: torch.device,
                           images: int | None = None, progress: bool = True) -> Path:
    """Measure the detection checkpoint ``state`` (``run_dir/checkpoint.pt``, its last weights) on the first
    ``images`` base test canvases (bAP50, mAP, RPN recall) and, fine-tuned by TFA on the 1-shot set of seed 0, on the
    first ``images`` test canvases (novel and base AP50, mAP); write ``run_dir/report/report.md`` with its PNGs and
    return the report's path."""
    images = DEFAULT_IMAGES if images is None else images
    if not 1 <= images <= TEST_CANVASES:
        raise ValueError(f"--images must be 1..{TEST_CANVASES} test canvases, got {images}")
    run_dir = Path(run_dir)
    model = load_detector(state, run_dir / "checkpoint.pt")
    base, config = model.detector.to(device).eval(), model.config
    test_glyphs = load_glyphs("test", data_root)
    base_set, test_set = base_test_set(test_glyphs, size=images), benchmark_test_set(test_glyphs, size=images)
    out = run_dir / "report"
    out.mkdir(parents=True, exist_ok=True)

    base_ap = detection_ap(base, base_set, novel_labels=(), base_labels=BASE_LABELS, device=device,
                           precision=config.precision, progress=progress)
    recall = dataset_rpn_recall(base, base_set, device=device, top=RPN_PROPOSALS)
    k_shot_set = KShotCanvases(load_glyphs("train", data_root), k_shot=K_SHOT, seed=K_SHOT_SEED)
    adapted, _ = adapt(base, k_shot_set, config, seed=K_SHOT_SEED, device=device)
    few_shot = detection_ap(adapted, test_set, novel_labels=NOVEL_LABELS, base_labels=BASE_LABELS, device=device,
                            precision=config.precision, progress=progress)
    shown = benchmark_test_set(test_glyphs, size=SHOWN_CANVASES)
    predictions, targets = detect(adapted, shown, device=device, precision=config.precision)

    pretrain_path = run_dir / "pretrain.json"
    pretrain = json.loads(pretrain_path.read_text()) if pretrain_path.is_file() else []
    training = plot_learning_curve(state["metrics"], pretrain, out / "training.png", run_dir.name)
    grid = plot_canvases([shown[i][0] for i in range(len(shown))], targets, predictions, out / "canvases.png")

    validation = [row for row in state["metrics"] if "val_base_ap50" in row]
    checkpoint = run_dir / "checkpoint.pt"
    fine_tuning = (f"the {config.predictor} last layer alone" if config.finetune == "last_layer" else
                   "every layer (TFA's FRCN+ft-full)")
    lines = [f"# Run report: {run_dir.name}", "",
             f"Faster R-CNN (Conv-4, {config.width} channels, stride 8) on Omniglot-Det's {NUM_BASE_CLASSES} base "
             "classes: "
             + (f"box classifier pre-trained {config.pretrain_steps} steps on ground-truth boxes"
                + (f" (accuracy {pretrain[-1]['accuracy']:.1f}% over its last 100 steps)" if pretrain else "")
                + ", then " if config.pretrain_steps else "")
             + f"trained {state['step']} steps of {config.batch_size} base canvases"
             + (f"; last validation bAP50 {validation[-1]['val_base_ap50']:.2f} at step {validation[-1]['step']} "
                f"({config.val_canvases} canvases of the training drawers)" if validation else "")
             + ". The report measures the run's last weights.", "",
             f"Made by `hallucinate report {run_dir} --images {images}`.", "",
             "## Learning curve", "", f"![learning curve]({training.name})", "",
             f"`{training.name}`: the training losses against the step, with the validation bAP50 on the right axis"
             + (", and the box classifier's pre-training accuracy on its training boxes." if pretrain else "."), "",
             f"## Base detector (the first {images} base test canvases, test drawers)", "",
             _row(["metric", "value"]), _row(["---"] * 2),
             _row(["base AP50 (bAP50) %", _percent(base_ap.base_ap50)]),
             _row(["mAP@[.5:.95] %", f"{base_ap.map:.2f}"]),
             _row([f"RPN recall@0.5, {RPN_PROPOSALS} proposals %", f"{recall:.2f}"]), "",
             f"## TFA {K_SHOT}-shot, one K-shot set (the first {images} test canvases)", "",
             f"The base detector's last layer widened to the {NUM_NOVEL_CLASSES} novel classes and fine-tuned "
             f"({fine_tuning}) for {config.finetune_steps_per_shot * K_SHOT} steps on the {K_SHOT}-shot set of seed "
             f"{K_SHOT_SEED} ({len(k_shot_set)} canvases, one annotated character each), then scored on "
             "Omniglot-Det's test canvases, each with at least one novel character.", "",
             _row(["metric", "value"]), _row(["---"] * 2),
             _row(["novel AP50 (nAP50) %", _percent(few_shot.novel_ap50)]),
             _row(["base AP50 (bAP50) %", _percent(few_shot.base_ap50)]),
             _row(["mAP@[.5:.95] %", f"{few_shot.map:.2f}"]), "",
             f"This is **one seed**: no interval, and so few annotations a class make the numbers vary from one "
             f"K-shot set to the next. TFA's protocol, the measured numbers, is the mean and 95% interval over ten "
             f"K-shot sets: `hallucinate eval {checkpoint} --k-shot K --seeds 10` (K in "
             f"{', '.join(map(str, K_SHOTS))}; all {TEST_CANVASES} test canvases by default).", "",
             f"## Test canvases ({SHOWN_CANVASES} of them, the {K_SHOT}-shot detector of seed {K_SHOT_SEED})", "",
             f"![test canvases]({grid.name})", "",
             f"`{grid.name}`: the first {SHOWN_CANVASES} test canvases; true boxes in {TRUE_COLOUR} with their class "
             f"id under them, the fine-tuned detector's predictions scoring at least {SCORE_THRESHOLD} in "
             f"{PREDICTED_COLOUR} with class id and score above them. Novel classes (ids "
             f"{NOVEL_LABELS.start - 1}..{NOVEL_LABELS.stop - 2}) are marked `*`, their true boxes dashed.", "",
             "## The full numbers", "",
             f"- `hallucinate report {run_dir} --images {TEST_CANVASES}`: this page on every test canvas",
             f"- `hallucinate eval {checkpoint} --k-shot K --seeds 10`: nAP50, bAP50 and mAP over ten K-shot sets "
             f"with their 95% intervals, and the base detector's bAP50 and RPN recall, on all {TEST_CANVASES} "
             "canvases", "",
             "## Files", "", "- `report.md`: this page", f"- `{training.name}`: the learning curve",
             f"- `{grid.name}`: test canvases with true and predicted boxes"]
    (out / "report.md").write_text("\n".join(lines) + "\n")
    return out / "report.md"


def plot_learning_curve(rows: list[dict], pretrain: list[dict], path: Path, title: str = "") -> Path:
    """The training losses against the step with the validation bAP50 on a second axis, from a detection run's
    metrics rows; beside them, when ``pretrain`` (``pretrain.json``'s rows) has any, the pre-training accuracy."""
    plt = pyplot()
    figure, axes = plt.subplots(1, 2 if pretrain else 1, figsize=(11 if pretrain else 6, 3.6), squeeze=False)
    loss_axis = axes[0, 0]
    for name in LOSSES:
        points = [(row["step"], row[name]) for row in rows if row.get(name) is not None]
        if points:
            loss_axis.plot(*zip(*points), label=name)
    val_axis = loss_axis.twinx()
    validation = [row for row in rows if "val_base_ap50" in row]
    val_axis.plot([row["step"] for row in validation], [row["val_base_ap50"] for row in validation], marker="o",
                  color="black", label="validation bAP50")
    loss_axis.set(xlabel="training step", ylabel="loss", title="base training")
    val_axis.set(ylabel="validation bAP50 %", ylim=(0, 100))
    loss_axis.grid(alpha=0.3)
    handles, labels = zip(*(pair for axis in (loss_axis, val_axis)
                            for pair in zip(*axis.get_legend_handles_labels())))
    loss_axis.legend(handles, labels, fontsize=7)
    if pretrain:
        axis = axes[0, 1]
        axis.plot([row["pretrain_step"] for row in pretrain], [row["accuracy"] for row in pretrain],
                  marker="o")
        axis.set(xlabel="pre-training step", ylabel="accuracy % (training boxes)", ylim=(0, 100),
                 title="box classifier pre-training on ground-truth boxes")
        axis.grid(alpha=0.3)
    figure.suptitle(title, fontsize=9)
    return save_figure(figure, path)


def _class_text(label: int) -> str:
    """A detector label as its class id, novel ones marked."""
    return f"{label - 1}{'*' if label in NOVEL_LABELS else ''}"


def plot_canvases(images: list[torch.Tensor], targets: list[dict], predictions: list[dict], path: Path) -> Path:
    """Canvases in a grid of four columns, each with its true boxes (novel ones dashed) and the predictions scoring
    at least `SCORE_THRESHOLD`, class ids (novel ones marked ``*``) and scores as small text."""
    from matplotlib.patches import Rectangle

    plt = pyplot()
    rows = -(-len(images) // 4)
    figure, axes = plt.subplots(rows, 4, figsize=(12, 3.1 * rows + 0.4), squeeze=False)
    for axis in axes.flat[len(images):]:
        axis.axis("off")
    for index, (axis, image, target, prediction) in enumerate(zip(axes.flat, images, targets, predictions)):
        axis.imshow(image[0].numpy(), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        for (x1, y1, x2, y2), label in zip(target["boxes"].tolist(), target["labels"].tolist()):
            axis.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=TRUE_COLOUR, linewidth=1,
                                     linestyle="--" if label in NOVEL_LABELS else "-"))
            axis.text(x1, y2, _class_text(label), color=TRUE_COLOUR, va="top", **TEXT)
        kept = prediction["scores"] >= SCORE_THRESHOLD
        for (x1, y1, x2, y2), label, score in zip(prediction["boxes"][kept].tolist(),
                                                  prediction["labels"][kept].tolist(),
                                                  prediction["scores"][kept].tolist()):
            axis.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=PREDICTED_COLOUR,
                                     linewidth=1))
            axis.text(x1, y1, f"{_class_text(label)} {score:.2f}", color=PREDICTED_COLOUR, va="bottom", **TEXT)
        novel = sum(label in NOVEL_LABELS for label in target["labels"].tolist())
        axis.set(title=f"canvas {index}: {len(target['labels'])} true ({novel} novel), {int(kept.sum())} "
                       f"predicted", xticks=[], yticks=[])
        axis.title.set_fontsize(7)
    figure.suptitle(f"true boxes {TRUE_COLOUR} (novel classes dashed), predictions {PREDICTED_COLOUR} (score >= "
                    f"{SCORE_THRESHOLD}); * marks a novel class id", fontsize=8)
    return save_figure(figure, path)
