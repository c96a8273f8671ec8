"""Learning curves of the released Omniglot checkpoints, from the metrics each carries: training loss and accuracy,
and validation accuracy (20-way 1-shot) over episodes.

    python benchmarks/plot_training.py [CHECKPOINT ...] [--out docs/omniglot_training.png]
"""
import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from hallucinate.training import load_checkpoint  # noqa: E402

DEFAULT = ["checkpoints/omniglot_protonet_60way_conv4.pt", "checkpoints/omniglot_protonet_conv4.pt",
           "checkpoints/omniglot_protonet_gan_noise_conv4.pt"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="*", default=DEFAULT)
    parser.add_argument("--out", default="docs/omniglot_training.png")
    args = parser.parse_args()
    figure, (loss_axis, val_axis) = plt.subplots(1, 2, figsize=(11, 4))
    for path in args.checkpoints:
        state = load_checkpoint(path)
        config = state["config"]
        model = config["learner"] + ("" if config["hallucinator"] == "none" else f" + {config['hallucinator']}")
        label = f"{model} ({config['n_way']}-way {config['k_shot']}-shot training)"
        train = [row for row in state["metrics"] if "classification" in row]
        val = [row for row in state["metrics"] if "val_accuracy" in row]
        loss_axis.plot([r["episode"] for r in train], [r["classification"] for r in train], label=label)
        val_axis.errorbar([r["episode"] for r in val], [r["val_accuracy"] for r in val],
                          yerr=[r["val_ci95"] for r in val], capsize=3, marker="o", label=label)
    loss_axis.set(xlabel="training episode", ylabel="query cross-entropy", yscale="log", title="training loss")
    val_axis.set(xlabel="training episode", ylabel="accuracy % (95% interval)",
                 title="validation: 20-way 1-shot, 300 episodes")
    for axis in (loss_axis, val_axis):
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.tight_layout()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.out, dpi=120)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
