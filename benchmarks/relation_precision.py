"""The shipped relation networks with their relation module in float32 and in bf16: each checkpoint on the same
seeded test episodes in both arms, its test images embedded once in float32 for both, so that only the module's
precision differs; the paired difference of the accuracies, episode by episode, and each arm's time.

    python benchmarks/relation_precision.py [--checkpoints checkpoints/omniglot_relation_conv4.pt ...]
        [--episodes 1000] [--out docs/relation_precision.json]

The checkpoints were trained with the module in float32, as the library ran it before the module joined the
backbone's autocast; the float32 arm is how `hallucinate eval` evaluates them by default (``--precision fp32``), the
bf16 arm how training validates them now and ``--precision bf16`` evaluates them. Each cell is 15 queries a class,
seed 0; an arm's time is that of classifying its episodes from the embedded features, on this machine's CPU."""
import argparse
import json
import sys
import time
from pathlib import Path

import torch

import hallucinate
from hallucinate.data import open_store
from hallucinate.data.paths import cache_dir
from hallucinate.device import bf16_supported
from hallucinate.evaluation import evaluate, feature_bank, paired_gain
from hallucinate.training.run_files import write_json_atomic
from run_header import print_run_header

CHECKPOINTS = ["checkpoints/omniglot_relation_conv4.pt", "checkpoints/cifarfs_relation_conv4.pt"]
SETTINGS = {"omniglot": [(5, 1), (5, 5), (20, 1), (20, 5)], "cifar_fs": [(5, 1), (5, 5)]}
ARMS = ("fp32", "bf16")
CPU = torch.device("cpu")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoints", nargs="+", default=CHECKPOINTS)
    parser.add_argument("--episodes", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-root")
    parser.add_argument("--cache-dir")
    parser.add_argument("--out", default="docs/relation_precision.json")
    args = parser.parse_args()
    start = print_run_header(f"bf16 on this CPU: {bf16_supported(CPU)}")
    rows = []
    for checkpoint in args.checkpoints:
        model = hallucinate.load(checkpoint, device="cpu", data_root=args.data_root, cache_dir=args.cache_dir)
        if model.config.learner != "relation":
            parser.error(f"{checkpoint} is a {model.config.learner} checkpoint; this benchmark measures relation "
                         f"networks' module")
        test = open_store(model.config.dataset, image_size=model.config.image_size, root=args.data_root,
                          cache=args.cache_dir).split("test")
        bank = feature_bank(model, test, device=CPU, precision="fp32", cache=cache_dir(args.cache_dir))
        for n_way, k_shot in SETTINGS[model.config.dataset]:
            results, seconds = {}, {}
            for precision in ARMS:
                began = time.perf_counter()
                results[precision] = evaluate(model, test, n_way=n_way, k_shot=k_shot, q_query=15,
                                              episodes=args.episodes, seed=args.seed, device=CPU,
                                              precision=precision, bank=bank)
                seconds[precision] = time.perf_counter() - began
            difference, interval = paired_gain(results["bf16"], results["fp32"])
            row = {"checkpoint": checkpoint, "dataset": model.config.dataset, "n_way": n_way, "k_shot": k_shot,
                   **{precision: results[precision].as_dict() for precision in ARMS},
                   "bf16_minus_fp32": [difference, interval],
                   **{f"seconds_{precision}": seconds[precision] for precision in ARMS}}
            rows.append(row)
            print(f"{checkpoint} {n_way}-way {k_shot}-shot: "
                  + ", ".join(f"{precision} {results[precision].accuracy:.2f} ± {results[precision].ci95:.2f} "
                              f"({seconds[precision]:.1f} s)" for precision in ARMS)
                  + f"; bf16 − fp32 {difference:+.2f} ± {interval:.2f}", flush=True)
            print(json.dumps(row), flush=True)

    print(f"\n{args.episodes} episodes, 15 queries a class, seed {args.seed}; features embedded in float32\n")
    print("| checkpoint | N-way K-shot | module float32 | module bf16 | bf16 − float32 | seconds: float32 / bf16 |")
    print("| --- | --- | --- | --- | --- | --- |")
    for row in rows:
        difference, interval = row["bf16_minus_fp32"]
        print(f"| `{Path(row['checkpoint']).name}` | {row['n_way']}-way {row['k_shot']}-shot | "
              f"{row['fp32']['accuracy']:.2f} ± {row['fp32']['ci95']:.2f} | "
              f"{row['bf16']['accuracy']:.2f} ± {row['bf16']['ci95']:.2f} | {difference:+.2f} ± {interval:.2f} | "
              f"{row['seconds_fp32']:.1f} / {row['seconds_bf16']:.1f} |")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out, {"command": " ".join(sys.argv), "episodes": args.episodes, "seed": args.seed,
                            "bf16_supported": bf16_supported(CPU), "rows": rows})
    print(f"\nwrote {out}; wall time {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
