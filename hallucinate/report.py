"""``hallucinate report RUN_DIR``: a Markdown report of a training run, so a user sees at a glance whether
hallucination helped and why: the learning curves, accuracy with and without hallucination on the same test
episodes (paired gain, 95% interval), the synthetic features' Fréchet distance, diversity and seed-class agreement
beside the real-data floor, accuracy against M, and a 2-D projection of real and synthetic features."""
from pathlib import Path

import numpy as np
import torch

from .evaluation import CopySeed, evaluate, feature_bank, feature_quality, paired_gain
from .hallucinators import hallucinate
from .plots import plot_accuracy_vs_m, plot_projection, plot_training

M_VALUES = (0, 1, 2, 5, 10, 20, 50, 100)


def _row(cells) -> str:
    return "| " + " | ".join(str(cell) for cell in cells) + " |"


def write_report(run_dir: Path, *, data_root=None, cache_dir=None, device: str | None = None, episodes: int = 600,
                 progress: bool = True, compare: list[Path] = (), images: int | None = None,
                 levels: list[int] | None = None) -> Path:
    """Evaluate the best weights of ``run_dir/checkpoint.pt`` on its data set's test split and write
    ``run_dir/report/report.md`` with its PNGs; return the report's path. Each checkpoint in ``compare`` (e.g. the
    earlier noise GAN's) has its generator's features measured and pictured beside this run's, each on its own
    backbone's features of the same test classes. A segmentation run is reported by
    `hallucinate.segmentation.report.write_segmentation_report`, on ``images`` test scenes at each of ``levels``; a
    detection run by `hallucinate.detection.report.write_detection_report`, on ``images`` test canvases."""
    from . import load
    from .data import open_store
    from .data.paths import cache_dir as resolve_cache
    from .device import resolve_device
    from .training import load_checkpoint
    from .training.checkpoint import trained_episodes

    run_dir = Path(run_dir)
    checkpoint = run_dir / "checkpoint.pt"
    if not checkpoint.is_file():
        raise FileNotFoundError(f"no checkpoint.pt in {run_dir}: give the folder a `hallucinate run --out` wrote")
    out = run_dir / "report"
    device = resolve_device(device)
    state = load_checkpoint(checkpoint)
    if state.get("task") == "segmentation":
        from .segmentation.report import write_segmentation_report

        if compare:
            raise ValueError(f"--compare measures hallucinators' features of classification runs; {run_dir} is a "
                             f"segmentation run")
        return write_segmentation_report(run_dir, state, data_root=data_root, device=device, images=images,
                                         levels=levels, progress=progress)
    if state.get("task") == "detection":
        from .detection.report import write_detection_report

        if compare:
            raise ValueError(f"--compare measures hallucinators' features of classification runs; {run_dir} is a "
                             f"detection run")
        if levels:
            raise ValueError(f"--clutter sets the clutter levels of segmentation runs; {run_dir} is a detection run")
        return write_detection_report(run_dir, state, data_root=data_root, device=device, images=images,
                                      progress=progress)
    if images is not None or levels:
        raise ValueError(f"--images applies to segmentation and detection runs and --clutter to segmentation ones; "
                         f"{run_dir} is a classification run")
    model = load(checkpoint, device=str(device), data_root=data_root, cache_dir=cache_dir)
    config = model.config
    store = open_store(config.dataset, image_size=config.image_size, root=data_root, cache=cache_dir)
    test = store.split("test")
    bank = feature_bank(model, test, device=device, precision="fp32", cache=resolve_cache(cache_dir),
                        progress=progress)
    hallucinator = config.hallucinator if model.hallucinator is not None else None
    trained = trained_episodes(state) if "sampler" in state else state.get("trained_episodes")

    lines = [f"# Run report: {run_dir.name}", "",
             f"{config.learner} on {config.dataset} with the {hallucinator or 'no'} hallucinator"
             + (f" (M = {config.n_synthetic} synthetic examples per class)" if hallucinator else "")
             + (f"; stage 2 trained the hallucinator for {trained} episodes of {config.hallucinator_n_way}-way "
                f"{config.hallucinator_k_shot}-shot on the frozen stage-1 embedding" if config.two_stage else
                f"; trained {trained} episodes of {config.n_way}-way {config.k_shot}-shot"
                + (f" after {config.pretrain_epochs} pre-training epochs" if config.pretrain_epochs else ""))
             + f"; best validation accuracy {state['best_val_accuracy']:.2f}% at episode {state['best_episode']}.",
             "", f"![training]({plot_training(state['metrics'], out / 'training.png', run_dir.name).name})", "",
             f"## Test accuracy ({episodes} episodes of 15 queries per class, seed 0, 95% interval)", ""]
    if hallucinator:
        lines += [_row(["setting", "hallucination off", "hallucination on", "on - off (paired)"]),
                  _row(["---"] * 4)]
    else:
        lines += [_row(["setting", "accuracy"]), _row(["---"] * 2)]
    gains = {}
    for k_shot in (1, 5):
        off = evaluate(model, test, n_way=5, k_shot=k_shot, episodes=episodes, hallucinate=False, device=device,
                       bank=bank, progress=progress)
        if not hallucinator:
            lines.append(_row([f"5-way {k_shot}-shot", f"{off.accuracy:.2f} ± {off.ci95:.2f}"]))
            continue
        on = evaluate(model, test, n_way=5, k_shot=k_shot, episodes=episodes, hallucinate=True, device=device,
                      bank=bank, progress=progress)
        gains[k_shot] = paired_gain(on, off)
        lines.append(_row([f"5-way {k_shot}-shot", f"{off.accuracy:.2f} ± {off.ci95:.2f}",
                           f"{on.accuracy:.2f} ± {on.ci95:.2f}", "{:+.2f} ± {:.2f}".format(*gains[k_shot])]))
    if not hallucinator:
        (out / "report.md").write_text("\n".join(lines + ["", "This run has no hallucinator: nothing more to show."])
                                       + "\n")
        return out / "report.md"

    lines += ["", _verdict(gains), "", "## The synthetic features", "",
              "On up to 100 test classes: one real seed each; the class's other real features split in halves A and "
              "B. Fréchet distance to A (pytorch-fid's formula on backbone features; pooled over classes, so it "
              "cannot see collapse onto the seeds: the copy row shows that), diversity (mean pairwise distance "
              "within a class, relative to B's), classes whose diversity is under 10% of the real one (mode "
              "collapse), and agreement (how often a logistic regression fitted on A puts a feature in its seed's "
              "class). The row `real (B)` is the floor: real features scored the same way, at the same size.", "",
              _row(["features", "Fréchet distance", "diversity", "collapsed classes", "seed-class agreement"]),
              _row(["---"] * 5)]
    labels = np.asarray(test.labels)
    name = _generator_name(config)
    others = [(Path(path), load(path, device=str(device), data_root=data_root, cache_dir=cache_dir))
              for path in compare]
    for other_path, other in others:
        if other.hallucinator is None or other.config.dataset != config.dataset:
            raise ValueError(f"--compare {other_path}: a checkpoint with a hallucinator on {config.dataset} is needed")
    measured = [(name, model.hallucinator.generator, bank)] + [
        (f"{_generator_name(other.config)} ({path.name})", other.hallucinator.generator,
         feature_bank(other, test, device=device, precision="fp32", cache=resolve_cache(cache_dir)))
        for path, other in others]
    floors = []
    for row_name, generator, features in measured + [("copy of the seed", CopySeed(), bank)]:
        quality = feature_quality(generator, features, labels)
        lines.append(_row([row_name, f"{quality.frechet_distance:.3f}", f"{quality.diversity:.3f}",
                           f"{quality.collapsed_classes:.0%}", f"{quality.seed_class_agreement:.1%}"]))
        floors.append((row_name, quality))
    floors = floors[:-1]  # the copy of the seed is measured on this run's features: its floor is the run's
    for row_name, quality in floors:  # each generator's floor: real features of its own backbone
        lines.append(_row([f"real (B), {row_name}'s backbone" if len(floors) > 1 else "real (B)",
                           f"{quality.real_frechet_distance:.3f}", "1.000", "0%", f"{quality.real_agreement:.1%}"]))

    curve, n_synthetic = [], model.n_synthetic
    try:
        for m in M_VALUES:
            model.n_synthetic = m
            result = evaluate(model, test, n_way=5, k_shot=1, episodes=episodes, hallucinate=m > 0, device=device,
                              bank=bank, progress=progress)
            curve.append((m, result.accuracy, result.ci95))
    finally:
        model.n_synthetic = n_synthetic
    m_plot = plot_accuracy_vs_m({hallucinator: curve}, out / "accuracy_vs_m.png",
                                f"{config.dataset}, 5-way 1-shot, {episodes} test episodes")
    lines += ["", "## Accuracy against M (5-way 1-shot)", "", _row(["M"] + [m for m, _, _ in curve]),
              _row(["---"] * (len(curve) + 1)), _row(["accuracy %"] + [f"{a:.2f} ± {c:.2f}" for _, a, c in curve]),
              "", f"![accuracy vs M]({m_plot.name})"]

    panels = {}
    for row_name, generator, features in measured:  # titles without the file names, which do not fit a panel
        title = name if row_name == name else f"{row_name.rsplit(' (', 1)[0]}, compared #{len(panels)}"
        panels[title] = projection_panel(generator, features, labels, classes=5, per_class=40)
    lines += ["", "## Real and synthetic features of 5 test classes", "",
              f"![projection]({plot_projection(panels, out / 'projection.png').name})"]
    (out / "report.md").write_text("\n".join(lines) + "\n")
    return out / "report.md"


def _generator_name(config) -> str:
    return f"gan ({config.gan_generator})" if config.hallucinator == "gan" else config.hallucinator


def _verdict(gains: dict[int, tuple[float, float]]) -> str:
    words = []
    for k_shot, (gain, ci) in gains.items():
        if gain - ci > 0:
            words.append(f"helped at {k_shot}-shot ({gain:+.2f} ± {ci:.2f} points)")
        elif gain + ci < 0:
            words.append(f"hurt at {k_shot}-shot ({gain:+.2f} ± {ci:.2f} points)")
        else:
            words.append(f"made no difference the interval can detect at {k_shot}-shot ({gain:+.2f} ± {ci:.2f})")
    return "**Verdict:** hallucination " + "; ".join(words) + "."


@torch.no_grad()
def projection_panel(generator, bank: torch.Tensor, labels: np.ndarray, *, classes: int, per_class: int,
                     seed: int = 0) -> tuple:
    """Real features of ``classes`` test classes chosen by ``seed``, one seed each, and ``per_class`` synthetic
    features from it: the tuple `plot_projection` draws."""
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(np.unique(labels), size=classes, replace=False))
    real = [np.flatnonzero(labels == c) for c in chosen]
    seeds = bank[torch.as_tensor([rng.choice(x) for x in real], device=bank.device)]
    seed_labels = torch.arange(classes, device=bank.device)
    generated, generated_labels, _ = hallucinate(seeds, seed_labels, per_class, generator,
                                              torch.Generator(device=bank.device).manual_seed(seed))
    real_features = bank[torch.as_tensor(np.concatenate(real), device=bank.device)]
    real_labels = torch.cat([torch.full((len(x),), i) for i, x in enumerate(real)])
    return real_features, real_labels, generated[classes:], generated_labels[classes:].cpu(), seeds
