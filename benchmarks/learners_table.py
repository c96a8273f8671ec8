"""Every learner on one data set, with and without the GAN hallucinator, on the same seeded test episodes.

    python benchmarks/learners_table.py --dataset omniglot [--episodes 1000] [--learners protonet matching ...]
    python benchmarks/learners_table.py --dataset cifar_fs
    python benchmarks/learners_table.py --learners baseline_pp --settings 5x1 20x1   # a part of the table
    python benchmarks/learners_table.py --learners siamese --tag 20k   # the checkpoints trained ten times longer
    python benchmarks/learners_table.py --learners maml anil --tag 20way --settings 20x1 20x5   # 20-way heads
    python benchmarks/learners_table.py --dataset omniglot --merge PART.json ...  # parts, one table (README names them)
    python benchmarks/learners_table.py --learners baseline --no-noise   # the noise GAN's arms are in earlier files

For each learner it loads ``checkpoints/<omniglot or cifarfs>_<learner>_conv4.pt`` (trained without a hallucinator),
``..._<learner>_gan_conv4.pt`` (the two-stage calibrated GAN on that frozen checkpoint, benchmarks/learner_gans.py)
and ``..._<learner>_gan_noise_conv4.pt`` (the earlier noise GAN, trained jointly with the learner) and evaluates, on
the same episodes (same seed, 15 queries per class): the plain checkpoint, and each GAN checkpoint with hallucination
off and on. Gains are paired episode by episode: "on - off" (same weights) and "on - plain" (what training with the
hallucinator bought). A missing checkpoint is reported as missing, never left out silently; a setting a checkpoint
cannot run (MAML's head is fixed to the way count it was trained with) is reported with the reason.
Writes docs/<dataset>_learners.json and prints the Markdown table. ``--no-noise`` leaves the noise GAN's arms out
(they cost half of a cell's evaluations, and the files written before the two-stage GAN hold them for the same
episodes). With ``--merge`` it evaluates nothing: it prints one table from the rows of earlier runs' JSON files
(which must share episodes and seed), a cell's columns from every file that measured them; in files written before
the two-stage GAN existed, the GAN columns are the noise GAN's and are printed as such.
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

SETTINGS = {"omniglot": [(5, 1), (5, 5), (20, 1), (20, 5)], "cifar_fs": [(5, 1), (5, 5)]}
PREFIX = {"omniglot": "omniglot", "cifar_fs": "cifarfs"}  # checkpoint file names
LEARNERS = ["protonet", "matching", "relation", "siamese", "maml", "anil", "baseline", "baseline_pp"]
PUBLISHED = {  # ../shared/ANCHORS.md
    "omniglot": {"protonet": (98.8, 99.7, 96.0, 98.9), "matching": (98.1, 98.9, 93.8, 98.5),
                 "maml": (98.7, 99.9, 95.8, 98.9), "relation": (99.6, 99.8, 97.6, 99.1),
                 "siamese": (97.3, 98.4, 88.1, 97.0)},
    "cifar_fs": {"protonet": (55.5, 72.0), "maml": (58.9, 71.5), "relation": (55.0, 69.3)},
}


def _evaluate(model, split, bank, n_way, k_shot, episodes, seed, hallucinate_on=None):
    head = getattr(model.learner, "n_way", None)
    if head is not None and head != n_way:
        return None, f"trained {head}-way"
    return evaluate(model, split, n_way=n_way, k_shot=k_shot, q_query=15, episodes=episodes, seed=seed,
                    hallucinate=hallucinate_on, device=torch.device("cpu"), bank=bank), None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=list(SETTINGS), default="omniglot")
    parser.add_argument("--learners", nargs="+", default=LEARNERS)
    parser.add_argument("--checkpoints", default="checkpoints")
    parser.add_argument("--tag", help="evaluate <prefix>_<learner>[_gan]_<TAG>_conv4.pt instead, e.g. 20k for the "
                                      "runs trained ten times longer, 20way for MAML's and ANIL's 20-way heads")
    parser.add_argument("--settings", nargs="+", metavar="NxK",
                        help="only these N-way K-shot cells, e.g. 5x1 20x1 (default: all of the data set's)")
    parser.add_argument("--no-noise", action="store_true", help="leave out the noise GAN's checkpoints")
    parser.add_argument("--episodes", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-root")
    parser.add_argument("--cache-dir")
    parser.add_argument("--out")
    parser.add_argument("--merge", nargs="+", metavar="JSON", help="print one table from these runs' outputs")
    args = parser.parse_args()
    if args.merge:
        merge(parser, args)
        return
    settings = SETTINGS[args.dataset]
    if args.settings:
        chosen = [tuple(int(x) for x in text.split("x")) for text in args.settings]
        if not set(chosen) <= set(settings):
            parser.error(f"--settings must be among {['%dx%d' % cell for cell in settings]}, got {args.settings}")
        settings = [cell for cell in settings if cell in chosen]
    start = print_run_header()
    test = open_store(args.dataset, root=args.data_root, cache=args.cache_dir).split("test")
    cache = cache_dir(args.cache_dir)

    rows = []
    tag = f"_{args.tag}" if args.tag else ""
    for learner in args.learners:
        paths = {kind: Path(args.checkpoints) / f"{PREFIX[args.dataset]}_{learner}{suffix}{tag}_conv4.pt"
                 for kind, suffix in (("plain", ""), ("gan", "_gan"), ("gan_noise", "_gan_noise"))
                 if not (kind == "gan_noise" and args.no_noise)}
        models = {kind: hallucinate.load(path, data_root=args.data_root, cache_dir=args.cache_dir)
                  for kind, path in paths.items() if path.is_file()}
        banks = {kind: feature_bank(model, test, device=torch.device("cpu"), precision="fp32", cache=cache)
                 for kind, model in models.items()}
        for n_way, k_shot in settings:
            row = {"learner": learner, "n_way": n_way, "k_shot": k_shot,
                   "missing": [str(path) for kind, path in paths.items() if kind not in models]}
            results = {}
            for name, kind, on in (("plain", "plain", None), ("off", "gan", False), ("on", "gan", True),
                                   ("noise_off", "gan_noise", False), ("noise_on", "gan_noise", True)):
                if kind in models:
                    result, reason = _evaluate(models[kind], test, banks[kind], n_way, k_shot, args.episodes,
                                               args.seed, on)
                    results[name] = result
                    row[name] = result.as_dict() if result else reason
            for prefix in ("", "noise_"):
                on, off, plain = results.get(prefix + "on"), results.get(prefix + "off"), results.get("plain")
                if on and off:
                    row[f"gain_{prefix}on_minus_off"] = paired_gain(on, off)
                if on and plain:
                    row[f"gain_{prefix}on_minus_plain"] = paired_gain(on, plain)
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items()}), flush=True)

    print_table(args.dataset, args.episodes, args.seed, rows)
    out = Path(args.out or f"docs/{args.dataset}_learners.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out, {"command": " ".join(sys.argv), "episodes": args.episodes, "seed": args.seed,
                            "two_stage_gan": True, "rows": rows})
    print(f"\nwrote {out}; wall time {time.perf_counter() - start:.1f} s")


def print_table(dataset: str, episodes: int, seed: int, rows: list[dict]) -> None:
    def cell(value):
        if value is None:
            return "not measured"
        return value if isinstance(value, str) else f"{value['accuracy']:.2f} ± {value['ci95']:.2f}"

    def gain(value):
        return "—" if value is None else f"{value[0]:+.2f} ± {value[1]:.2f}"

    print(f"\n{dataset}: {episodes} test episodes per cell, 15 queries per class, seed {seed}\n")
    print("| learner | setting | published | no hallucinator | two-stage GAN, off | two-stage GAN, on | on - off | "
          "on - no hallucinator | noise GAN, on | noise GAN: on - off | noise GAN: on - no hallucinator |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for row in rows:
        index = SETTINGS[dataset].index((row["n_way"], row["k_shot"]))
        published = PUBLISHED[dataset].get(row["learner"])
        print(f"| {row['learner']} | {row['n_way']}-way {row['k_shot']}-shot | "
              f"{published[index] if published else '—'} | {cell(row.get('plain'))} | {cell(row.get('off'))} | "
              f"{cell(row.get('on'))} | {gain(row.get('gain_on_minus_off'))} | "
              f"{gain(row.get('gain_on_minus_plain'))} | {cell(row.get('noise_on'))} | "
              f"{gain(row.get('gain_noise_on_minus_off'))} | {gain(row.get('gain_noise_on_minus_plain'))} |")
    missing = sorted({path for row in rows for path in row.get("missing", [])})
    if missing:
        print(f"\nnot measured because these checkpoints are not there: {', '.join(missing)}")


def as_noise_gan(row: dict) -> dict:
    """A row of a file written before the two-stage GAN: its GAN checkpoint was what is now ``..._gan_noise``."""
    renamed = {"off": "noise_off", "on": "noise_on", "gain_on_minus_off": "gain_noise_on_minus_off",
               "gain_on_minus_plain": "gain_noise_on_minus_plain"}
    return {renamed.get(key, key): value for key, value in row.items()}


def merged_cells(dataset: str, paths: list[str]) -> tuple[dict, int, int]:
    """The rows of several runs' JSON outputs by (learner, n_way, k_shot), with the runs' episodes and seed. A cell
    gets its columns from every file that measured them; a column measured by two files is taken from the later
    one, and a message says so. Runs on other episodes or seeds, or with another data set's settings, are refused
    with ValueError."""
    runs = {path: json.loads(Path(path).read_text()) for path in paths}
    if len({(run["episodes"], run["seed"]) for run in runs.values()}) > 1:
        raise ValueError("the runs used different episode counts or seeds: "
                         + ", ".join(f"{path}: {run['episodes']} episodes, seed {run['seed']}"
                                     for path, run in runs.items()))
    cells = {}
    for path, run in runs.items():
        for row in run["rows"] if run.get("two_stage_gan") else map(as_noise_gan, run["rows"]):
            key = (row["learner"], row["n_way"], row["k_shot"])
            if (row["n_way"], row["k_shot"]) not in SETTINGS[dataset]:
                raise ValueError(f"{path} has a {key[1]}-way {key[2]}-shot row, not a {dataset} setting")
            measured = {name for name, value in row.items() if name not in ("learner", "n_way", "k_shot", "missing")
                        and value is not None}
            if key in cells:
                replaced = sorted(measured & cells[key][1].keys())
                if replaced:
                    print(f"{key[0]} {key[1]}-way {key[2]}-shot: {', '.join(replaced)} from {path}, replacing "
                          f"{cells[key][0]}'s")
                row = cells[key][1] | {name: row[name] for name in measured}
            cells[key] = (path, row)
    (episodes, seed), = {(run["episodes"], run["seed"]) for run in runs.values()}
    print("commands: " + "; ".join(run["command"] for run in runs.values()))
    return {key: row for key, (path, row) in cells.items()}, episodes, seed


def merge(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """One table from several runs' JSON outputs, in `LEARNERS` order, then `SETTINGS` order."""
    try:
        cells, episodes, seed = merged_cells(args.dataset, args.merge)
    except ValueError as error:
        parser.error(f"--merge: {error}")
    order = {learner: i for i, learner in enumerate(LEARNERS)}
    keys = sorted(cells, key=lambda key: (order.get(key[0], len(order)), SETTINGS[args.dataset].index(key[1:])))
    print_table(args.dataset, episodes, seed, [cells[key] for key in keys])


if __name__ == "__main__":
    main()
