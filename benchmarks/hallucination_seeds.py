"""The two-stage GAN pipeline over several training seeds, against the plain model it starts from and against
distribution calibration on the same frozen embedding, on the same seeded test episodes.

    python benchmarks/hallucination_seeds.py --pipeline pipelines/cifarfs_protonet_gan.py --seeds 0 1 2 \
        --stage1 checkpoints/cifarfs_protonet_seed0_conv4.pt runs/cifarfs_protonet_seed1/checkpoint.pt \
                 checkpoints/cifarfs_protonet_conv4.pt

For each seed s, stage 1 is the given plain checkpoint (``hallucinate run <plain pipeline> --set seed=s``); stage 2
is trained here by the GAN pipeline with ``--set seed=s --set init_from=<stage 1>`` into
``runs/<pipeline>_seed<s>`` (a finished run is reused). On the same test episodes every arm is evaluated:

- plain: the stage-1 model (ProtoNet), no hallucination; the GAN model with hallucination off is the same model
  (its backbone is stage 1's, frozen), which the script checks;
- GAN on: the pipeline's model as shipped (calibrated GAN, its synthetic mass);
- calibration: Yang et al.'s distribution calibration fitted on the same embedding's train-split features (alpha
  chosen on 200 validation episodes, M = 100), unweighted as the project measured it before, and with the GAN's
  synthetic mass (the same weights, so the learned part is what differs);
- logistic: a logistic-regression head (Tukey 0.5 + L2 on support and query, both arms) fitted on the real support
  set (off) and on it plus the GAN's synthetic examples at their weights (on).

Prints per-seed cells (mean ± 95% episode interval) and, per arm, the mean over seeds with the seed spread (sample
standard deviation) and the paired gain over plain: its mean over seeds and the 95% interval of the pooled
episode-by-episode differences. Writes ``docs/<dataset>_hallucination_seeds.json``."""
import argparse
import copy
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

import hallucinate
from hallucinate.data import open_store
from hallucinate.data.paths import cache_dir
from hallucinate.evaluation import evaluate, feature_bank
from hallucinate.evaluation.statistics import mean_ci95
from hallucinate.hallucinators.calibration import use_calibration
from hallucinate.learners import LogisticRegression
from hallucinate.pipeline import load_pipeline
from hallucinate.training import load_checkpoint, override
from hallucinate.training.run_files import write_json_atomic
from hallucinators_table import choose_alpha
from run_header import print_run_header

CPU = torch.device("cpu")
N_CALIBRATION = 100


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipeline", default="pipelines/cifarfs_protonet_gan.py")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--stage1", nargs="+", help="one plain checkpoint per seed, in order")
    parser.add_argument("--settings", nargs="+", default=["5x1", "5x5"], metavar="NxK")
    parser.add_argument("--episodes", type=int, default=1000)
    parser.add_argument("--from-json", help="evaluate nothing: print the tables from this script's earlier JSON")
    parser.add_argument("--data-root")
    parser.add_argument("--cache-dir")
    parser.add_argument("--out")
    args = parser.parse_args()
    start = print_run_header()
    if args.from_json:
        saved = json.loads(Path(args.from_json).read_text())
        print_tables(saved)
        return
    if args.stage1 is None or len(args.stage1) != len(args.seeds):
        parser.error(f"--stage1 needs one checkpoint per seed ({len(args.seeds)} seeds)")
    settings = [tuple(int(x) for x in text.split("x")) for text in args.settings]
    pipeline = load_pipeline(args.pipeline)
    store = open_store(pipeline.CONFIG.dataset, image_size=pipeline.CONFIG.image_size, root=args.data_root,
                       cache=args.cache_dir)
    test, train, val = store.split("test"), store.split("train"), store.split("val")
    cache = cache_dir(args.cache_dir)
    per_seed = []
    for seed, stage1 in zip(args.seeds, args.stage1):
        out = Path("runs") / f"{Path(args.pipeline).stem}_seed{seed}"
        config = override(pipeline.CONFIG, [f"seed={seed}", f"init_from={stage1}"])
        pipeline.run(config, out=out, resume=(out / "checkpoint.pt").is_file(), data_root=args.data_root,
                     cache_dir=args.cache_dir, device="cpu", progress=False)
        per_seed.append(evaluate_seed(stage1, out / "checkpoint.pt", settings, train, val, test, cache, args))
        print(f"seed {seed}: " + json.dumps({arm: {s: round(100 * np.mean(a), 2) for s, a in cells.items()}
                                              for arm, cells in per_seed[-1]["arms"].items()}), flush=True)
    saved = {"command": " ".join(["python"] + sys.argv), "pipeline": args.pipeline, "seeds": args.seeds,
             "stage1": args.stage1, "episodes": args.episodes, "settings": args.settings, "per_seed": per_seed}
    print_tables(saved)
    path = Path(args.out or f"docs/{pipeline.CONFIG.dataset}_hallucination_seeds.json")
    write_json_atomic(path, saved | {"wall_time_s": time.perf_counter() - start})
    print(f"wrote {path}")


def evaluate_seed(stage1, gan_checkpoint, settings, train, val, test, cache, args) -> dict:
    """Per-episode accuracies of every arm on this seed's models, and what was chosen on validation."""
    plain = hallucinate.load(stage1, device="cpu")
    gan = hallucinate.load(gan_checkpoint, device="cpu")
    for (name, weight), (_, frozen) in zip(plain.backbone.state_dict().items(), gan.backbone.state_dict().items()):
        if not torch.equal(weight, frozen):
            raise RuntimeError(f"{gan_checkpoint}'s backbone differs from {stage1}'s at {name}: not its stage 2")
    bank = feature_bank(gan, test, device=CPU, precision="fp32", cache=cache)
    calibrated = copy.deepcopy(plain)
    use_calibration(calibrated, train, device=CPU, n_synthetic=N_CALIBRATION, cache=cache)
    alpha = choose_alpha(calibrated, val, cache, seed=0)
    weighted = copy.deepcopy(calibrated)
    weighted.hallucinator.synthetic_mass = gan.hallucinator.synthetic_mass
    logistic = copy.deepcopy(gan)
    logistic.learner = LogisticRegression()
    arms = {"plain": (plain, False), "gan off": (gan, False), "gan on": (gan, True),
            "calibration": (calibrated, True), "calibration at the gan's mass": (weighted, True),
            "logistic off": (logistic, False), "logistic on": (logistic, True)}
    results = {arm: {} for arm in arms}
    for n_way, k_shot in settings:
        for arm, (model, on) in arms.items():
            results[arm][f"{n_way}x{k_shot}"] = list(evaluate(
                model, test, n_way=n_way, k_shot=k_shot, episodes=args.episodes, hallucinate=on, device=CPU,
                bank=bank).accuracies)
        if gan.config.learner == "protonet" and results["gan off"][f"{n_way}x{k_shot}"] != \
                results["plain"][f"{n_way}x{k_shot}"]:
            raise RuntimeError("the GAN model with hallucination off should be the plain model: it is not")
    return {"arms": results, "calibration_alpha": alpha,
            "stage1_val_accuracy": load_checkpoint(stage1)["best_val_accuracy"],
            "gan_val_accuracy": load_checkpoint(gan_checkpoint)["best_val_accuracy"]}


# Each arm against the arm it is compared with, paired episode by episode.
COMPARISONS = [("gan on", "plain"), ("calibration", "plain"), ("calibration at the gan's mass", "plain"),
               ("gan on", "calibration"), ("gan on", "calibration at the gan's mass"), ("logistic off", "plain"),
               ("logistic on", "logistic off")]


def gain(per_seed: list[dict], arm: str, control: str, setting: str, control_seed: int | None = None):
    """Mean over seeds of the paired gain, and the 95% interval of the pooled episode differences (points).
    ``control_seed``: compare every seed's arm with that one seed's control (the same test episodes)."""
    differences = [np.asarray(seed["arms"][arm][setting])
                   - np.asarray(per_seed[control_seed if control_seed is not None else i]["arms"][control][setting])
                   for i, seed in enumerate(per_seed)]
    mean, ci = mean_ci95(np.concatenate(differences))
    return 100 * mean, 100 * ci, [100 * float(d.mean()) for d in differences]


def print_tables(saved: dict) -> None:
    per_seed, settings = saved["per_seed"], saved["settings"]
    names = [f"{s.split('x')[0]}-way {s.split('x')[1]}-shot" for s in settings]
    print(f"\n{len(per_seed)} training seeds ({', '.join(map(str, saved['seeds']))}), {saved['episodes']} test "
          f"episodes each; accuracy: mean over seeds ± seed standard deviation [mean 95% episode interval]\n")
    print("| arm | " + " | ".join(names) + " |\n| --- | " + " | ".join("---" for _ in names) + " |")
    for arm in per_seed[0]["arms"]:
        cells = []
        for s in settings:
            accuracies = [100 * np.mean(seed["arms"][arm][s]) for seed in per_seed]
            intervals = [100 * mean_ci95(seed["arms"][arm][s])[1] for seed in per_seed]
            spread = np.std(accuracies, ddof=1) if len(accuracies) > 1 else 0.0
            cells.append(f"{np.mean(accuracies):.2f} ± {spread:.2f} [{np.mean(intervals):.2f}]")
        print(f"| {arm} | " + " | ".join(cells) + " |")
    print("\nPaired gains (points): mean over seeds ± 95% interval of the pooled episode differences; per seed in "
          "brackets\n")
    print("| comparison | " + " | ".join(names) + " |\n| --- | " + " | ".join("---" for _ in names) + " |")
    for arm, control in COMPARISONS:
        cells = ["{:+.2f} ± {:.2f} ({})".format(m, c, ", ".join(f"{g:+.2f}" for g in each))
                 for m, c, each in (gain(per_seed, arm, control, s) for s in settings)]
        print(f"| {arm} − {control} | " + " | ".join(cells) + " |")
    best = int(np.argmax([seed["stage1_val_accuracy"] for seed in per_seed]))
    cells = ["{:+.2f} ± {:.2f} ({})".format(m, c, ", ".join(f"{g:+.2f}" for g in each))
             for m, c, each in (gain(per_seed, "gan on", "plain", s, control_seed=best) for s in settings)]
    print(f"| gan on − the best plain model on validation (seed {saved['seeds'][best]}, "
          f"{per_seed[best]['stage1_val_accuracy']:.2f}%) | " + " | ".join(cells) + " |")
    print("\nBest validation accuracy (each run's own validation episodes): stage 1 " + ", ".join(
        f"{seed['stage1_val_accuracy']:.2f}" for seed in per_seed) + "; stage 2 " + ", ".join(
        f"{seed['gan_val_accuracy']:.2f}" for seed in per_seed) + "; calibration alpha chosen " + ", ".join(
        str(seed["calibration_alpha"]["chosen"]) for seed in per_seed))


if __name__ == "__main__":
    main()
