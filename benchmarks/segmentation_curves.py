"""The validation curves of segmentation runs, side by side: IoU on their validation scenes at every validation
step, from the metrics each checkpoint carries (nothing is evaluated again), as a Markdown table and a figure.

    python benchmarks/segmentation_curves.py CHECKPOINT_OR_RUN [...] [--out docs/segmentation_curves.png]

A run folder stands for its ``checkpoint.pt``; each column is named by the settings its run changed from the first
one's.
"""
import argparse
from pathlib import Path

from hallucinate.plots import pyplot, save_figure
from hallucinate.segmentation import SegmentationConfig
from hallucinate.training import load_checkpoint
from run_header import print_run_header


def validation_curve(state: dict) -> dict[int, float]:
    return {row["step"]: row["val_iou"] for row in state["metrics"] if "val_iou" in row}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, default=Path("docs/segmentation_curves.png"))
    args = parser.parse_args()
    print_run_header()
    states = {}
    for path in args.runs:
        state = load_checkpoint(path / "checkpoint.pt" if path.is_dir() else path)
        if state.get("task") != "segmentation":
            parser.error(f"{path} is not a segmentation checkpoint or run")
        states[path] = state
    configs = {path: SegmentationConfig.from_saved(state["config"]).as_dict() for path, state in states.items()}
    first = next(iter(configs.values()))
    names = {}
    for path, config in configs.items():
        changed = [f"{key}={value}" for key, value in config.items() if first[key] != value]
        names[path] = f"{path.stem if path.is_file() else path.name} ({', '.join(changed) or 'as the first'})"
    curves = {path: validation_curve(state) for path, state in states.items()}
    steps = sorted({step for curve in curves.values() for step in curve})
    print("| validation step | " + " | ".join(names.values()) + " |")
    print("|---|" + "---|" * len(names))
    for step in steps:
        print(f"| {step} | " + " | ".join(f"{curves[path][step]:.1f}" if step in curves[path] else "—"
                                          for path in states) + " |")
    print("| best (step) | " + " | ".join(f"{state['best_val_iou']:.1f} ({state['best_step']})"
                                          for state in states.values()) + " |")
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(7, 4))
    for path, curve in curves.items():
        axis.plot(list(curve), list(curve.values()), marker="o", label=names[path])
    axis.set(xlabel="training step", ylabel="validation IoU %", ylim=(0, None),
             title=f"{first['val_subset']}: {first['val_images']} scenes of {first['clutter']} characters")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7)
    save_figure(figure, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
