"""Every hallucinator against none, per learner, on the same seeded test episodes; and the synthetic features measured.

    python benchmarks/hallucinators_table.py --dataset cifar_fs [--learners protonet baseline_pp] [--episodes 1000]
    python benchmarks/hallucinators_table.py --dataset omniglot --settings 5x1

For each learner it loads ``checkpoints/<omniglot or cifarfs>_<learner>_conv4.pt`` (no hallucinator: the "none"
column) and ``..._<learner>_<h>_conv4.pt`` for each trained hallucinator h in TRAINED; distribution
calibration is training-free and is fitted here, on the none checkpoint's features of the train split, with its
covariance offset alpha chosen on 200 validation episodes (5-way 1-shot) among ALPHAS: Yang et al.'s 0.21 was chosen
for their WRN features and does not carry over to these. On the same
episodes it evaluates none, each trained model with hallucination on and off, and none + calibration, with paired
gains against none (and on - off for the trained ones). Where ``..._<learner>_1shot_conv4.pt`` exists (the
hallucinators' own training recipe without a hallucinator, when it differs from the none pipeline's), it is evaluated
too and each trained hallucinator's gain against it is reported as well. For ProtoNet it also measures each
hallucinator's synthetic features (`hallucinate.evaluation.feature_quality`), draws the accuracy-versus-M curve at
5-way 1-shot and the feature projection. Missing checkpoints are reported as missing. Writes
docs/<dataset>_hallucinators.json (or --out) and, beside it, <its stem>_accuracy_vs_m.png and <its
stem>_projection.png, and prints the Markdown tables.
"""
import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

import hallucinate
from hallucinate.data import open_store
from hallucinate.data.paths import cache_dir
from hallucinate.evaluation import CopySeed, evaluate, feature_bank, feature_quality, paired_gain
from hallucinate.hallucinators.calibration import use_calibration
from hallucinate.plots import plot_accuracy_vs_m, plot_projection
from hallucinate.report import M_VALUES, projection_panel
from hallucinate.training.run_files import write_json_atomic
from run_header import print_run_header

PREFIX = {"omniglot": "omniglot", "cifar_fs": "cifarfs"}
# Two-stage, on the none checkpoint's frozen embedding (benchmarks/learner_gans.py): mlp, gan (calibrated), analogy;
# the earlier designs, M = 5 unweighted: gan_noise, mlp_unweighted, analogy_unweighted.
TRAINED = ["mlp", "mlp_unweighted", "gan", "gan_noise", "analogy", "analogy_unweighted"]
ALPHAS = (0.0, 0.01, 0.05, 0.21, 1.0)
CPU = torch.device("cpu")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=list(PREFIX), default="cifar_fs")
    parser.add_argument("--learners", nargs="+", default=["protonet", "baseline_pp"])
    parser.add_argument("--settings", nargs="+", default=["5x1", "5x5"], metavar="NxK")
    parser.add_argument("--checkpoints", default="checkpoints")
    parser.add_argument("--episodes", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-root")
    parser.add_argument("--cache-dir")
    parser.add_argument("--out", help="default: docs/<dataset>_hallucinators.json")
    args = parser.parse_args()
    settings = [tuple(int(x) for x in text.split("x")) for text in args.settings]
    start = print_run_header()
    store = open_store(args.dataset, root=args.data_root, cache=args.cache_dir)
    test, train, val = store.split("test"), store.split("train"), store.split("val")
    cache = cache_dir(args.cache_dir)
    out = Path(args.out or f"docs/{args.dataset}_hallucinators.json")

    rows, quality, curves, panels, alphas = [], {}, {}, {}, {}
    for learner in args.learners:
        stem = f"{PREFIX[args.dataset]}_{learner}"
        paths = {h: Path(args.checkpoints) / f"{stem}{'' if h == 'none' else '_' + h}_conv4.pt"
                 for h in ["none", *TRAINED]}
        control = Path(args.checkpoints) / f"{stem}_1shot_conv4.pt"
        if control.is_file():
            paths["none_1shot_recipe"] = control
        missing = [str(path) for path in paths.values() if not path.is_file()]
        models = {h: hallucinate.load(path) for h, path in paths.items() if path.is_file()}
        if "none" in models:
            models["calibration"] = hallucinate.load(paths["none"])
            use_calibration(models["calibration"], train, device=CPU, n_synthetic=models["none"].n_synthetic,
                            cache=cache)
            alphas[learner] = choose_alpha(models["calibration"], val, cache, args.seed)
        banks = {h: feature_bank(model, test, device=CPU, precision="fp32", cache=cache) for h, model in models.items()}
        for n_way, k_shot in settings:
            run = lambda h, on: evaluate(models[h], test, n_way=n_way, k_shot=k_shot, episodes=args.episodes,
                                         seed=args.seed, hallucinate=on, device=CPU, bank=banks[h])
            row = {"learner": learner, "n_way": n_way, "k_shot": k_shot, "missing": missing}
            none = run("none", False) if "none" in models else None
            row["none"] = none.as_dict() if none else None
            same_recipe = run("none_1shot_recipe", False) if "none_1shot_recipe" in models else None
            if same_recipe:
                row["none_1shot_recipe"] = same_recipe.as_dict()
            for h in [*TRAINED, "calibration"]:
                if h not in models:
                    continue
                on = run(h, True)
                cell = {"on": on.as_dict()}
                if none:
                    cell["on_minus_none"] = paired_gain(on, none)
                if same_recipe and h != "calibration":  # calibration runs on the none model: another backbone
                    cell["on_minus_none_1shot_recipe"] = paired_gain(on, same_recipe)
                if h != "calibration":
                    off = run(h, False)
                    cell |= {"off": off.as_dict(), "on_minus_off": paired_gain(on, off)}
                row[h] = cell
            rows.append(row)
            print(json.dumps(row), flush=True)
        if learner != "protonet":
            continue
        labels = np.asarray(test.labels)
        for h, model in models.items():
            if h == "none_1shot_recipe":
                continue
            generator = CopySeed() if h == "none" else model.hallucinator.generator
            quality[h if h != "none" else "copy of the seed (none)"] = feature_quality(generator, banks[h], labels,
                                                                                        seed=args.seed).as_dict()
            if h != "none":
                curve, n_synthetic = [], model.n_synthetic
                for m in M_VALUES:
                    model.n_synthetic = m
                    result = evaluate(model, test, n_way=5, k_shot=1, episodes=args.episodes, seed=args.seed,
                                      hallucinate=m > 0, device=CPU, bank=banks[h])
                    curve.append((m, result.accuracy, result.ci95))
                model.n_synthetic = n_synthetic
                curves[h] = curve
                panels[h] = projection_panel(generator, banks[h], labels, classes=5, per_class=40, seed=args.seed)
        print(json.dumps({"feature_quality": quality, "accuracy_vs_m": curves}), flush=True)

    figures = []
    if curves:
        figures.append(str(plot_accuracy_vs_m(curves, out.with_name(f"{out.stem}_accuracy_vs_m.png"),
                                              f"ProtoNet, {args.dataset}, 5-way 1-shot, {args.episodes} episodes")))
        figures.append(str(plot_projection(panels, out.with_name(f"{out.stem}_projection.png"))))
    _print_tables(args, rows, quality)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out, {"command": " ".join(sys.argv), "episodes": args.episodes, "seed": args.seed,
                            "calibration_alpha": alphas, "rows": rows, "feature_quality": quality,
                            "accuracy_vs_m": curves, "figures": figures,
                            "wall_time_s": time.perf_counter() - start})
    print(f"\nwrote {out} and {figures}; wall time {time.perf_counter() - start:.1f} s")


def choose_alpha(model, val, cache, seed: int) -> dict:
    """Set the calibration's alpha to the best of ALPHAS on validation episodes; return every alpha's accuracy."""
    bank = feature_bank(model, val, device=CPU, precision="fp32", cache=cache)
    scores = {}
    for alpha in ALPHAS:
        model.hallucinator.generator.alpha = alpha
        scores[alpha] = evaluate(model, val, n_way=5, k_shot=1, episodes=200, seed=seed, hallucinate=True,
                                 device=CPU, bank=bank).accuracy
    model.hallucinator.generator.alpha = max(scores, key=scores.get)
    print(json.dumps({"calibration_alpha_on_validation": scores, "chosen": model.hallucinator.generator.alpha}),
          flush=True)
    return {"chosen": model.hallucinator.generator.alpha, "validation_accuracy": scores}


def _print_tables(args, rows, quality) -> None:
    cell = lambda r: "—" if r is None else f"{r['accuracy']:.2f} ± {r['ci95']:.2f}"
    gain = lambda g: "—" if g is None else f"{g[0]:+.2f} ± {g[1]:.2f}"
    print(f"\n{args.dataset}: {args.episodes} test episodes per cell, 15 queries per class, seed {args.seed}; "
          "each hallucinator cell: accuracy on (gain vs none, paired)\n")
    names = [*TRAINED, "calibration"]
    print("| learner | setting | none | " + " | ".join(names) + " |")
    print("| --- | --- | --- | " + " | ".join("---" for _ in names) + " |")
    for row in rows:
        cells = [f"{cell(row[h]['on'])} ({gain(row[h].get('on_minus_none'))})" if h in row else "not trained"
                 for h in names]
        print(f"| {row['learner']} | {row['n_way']}-way {row['k_shot']}-shot | {cell(row['none'])} | "
              + " | ".join(cells) + " |")
    if any("none_1shot_recipe" in row for row in rows):
        print("\nAgainst the hallucinators' own recipe without a hallucinator (gain vs it, paired):\n")
        print("| learner | setting | none, same recipe | " + " | ".join(names) + " |")
        print("| --- | --- | --- | " + " | ".join("---" for _ in names) + " |")
        for row in rows:
            if "none_1shot_recipe" in row:
                print(f"| {row['learner']} | {row['n_way']}-way {row['k_shot']}-shot | "
                      f"{cell(row['none_1shot_recipe'])} | "
                      + " | ".join(gain(row[h].get("on_minus_none_1shot_recipe")) if h in row else "—" for h in names)
                      + " |")
    print("\n| learner | setting | " + " | ".join(f"{h} on - off" for h in TRAINED) + " |")
    print("| --- | --- | " + " | ".join("---" for _ in TRAINED) + " |")
    for row in rows:
        print(f"| {row['learner']} | {row['n_way']}-way {row['k_shot']}-shot | "
              + " | ".join(gain(row[h]["on_minus_off"]) if h in row else "—" for h in TRAINED) + " |")
    if quality:
        print("\n| ProtoNet features | Fréchet distance (real floor) | diversity | collapsed classes | "
              "seed-class agreement (real) |")
        print("| --- | --- | --- | --- | --- |")
        for h, q in quality.items():
            print(f"| {h} | {q['frechet_distance']:.3f} ({q['real_frechet_distance']:.3f}) | {q['diversity']:.3f} | "
                  f"{q['collapsed_classes']:.0%} | {q['seed_class_agreement']:.1%} ({q['real_agreement']:.1%}) |")


if __name__ == "__main__":
    main()
