"""The leave-one-domain-out table of cross-domain few-shot learning: for each left-out domain, each arm is trained on
the other domains (or on Omniglot alone: ``single``) and tested on the left-out domain's test classes, every arm on
the same seeded episodes, so the gains are paired.

    python benchmarks/domains_table.py --left-out hershey cifar_fs_gray [--arms single aggregate fwt_fixed lft mldg]
        [--settings 5x1 5x5] [--episodes 1000] [--runs runs/domains] [--set KEY=VALUE ...] [--out docs/domains.json]

Arms: ``single`` (the aggregate trainer on Omniglot alone; no cell when Omniglot is left out), ``aggregate`` (plain
multi-domain training), ``fwt_fixed``, ``lft`` and ``mldg`` (`hallucinate.domains.config.TRAINERS`), each with its
pipeline's settings (pipelines/multidomain_protonet*.py) and ``--set`` on top. Model selection is on the val split of
noto_glyphs (printed glyphs of Omniglot's Vinyals val scripts, which no training split holds), or of Omniglot when
noto_glyphs is the left-out domain; the left-out domain is never seen before its test. A run folder is named by what
it trains (the trainer, the domains, the validation domain, a `domain_sampling` other than uniform), so arms that
train the same thing share it, and a finished run is evaluated, not retrained; an unfinished one resumes.
``--left-out all`` leaves out each of the five in turn. Prints one JSON line per cell (with the median training
episodes per second of the arm's run), then a Markdown table with each arm's paired gain over ``aggregate``.

``--in-domain`` measures instead what training across domains costs on Omniglot itself: each arm trained on all five
domains (``single``: on Omniglot alone), on Omniglot's Vinyals test classes, with the gains paired over ``single``:

    python benchmarks/domains_table.py --in-domain --arms single lft --settings 5x1 5x5 20x1 20x5

``--merge A.json B.json ...`` prints the table of cells that earlier runs wrote (``--out``), training nothing.
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


def arm_config(arm: str, left_out: str | None, settings: list[str]):
    """The config ``arm`` trains with when ``left_out`` is left out (None: every domain is trained on)."""
    config = override(load_pipeline(Path("pipelines") / f"{PIPELINES[arm]}.py").CONFIG, settings)
    domains = ("omniglot",) if arm == "single" else tuple(d for d in DOMAINS if d != left_out)
    val_domain = "omniglot" if left_out == "noto_glyphs" else "noto_glyphs"
    return dataclasses.replace(config, domains=",".join(domains), val_domain=val_domain, test_domain=left_out or "")


def run_folder(runs: Path, config) -> Path:
    """Named by what the run trains, not by the table cell: the left-out domain only through the training domains."""
    short = "+".join(name.split("_")[0] for name in config.training_domains)
    # with one domain, every sampling draws it alike
    one = len(config.training_domains) == 1
    sampling = "" if config.domain_sampling == "uniform" or one else f"-by_{config.domain_sampling}"
    return runs / f"{config.trainer}-{short}-val_{config.val_domain.split('_')[0]}{sampling}"


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


def markdown(cells: list[dict], settings: list[str], baseline: str) -> str:
    """One row per (left-out domain, arm): accuracy ± interval per setting, then the paired gains over ``baseline``."""
    lines = ["| left out | arm | " + " | ".join(settings) + " | "
             + " | ".join(f"{setting} gain over {baseline}" for setting in settings) + " |",
             "| --- | --- |" + " --- |" * (2 * len(settings))]
    rows: dict[tuple[str, str], dict[str, dict]] = {}
    for cell in cells:
        rows.setdefault((cell["left_out"], cell["arm"]), {})[f"{cell['n_way']}x{cell['k_shot']}"] = cell
    for (left_out, arm), by_setting in rows.items():
        accuracy = [f"{by_setting[s]['accuracy']:.2f} ± {by_setting[s]['ci95']:.2f}" if s in by_setting
                    else "not measured" for s in settings]
        gains = [f"{by_setting[s]['gain']:+.2f} ± {by_setting[s]['gain_ci95']:.2f}" if "gain" in by_setting.get(s, {})
                 else "—" for s in settings]
        lines.append(f"| {left_out} | {arm} | {' | '.join(accuracy)} | {' | '.join(gains)} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    chosen = parser.add_mutually_exclusive_group(required=True)
    chosen.add_argument("--left-out", nargs="+", choices=DOMAINS + ("all",))
    chosen.add_argument("--in-domain", action="store_true",
                        help="every arm trained on all five domains, tested on Omniglot, gains over single")
    chosen.add_argument("--merge", nargs="+", type=Path, metavar="JSON", help="print the table of earlier --out files")
    parser.add_argument("--arms", nargs="+", default=list(PIPELINES), choices=list(PIPELINES))
    parser.add_argument("--settings", nargs="+", default=["5x1", "5x5"], help="N x K test episodes")
    parser.add_argument("--episodes", type=int, default=1000)
    parser.add_argument("--runs", type=Path, default=Path("runs/domains"))
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--device")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.merge:
        runs = [json.loads(path.read_text()) for path in args.merge]
        baselines = {run.get("baseline", BASELINE) for run in runs}  # files written before the key had aggregate's
        if len(baselines) > 1:
            parser.error(f"the files' gains are over different arms ({', '.join(sorted(baselines))}): merge them apart")
        print(markdown([cell for run in runs for cell in run["cells"]], args.settings, baselines.pop()))
        return
    start = print_run_header()
    device = resolve_device(args.device)
    if args.in_domain:
        left_outs, baseline = [None], "single"
    else:
        left_outs, baseline = [name for name in DOMAINS if name in args.left_out or "all" in args.left_out], BASELINE
    cells = []
    for left_out in left_outs:
        test_split = open_store(left_out or "omniglot").split("test")
        results = {}
        # the baseline first: the gains need it; ``single`` trains on Omniglot, so it has no cell with Omniglot left out
        arms = [arm for arm in sorted(args.arms, key=lambda arm: arm != baseline)
                if not (arm == "single" and left_out == "omniglot")]
        for arm in arms:
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
                cell = {"left_out": left_out or "none (tested on omniglot)", "arm": arm, "trainer": config.trainer,
                        "domains": config.domains, "val_domain": config.val_domain, "checkpoint": str(checkpoint),
                        "training_s_this_run": round(trained, 1),
                        "training_episodes_per_s_median": training_speed(folder)} | result.as_dict()
                if arm != baseline and (baseline, setting) in results:
                    cell["gain"], cell["gain_ci95"] = paired_gain(result, results[baseline, setting])
                cells.append(cell)
                print(json.dumps(cell), flush=True)
    print(markdown(cells, args.settings, baseline))
    print(f"total time: {time.perf_counter() - start:.0f} s")
    if args.out:
        write_json_atomic(args.out, {"command": " ".join(["python", *sys.argv]), "baseline": baseline, "cells": cells})


if __name__ == "__main__":
    main()
