"""MAML and ANIL with more gradient steps at test time than in training: Finn et al. train Omniglot with one inner
step but their code (main.py, ``test_num_updates = 10``) tests with ten; the pipelines here test with the training
count. Each checkpoint, on the same seeded Omniglot test episodes, at each inner-step count, without hallucination.

    python benchmarks/maml_test_steps.py [--steps 1 3 10] [--checkpoints PATH ...] [--episodes 1000] [--seed 0]

Each cell's gain over the trained step count is paired episode by episode, with its 95% interval. Writes
docs/omniglot_maml_test_steps.json and prints the Markdown table of README.md.
"""
import argparse
import json
import sys
import time
from pathlib import Path

import torch

import hallucinate
from hallucinate.data import open_store
from hallucinate.data.paths import cache_dir
from hallucinate.evaluation import evaluate, feature_bank, paired_gain
from hallucinate.training.run_files import write_json_atomic
from learners_table import PUBLISHED, SETTINGS
from run_header import print_run_header

CPU = torch.device("cpu")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoints", nargs="+", default=["checkpoints/omniglot_maml_20k_conv4.pt"])
    parser.add_argument("--steps", nargs="+", type=int, default=[1, 3, 10])
    parser.add_argument("--episodes", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-root")
    parser.add_argument("--cache-dir")
    parser.add_argument("--out", default="docs/omniglot_maml_test_steps.json")
    args = parser.parse_args()
    if min(args.steps) < 0:
        parser.error(f"--steps must be >= 0, got {args.steps}")
    start = print_run_header()
    test = open_store("omniglot", root=args.data_root, cache=args.cache_dir).split("test")
    cache = cache_dir(args.cache_dir)

    rows = []
    for path in args.checkpoints:
        model = hallucinate.load(path)
        if not hasattr(model.learner, "inner_steps"):
            parser.error(f"{path} is a {model.config.learner!r} checkpoint; this benchmark takes MAML and ANIL ones")
        trained_steps = model.config.maml_inner_steps
        bank = feature_bank(model, test, device=CPU, precision="fp32", cache=cache)
        for (n_way, k_shot), published in zip(SETTINGS["omniglot"], PUBLISHED["omniglot"]["maml"]):
            if n_way != model.learner.n_way:
                continue
            results = {}
            for steps in sorted({trained_steps, *args.steps}):
                model.learner.inner_steps = steps
                results[steps] = evaluate(model, test, n_way=n_way, k_shot=k_shot, episodes=args.episodes,
                                          seed=args.seed, hallucinate=False, device=CPU, bank=bank)
            row = {"checkpoint": Path(path).name, "learner": model.config.learner,
                   "episodes_trained": model.config.episodes, "n_way": n_way, "k_shot": k_shot,
                   "published_maml": published, "trained_steps": trained_steps,
                   "cells": {steps: {"result": result.as_dict(),
                                     "gain": paired_gain(result, results[trained_steps])}
                             for steps, result in results.items()}}
            rows.append(row)
            print(json.dumps(row), flush=True)

    print(f"\nomniglot: {args.episodes} test episodes per cell, 15 queries per class, seed {args.seed}; "
          f"each cell: accuracy, then its paired gain over the trained step count\n")
    steps = sorted({step for row in rows for step in row["cells"]})
    print("| checkpoint (episodes trained) | setting | MAML published | "
          + " | ".join(f"{step} step{'s' if step != 1 else ''}" for step in steps) + " |")
    print("| --- | --- | --- | " + " | ".join("---" for _ in steps) + " |")
    for row in rows:
        cells = []
        for step in steps:
            cell = row["cells"].get(step)
            if cell is None:
                cells.append("—")
                continue
            result, (gain, ci95) = cell["result"], cell["gain"]
            text = f"{result['accuracy']:.2f} ± {result['ci95']:.2f}"
            cells.append(text + (" (trained)" if step == row["trained_steps"] else f" ({gain:+.2f} ± {ci95:.2f})"))
        print(f"| `{row['checkpoint']}` ({row['episodes_trained']:,}) | {row['n_way']}-way {row['k_shot']}-shot | "
              f"{row['published_maml']} | " + " | ".join(cells) + " |")
    out = Path(args.out)
    write_json_atomic(out, {"command": " ".join(sys.argv), "episodes": args.episodes, "seed": args.seed,
                            "rows": rows, "wall_time_s": time.perf_counter() - start})
    print(f"\nwrote {out}; wall time {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
