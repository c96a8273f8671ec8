"""How much of a missed published Omniglot cell longer training closes: each shipped checkpoint beside the same
pipeline trained ten (Siamese), five (relation) or twenty (MAML, the pipeline's own length) times longer, on the same seeded test
episodes, without hallucination.

    python benchmarks/longer_training.py [--episodes 1000] [--seed 0]

PAIRS lists the checkpoints (commands in `checkpoints/README.md`). For every Omniglot setting a model can run
(MAML's head is 5-way), both are evaluated on the same episodes (15 queries per class) and the longer run's gain is
paired episode by episode, with its 95% interval, beside the published cell. Writes
docs/omniglot_longer_training.json and prints the Markdown table of README.md.
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
PAIRS = {  # learner: (shipped checkpoint, the same pipeline trained longer)
    "siamese": ("omniglot_siamese_conv4.pt", "omniglot_siamese_20k_conv4.pt"),
    "maml": ("omniglot_maml_conv4.pt", "omniglot_maml_20k_conv4.pt"),
    "relation": ("omniglot_relation_conv4.pt", "omniglot_relation_10k_conv4.pt"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoints", default="checkpoints")
    parser.add_argument("--episodes", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-root")
    parser.add_argument("--cache-dir")
    parser.add_argument("--out", default="docs/omniglot_longer_training.json")
    args = parser.parse_args()
    start = print_run_header()
    paths = [Path(args.checkpoints) / name for pair in PAIRS.values() for name in pair]
    missing = [str(path) for path in paths if not path.is_file()]
    if missing:
        parser.error(f"missing checkpoints (checkpoints/README.md has the commands): {', '.join(missing)}")
    test = open_store("omniglot", root=args.data_root, cache=args.cache_dir).split("test")
    cache = cache_dir(args.cache_dir)

    rows = []
    for learner, names in PAIRS.items():
        models = [hallucinate.load(Path(args.checkpoints) / name) for name in names]
        banks = [feature_bank(model, test, device=CPU, precision="fp32", cache=cache) for model in models]
        trained = [model.config.episodes for model in models]
        head = getattr(models[0].learner, "n_way", None)
        for (n_way, k_shot), published in zip(SETTINGS["omniglot"], PUBLISHED["omniglot"][learner]):
            if head is not None and head != n_way:
                continue
            short, long = (evaluate(model, test, n_way=n_way, k_shot=k_shot, episodes=args.episodes, seed=args.seed,
                                    hallucinate=False, device=CPU, bank=bank) for model, bank in zip(models, banks))
            row = {"learner": learner, "n_way": n_way, "k_shot": k_shot, "published": published,
                   "episodes_trained": trained, "shipped": short.as_dict(), "longer": long.as_dict(),
                   "gain": paired_gain(long, short)}
            rows.append(row)
            print(json.dumps(row), flush=True)

    print(f"\nomniglot: {args.episodes} test episodes per cell, 15 queries per class, seed {args.seed}\n")
    print("| learner | setting | published | shipped (episodes) | longer (episodes) | longer − shipped | "
          "share of the gap closed |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for row in rows:
        short, long = row["shipped"]["accuracy"], row["longer"]["accuracy"]
        closed = (long - short) / (row["published"] - short) if row["published"] > short else float("nan")
        print(f"| {row['learner']} | {row['n_way']}-way {row['k_shot']}-shot | {row['published']} | "
              f"{short:.2f} ± {row['shipped']['ci95']:.2f} ({row['episodes_trained'][0]:,}) | "
              f"{long:.2f} ± {row['longer']['ci95']:.2f} ({row['episodes_trained'][1]:,}) | "
              f"{row['gain'][0]:+.2f} ± {row['gain'][1]:.2f} | {closed:.0%} |")
    out = Path(args.out)
    write_json_atomic(out, {"command": " ".join(sys.argv), "episodes": args.episodes, "seed": args.seed,
                            "rows": rows, "wall_time_s": time.perf_counter() - start})
    print(f"\nwrote {out}; wall time {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
