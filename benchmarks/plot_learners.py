"""Validation curves of every released Omniglot learner checkpoint, from the metrics each carries, one panel per
validation setting (20-way 1-shot for most; 5-way 1-shot for MAML and ANIL, whose heads are 5-way); pre-trained
learners (Baseline, Baseline++) are drawn against their pre-training epoch, the hallucinators trained on their frozen
backbones against those episodes.

    python benchmarks/plot_learners.py [CHECKPOINT ...] [--out docs/omniglot_learners.png]
"""
import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from hallucinate.training import load_checkpoint  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="*",
                        default=sorted(str(p) for p in Path("checkpoints").glob("omniglot_*.pt")))
    parser.add_argument("--out", default="docs/omniglot_learners.png")
    args = parser.parse_args()
    curves: dict[tuple, list] = {}
    for path in args.checkpoints:
        state = load_checkpoint(path)
        config = state["config"]
        label = config["learner"] + ("" if config["hallucinator"] == "none" else f" + {config['hallucinator']}")
        val = [row for row in state["metrics"] if "val_accuracy" in row]
        # a pre-training checkpoint carries its epochs; a hallucinator trained after pre-training, its episodes
        x_key = "pretrain_epoch" if any("pretrain_epoch" in row for row in val) else "episode"
        label += " (pre-training)" if x_key == "pretrain_epoch" else \
            f" ({config['n_way']}-way {config['k_shot']}-shot {'hallucinator ' if config.get('pretrain_epochs') else ''}training)"
        panel = (config["val_n_way"], config["val_k_shot"], x_key)
        curves.setdefault(panel, []).append((label, [r for r in val if x_key in r]))
    figure, axes = plt.subplots(1, len(curves), figsize=(5.5 * len(curves), 6.2), squeeze=False)
    for axis, ((n_way, k_shot, x_key), lines) in zip(axes[0], sorted(curves.items())):
        axis.set_prop_cycle(color=plt.cm.tab20.colors)  # more lines than the default ten colours
        for label, rows in lines:
            axis.errorbar([r[x_key] for r in rows], [r["val_accuracy"] for r in rows],
                          yerr=[r["val_ci95"] for r in rows], capsize=3, marker="o", label=label)
        axis.set(xlabel="pre-training epoch" if x_key == "pretrain_epoch" else "training episode",
                 ylabel="validation accuracy % (95% interval)", title=f"{n_way}-way {k_shot}-shot validation")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2)  # below: never over a curve
    figure.tight_layout()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
