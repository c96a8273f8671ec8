"""The figures a person would rather look at than read: learning curves, real and synthetic features projected to
2-D, accuracy against the number of synthetic examples. PNG, through matplotlib (imported here only)."""
from pathlib import Path

import torch


def pyplot():
    """matplotlib's pyplot on the Agg backend: figures are written to files, never shown."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(figure, path: Path) -> Path:
    """Write ``figure`` to ``path`` as a PNG (folders created), close it, and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    pyplot().close(figure)
    return path


def plot_training(metrics: list[dict], path: Path, title: str = "") -> Path:
    """Training loss and accuracy, and validation accuracy with its 95% interval, from a run's metrics rows."""
    plt = pyplot()
    figure, (loss_axis, val_axis) = plt.subplots(1, 2, figsize=(10, 3.6))
    train = [row for row in metrics if "classification" in row]
    not_losses = {"episode", "lr", "episodes_per_s", "accuracy", "skipped_steps"}
    for name in sorted({key for row in train for key in row} - not_losses):
        loss_axis.plot([r["episode"] for r in train], [r[name] for r in train], label=name)
    val = [row for row in metrics if "val_accuracy" in row and "episode" in row]
    val_axis.errorbar([r["episode"] for r in val], [r["val_accuracy"] for r in val],
                      yerr=[r["val_ci95"] for r in val], capsize=3, marker="o")
    loss_axis.set(xlabel="training episode", ylabel="loss", title="training losses")
    val_axis.set(xlabel="training episode", ylabel="accuracy % (95% interval)", title="validation accuracy")
    for axis in (loss_axis, val_axis):
        axis.grid(alpha=0.3)
    loss_axis.legend(fontsize=7)
    figure.suptitle(title, fontsize=9)
    return save_figure(figure, path)


def plot_projection(panels: dict[str, tuple], path: Path) -> Path:
    """One panel per name: ``(real [n, D], real_labels, synthetic [m, D], synthetic_labels, seeds [c, D])`` projected
    on the first two principal axes of that panel's real features (dots real, crosses synthetic, stars seeds)."""
    plt = pyplot()
    figure, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.6), squeeze=False)
    for axis, (name, (real, real_labels, synthetic, synthetic_labels, seeds)) in zip(axes[0], panels.items()):
        mean = real.mean(0)
        _, _, basis = torch.linalg.svd(real - mean, full_matrices=False)
        project = lambda x: ((x - mean) @ basis[:2].T).cpu().numpy()
        for c in sorted(set(real_labels.tolist())):
            color = f"C{c % 10}"
            points = project(real[real_labels == c])
            axis.scatter(points[:, 0], points[:, 1], s=8, color=color, alpha=0.35)
            if len(synthetic):
                points = project(synthetic[synthetic_labels == c])
                axis.scatter(points[:, 0], points[:, 1], s=14, color=color, marker="x", alpha=0.8)
            point = project(seeds[c:c + 1])
            axis.scatter(point[:, 0], point[:, 1], s=160, color=color, marker="*", edgecolors="black")
        axis.set(title=name, xticks=[], yticks=[])
    figure.suptitle("real (dots), synthetic (crosses) and seed (stars) features, PCA of the real ones", fontsize=9)
    return save_figure(figure, path)


def plot_accuracy_vs_m(curves: dict[str, list[tuple[int, float, float]]], path: Path, title: str) -> Path:
    """Accuracy (with its 95% interval) against M, the synthetic examples per class, one line per name."""
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(5.5, 3.8))
    for name, points in curves.items():
        m, accuracy, ci = zip(*points)
        axis.errorbar(m, accuracy, yerr=ci, marker="o", capsize=3, label=name)
    axis.set(xlabel="M, synthetic examples per class", ylabel="accuracy % (95% interval)", title=title)
    axis.set_xscale("symlog", linthresh=1)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    return save_figure(figure, path)
