"""GAN hallucinator settings tried for CIFAR-FS ProtoNet 1-shot, the one chosen on validation, and every one's test
result, so that the choice can be checked rather than taken on trust.

    python benchmarks/gan_variants.py [--episodes 1000] [--val-episodes 1000]

Each variant is a checkpoint of `pipelines/cifarfs_protonet_gan_joint.py` (the earlier joint design) with some
settings changed (VARIANTS: file -> the `--set` options that made it; `checkpoints/README.md` has the commands).
The variant is chosen by its validation accuracy with hallucination on (5-way 1-shot, `--val-episodes` seeded
episodes of the val split, the same for every variant), never by test accuracy. Then, on the same seeded 5-way
1-shot and 5-shot test episodes, every variant is evaluated with hallucination on and off, beside two references:
the 20-way 5-shot ProtoNet pipeline (`cifarfs_protonet_seed0_conv4.pt`, "none") and the GAN pipeline's recipe without a
hallucinator (`cifarfs_protonet_1shot_conv4.pt`); and for variants that start from the none model's weights (`init_from`), the
same continued training without a hallucinator (`cifarfs_protonet_ft_conv4.pt`). Gains are paired episode by
episode with 95% intervals. Writes docs/cifar_fs_gan_variants.json and prints the Markdown table of README.md.
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
from run_header import print_run_header

CPU = torch.device("cpu")
VARIANTS = {
    "cifarfs_protonet_gan_noise_conv4.pt": "the joint pipeline (adversarial_weight 0.1, anti_collapse_weight 1.0)",
    "cifarfs_protonet_gan_adv001_conv4.pt": "adversarial_weight=0.01",
    "cifarfs_protonet_gan_ac01_conv4.pt": "anti_collapse_weight=0.1",
    "cifarfs_protonet_gan_adv001_ac01_conv4.pt": "adversarial_weight=0.01, anti_collapse_weight=0.1",
    "cifarfs_protonet_gan_ft_conv4.pt": "init_from the none model, lr=2.5e-4, 1500 episodes",
}
REFERENCES = {"none": "cifarfs_protonet_seed0_conv4.pt", "none, same recipe": "cifarfs_protonet_1shot_conv4.pt",
              "none, continued": "cifarfs_protonet_ft_conv4.pt"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoints", default="checkpoints")
    parser.add_argument("--episodes", type=int, default=1000)
    parser.add_argument("--val-episodes", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-root")
    parser.add_argument("--cache-dir")
    parser.add_argument("--out", default="docs/cifar_fs_gan_variants.json")
    args = parser.parse_args()
    start = print_run_header()
    store = open_store("cifar_fs", root=args.data_root, cache=args.cache_dir)
    cache = cache_dir(args.cache_dir)
    paths = {name: Path(args.checkpoints) / name for name in [*VARIANTS, *REFERENCES.values()]}
    missing = [str(path) for path in paths.values() if not path.is_file()]
    if missing:
        parser.error(f"missing checkpoints: {missing} (checkpoints/README.md has the command for each)")
    models = {name: hallucinate.load(path) for name, path in paths.items()}

    def run(name, split, bank, k_shot, on, episodes):
        return evaluate(models[name], split, n_way=5, k_shot=k_shot, episodes=episodes, seed=args.seed,
                        hallucinate=on, device=CPU, bank=bank)

    val = store.split("val")
    validation = {name: run(name, val, feature_bank(models[name], val, device=CPU, precision="fp32", cache=cache),
                            1, True, args.val_episodes) for name in VARIANTS}
    chosen = max(VARIANTS, key=lambda name: validation[name].accuracy)
    print(json.dumps({"validation_5w1s_on": {name: result.as_dict() for name, result in validation.items()},
                      "chosen": chosen}), flush=True)

    test = store.split("test")
    banks = {name: feature_bank(model, test, device=CPU, precision="fp32", cache=cache) for name, model in models.items()}
    rows = []
    for k_shot in (1, 5):
        references = {label: run(name, test, banks[name], k_shot, False, args.episodes)
                      for label, name in REFERENCES.items()}
        for name, settings in VARIANTS.items():
            on, off = (run(name, test, banks[name], k_shot, flag, args.episodes) for flag in (True, False))
            row = {"variant": name, "settings": settings, "k_shot": k_shot, "val_on": validation[name].as_dict(),
                   "on": on.as_dict(), "off": off.as_dict(), "on_minus_off": paired_gain(on, off),
                   "on_minus_none": paired_gain(on, references["none"]),
                   "on_minus_same_recipe": paired_gain(on, references["none, same recipe"])}
            if models[name].config.init_from:
                row["on_minus_continued"] = paired_gain(on, references["none, continued"])
            rows.append(row)
            print(json.dumps(row), flush=True)
        rows.append({"k_shot": k_shot, "references": {label: result.as_dict() for label, result in references.items()}})

    def cell(value):
        return f"{value['accuracy']:.2f} ± {value['ci95']:.2f}"

    def gain(value):
        return "—" if value is None else f"{value[0]:+.2f} ± {value[1]:.2f}"

    print(f"\nchosen on validation: {chosen}\n")
    for row in rows:
        if "references" in row:
            print(f"5-way {row['k_shot']}-shot references: "
                  + ", ".join(f"{label} {cell(value)}" for label, value in row["references"].items()))
    print("\n| variant | setting | val, on | test, off | test, on | on - off | on - none | on - same recipe | "
          "on - continued |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for row in rows:
        if "variant" in row:
            mark = " (chosen)" if row["variant"] == chosen else ""
            print(f"| {row['settings']}{mark} | 5-way {row['k_shot']}-shot | {cell(row['val_on'])} | "
                  f"{cell(row['off'])} | {cell(row['on'])} | {gain(row['on_minus_off'])} | "
                  f"{gain(row['on_minus_none'])} | {gain(row['on_minus_same_recipe'])} | "
                  f"{gain(row.get('on_minus_continued'))} |")
    out = Path(args.out)
    write_json_atomic(out, {"command": " ".join(sys.argv), "episodes": args.episodes, "seed": args.seed,
                            "val_episodes": args.val_episodes, "chosen": chosen, "rows": rows,
                            "wall_time_s": time.perf_counter() - start})
    print(f"\nwrote {out}; wall time {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
