"""The leave-one-domain-out table of cross-domain few-shot learning: for each left-out domain, each arm is trained on
the other domains (or on Omniglot alone: ``single``) and tested on the left-out domain's test classes, every arm on
the same seeded episodes, so the gains are paired.

    python benchmarks/domains_table.py --left-out hershey cifar_fs_gray [--arms single aggregate fwt_fixed lft mldg]
        [--settings 5x1 5x5] [--episodes 1000] [--runs runs/domains] [--set KEY=VALUE ...] [--out docs/domains.json]

Arms: ``single`` (the aggregate trainer on Omniglot alone), ``aggregate`` (plain multi-domain training), ``fwt_fixed``,
``lft`` and ``mldg`` (`hallucinate.domains.config.TRAINERS`), each with its pipeline's settings
(pipelines/multidomain_protonet*.py) and ``--set`` on top. Model selection is on the val split of noto_glyphs
(printed glyphs of Omniglot's Vinyals val scripts, which no training split holds), or of Omniglot when noto_glyphs
is the left-out domain; the left-out domain is never seen before its test. A run folder is named by what it trains
(the trainer, the domains, the validation domain), so arms that train the same thing share it, and a finished run is
evaluated, not retrained; an unfinished one resumes. ``--left-out all`` leaves out each of the five in turn. Prints
one JSON line per cell (with the median training episodes per second of the arm's run), then a Markdown table with
each arm's paired gain over ``aggregate``.
"""
import argparse
import dataclasses
import json
import statistics
import sys
import time
from pathlib import Path

from hallucinate import load
from hallucinate.data import open_store
from hallucinate.device import resolve_device
from hallucinate.domains.training import run_multidomain
from hallucinate.evaluation import evaluate, paired_gain
from hallucinate.pipeline import load_pipeline
from hallucinate.training import override
from hallucinate.training.run_files import write_json_atomic
from run_header import print_run_header

DOMAINS = ("omniglot", "noto_glyphs", "handwriting_fonts", "hershey", "cifar_fs_gray")
PIPELINES = {"single": "multidomain_protonet", "aggregate": "multidomain_protonet", "fwt_fixed":
             "multidomain_protonet_fwt", "lft": "multidomain_protonet_lft", "mldg": "multidomain_protonet_mldg"}
BASELINE = "aggregate"


def arm_config(arm: str, left_out: str, settings: list[str]):
    """The config ``arm`` trains with when ``left_out`` is left out."""
    config = override(load_pipeline(Path("pipelines") / f"{PIPELINES[arm]}.py").CONFIG, settings)
    domains = ("omniglot",) if arm == "single" else tuple(d for d in DOMAINS if d != left_out)
    val_domain = "omniglot" if left_out == "noto_glyphs" else "noto_glyphs"
    return dataclasses.replace(config, domains=",".join(domains), val_domain=val_domain, test_domain=left_out)


def run_folder(runs: Path, config) -> Path:
    """Named by what the run trains, not by the table cell: the left-out domain only through the training domains."""
    short = "+".join(name.split("_")[0] for name in config.training_domains)
    return runs / f"{config.trainer}-{short}-val_{config.val_domain.split('_')[0]}"


def trained_checkpoint(config, folder: Path, device) -> Path:
    summary = folder / "metrics.json"
    if summary.is_file() and json.loads(summary.read_text())["episodes"] == config.episodes:
        return folder / "checkpoint.pt"
    run_multidomain(config, out=folder, resume=(folder / "checkpoint.pt").is_file(), device=device)
    return folder / "checkpoint.pt"


def training_speed(folder: Path) -> float:
    """The median episodes per second of a run's logged rows (each trainer logs its own)."""
    rates = [row["episodes_per_s"] for row in map(json.loads, (folder / "metrics.jsonl").read_text().splitlines())
             if "episodes_per_s" in row]
    return round(statistics.median(rates), 2)


def markdown(cells: list[dict]) -> str:
    lines = ["| left out | arm | 5-way 1-shot | 5-way 5-shot | 1-shot gain over aggregate | 5-shot gain over aggregate |",
             "| --- | --- | --- | --- | --- | --- |"]
    rows: dict[tuple[str, str], dict[int, dict]] = {}
    for cell in cells:
        rows.setdefault((cell["left_out"], cell["arm"]), {})[cell["k_shot"]] = cell
    for (left_out, arm), by_shot in rows.items():
        accuracy = [f"{by_shot[k]['accuracy']:.2f} ± {by_shot[k]['ci95']:.2f}" if k in by_shot else "not measured"
                    for k in (1, 5)]
        gains = [f"{by_shot[k]['gain']:+.2f} ± {by_shot[k]['gain_ci95']:.2f}" if "gain" in by_shot.get(k, {}) else "—"
                 for k in (1, 5)]
        lines.append(f"| {left_out} | {arm} | {' | '.join(accuracy)} | {' | '.join(gains)} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--left-out", nargs="+", required=True, choices=DOMAINS + ("all",))
    parser.add_argument("--arms", nargs="+", default=list(PIPELINES), choices=list(PIPELINES))
    parser.add_argument("--settings", nargs="+", default=["5x1", "5x5"], help="N x K test episodes")
    parser.add_argument("--episodes", type=int, default=1000)
    parser.add_argument("--runs", type=Path, default=Path("runs/domains"))
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--device")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    start = print_run_header()
    device = resolve_device(args.device)
    left_outs = [name for name in DOMAINS if name in args.left_out or "all" in args.left_out]
    cells = []
    for left_out in left_outs:
        test_split = open_store(left_out).split("test")
        results = {}
        for arm in sorted(args.arms, key=lambda arm: arm != BASELINE):  # the baseline first: the gains need it
            config = arm_config(arm, left_out, args.set)
            trained = time.perf_counter()
            folder = run_folder(args.runs, config)
            checkpoint = trained_checkpoint(config, folder, device)
            trained = time.perf_counter() - trained
            model = load(checkpoint, device=args.device)
            for setting in args.settings:
                n_way, k_shot = (int(x) for x in setting.split("x"))
                result = evaluate(model, test_split, n_way=n_way, k_shot=k_shot, episodes=args.episodes, seed=0,
                                  hallucinate=False, device=device)
                results[arm, setting] = result
                cell = {"left_out": left_out, "arm": arm, "trainer": config.trainer, "domains": config.domains,
                        "val_domain": config.val_domain, "checkpoint": str(checkpoint),
                        "training_s_this_run": round(trained, 1),
                        "training_episodes_per_s_median": training_speed(folder)} | result.as_dict()
                if arm != BASELINE and (BASELINE, setting) in results:
                    cell["gain"], cell["gain_ci95"] = paired_gain(result, results[BASELINE, setting])
                cells.append(cell)
                print(json.dumps(cell), flush=True)
    print(markdown(cells))
    print(f"total time: {time.perf_counter() - start:.0f} s")
    if args.out:
        write_json_atomic(args.out, {"command": " ".join(["python", *sys.argv]), "cells": cells})


if __name__ == "__main__":
    main()
