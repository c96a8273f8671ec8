"""Whether bf16 changes a first evaluation: each checkpoint evaluated cold (its test images embedded inside the
timing, as `hallucinate eval` does the first time) in float32 and at precision "auto" (bf16 autocast where the
hardware supports it) on the same seeded episodes, with the paired difference of their accuracies.

    python benchmarks/precision_check.py [--checkpoints checkpoints/omniglot_protonet_60way_conv4.pt ...] [--episodes 1000]

`hallucinate eval` embeds in float32 unless given `--precision auto`: bf16 is the default only if its accuracy stays
within the paired interval of float32's on every checkpoint measured here. The times are wall seconds on this
machine; run it on idle cores for rates to compare (benchmarks/speed.py gives the ratio against easyfsl)."""
import argparse
import json
import time

import torch

import hallucinate
from hallucinate.data import open_store
from hallucinate.device import bf16_supported
from hallucinate.evaluation import evaluate, paired_gain
from run_header import print_run_header

DEFAULT = ["checkpoints/omniglot_protonet_60way_conv4.pt", "checkpoints/cifarfs_protonet_conv4.pt"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoints", nargs="+", default=DEFAULT)
    parser.add_argument("--episodes", type=int, default=1000)
    parser.add_argument("--n-way", type=int, default=5)
    parser.add_argument("--k-shot", type=int, default=1)
    parser.add_argument("--data-root")
    parser.add_argument("--cache-dir")
    args = parser.parse_args()
    device = torch.device("cpu")
    start = print_run_header(f"bf16 on this CPU: {bf16_supported(device)}")
    rows = []
    for checkpoint in args.checkpoints:
        model = hallucinate.load(checkpoint, device="cpu", data_root=args.data_root, cache_dir=args.cache_dir)
        test = open_store(model.config.dataset, image_size=model.config.image_size, root=args.data_root,
                          cache=args.cache_dir).split("test")
        results, seconds = {}, {}
        for precision in ("fp32", "auto"):
            began = time.perf_counter()
            results[precision] = evaluate(model, test, n_way=args.n_way, k_shot=args.k_shot, q_query=15,
                                          episodes=args.episodes, seed=0, device=device, precision=precision)
            seconds[precision] = time.perf_counter() - began
        difference, interval = paired_gain(results["auto"], results["fp32"])
        row = {"checkpoint": checkpoint, "fp32": results["fp32"].accuracy, "auto": results["auto"].accuracy,
               "auto_minus_fp32": [difference, interval], "within_interval": abs(difference) <= interval,
               "seconds_fp32": seconds["fp32"], "seconds_auto": seconds["auto"]}
        rows.append(row)
        print(json.dumps(row), flush=True)
    print(f"\n{args.n_way}-way {args.k_shot}-shot, {args.episodes} episodes, 15 queries a class, seed 0\n")
    print("| checkpoint | float32 | auto | auto − float32 | within the paired interval | "
          "first evaluation, s: float32 / auto |")
    print("| --- | --- | --- | --- | --- | --- |")
    for row in rows:
        difference, interval = row["auto_minus_fp32"]
        print(f"| `{row['checkpoint']}` | {row['fp32']:.2f} | {row['auto']:.2f} | {difference:+.3f} ± {interval:.3f} "
              f"| {'yes' if row['within_interval'] else 'no'} | {row['seconds_fp32']:.1f} / "
              f"{row['seconds_auto']:.1f} |")
    print(f"\nwall time {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
