"""The Omniglot results table of README.md: ProtoNet and ProtoNet + GAN hallucinator, Vinyals test split, 5/20-way
1/5-shot, 1000 seeded episodes each (15 queries per class), mean accuracy with its 95% interval, and the paired
gains of hallucination on the same episodes.

    python benchmarks/omniglot_table.py [--protonet checkpoints/omniglot_protonet_60way_conv4.pt]
                                        [--protonet-1shot checkpoints/omniglot_protonet_conv4.pt]
                                        [--gan checkpoints/omniglot_protonet_gan_noise_conv4.pt] [--episodes 1000]
                                        [--out docs/omniglot_results.json]

Checkpoints: ProtoNet (Snell's 60-way 5-shot training), ProtoNet trained like the GAN pipeline (60-way 1-shot)
but without a hallucinator, and the GAN pipeline's. Every checkpoint is evaluated on the same episodes (same seed),
so gains are paired episode by episode:
- "on - off": the GAN checkpoint with hallucination on minus the same checkpoint with it off (same weights);
- "on - 1-shot ProtoNet": the GAN checkpoint, hallucinating, minus ProtoNet trained on the same episodes without
  a hallucinator: what joint training with the hallucinator bought.
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
from run_header import print_run_header

PUBLISHED = {(5, 1): 98.8, (5, 5): 99.7, (20, 1): 96.0, (20, 5): 98.9}  # Snell et al. 2017, Table 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--protonet", default="checkpoints/omniglot_protonet_60way_conv4.pt")
    parser.add_argument("--protonet-1shot", default="checkpoints/omniglot_protonet_conv4.pt")
    parser.add_argument("--gan", default="checkpoints/omniglot_protonet_gan_noise_conv4.pt")
    parser.add_argument("--episodes", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-root")
    parser.add_argument("--cache-dir")
    parser.add_argument("--out", default="docs/omniglot_results.json")
    args = parser.parse_args()
    start = print_run_header()

    device = torch.device("cpu")
    models = {"protonet": hallucinate.load(args.protonet), "protonet_1shot": hallucinate.load(args.protonet_1shot),
              "gan": hallucinate.load(args.gan)}
    store = open_store("omniglot", root=args.data_root, cache=args.cache_dir)
    test = store.split("test")
    banks = {name: feature_bank(model, test, device=device, precision="fp32", cache=cache_dir(args.cache_dir))
             for name, model in models.items()}

    rows = []
    for (n_way, k_shot), published in PUBLISHED.items():
        settings = dict(n_way=n_way, k_shot=k_shot, q_query=15, episodes=args.episodes, seed=args.seed,
                        device=device)
        plain = evaluate(models["protonet"], test, bank=banks["protonet"], **settings)
        plain_1shot = evaluate(models["protonet_1shot"], test, bank=banks["protonet_1shot"], **settings)
        off = evaluate(models["gan"], test, bank=banks["gan"], hallucinate=False, **settings)
        on = evaluate(models["gan"], test, bank=banks["gan"], hallucinate=True, **settings)
        rows.append({"n_way": n_way, "k_shot": k_shot, "published_protonet": published,
                     "protonet": plain.as_dict(), "protonet_1shot": plain_1shot.as_dict(), "gan_off": off.as_dict(),
                     "gan_on": on.as_dict(), "gain_on_minus_off": paired_gain(on, off),
                     "gain_on_minus_protonet_1shot": paired_gain(on, plain_1shot)})

    def cell(result):
        return f"{result['accuracy']:.2f} ± {result['ci95']:.2f}"

    def gain(value):
        return f"{value[0]:+.2f} ± {value[1]:.2f}"

    print(f"\n{args.episodes} test episodes per cell, 15 queries per class, seed {args.seed}\n")
    print("| setting | published ProtoNet | ProtoNet (5-shot training) | ProtoNet (1-shot training) | "
          "ProtoNet + GAN, hallucination off | ProtoNet + GAN, on | gain on - off | gain on - 1-shot ProtoNet |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for row in rows:
        print(f"| {row['n_way']}-way {row['k_shot']}-shot | {row['published_protonet']} | {cell(row['protonet'])} | "
              f"{cell(row['protonet_1shot'])} | {cell(row['gan_off'])} | {cell(row['gan_on'])} | "
              f"{gain(row['gain_on_minus_off'])} | {gain(row['gain_on_minus_protonet_1shot'])} |")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"command": " ".join(sys.argv), "episodes": args.episodes, "seed": args.seed,
                               "checkpoints": {"protonet": args.protonet, "protonet_1shot": args.protonet_1shot,
                                               "gan": args.gan}, "rows": rows},
                              indent=2) + "\n")
    print(f"\nwrote {out}; wall time {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
