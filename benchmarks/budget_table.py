"""Where a learner misses its published cells: how long it was trained, what its validation curve was still doing,
and how long the authors' own training recipe would take on this machine.

    python benchmarks/budget_table.py --dataset omniglot --results PART.json ...   # README names the parts
    python benchmarks/budget_table.py --dataset cifar_fs --results docs/cifar_fs_learners*.json [--speeds JSON]

Reads only files: each learner's shipped checkpoint (``checkpoints/<prefix>_<learner>_conv4.pt``, trained without a
hallucinator), whose metrics carry its validation curve and the speed its run logged, the learners table's JSON
outputs for its test accuracy, and `benchmarks/learners_speed.py --json-out`'s output (``--speeds``) for the speed
of each learner's training on idle cores (Omniglot 20-way 1-shot 5-query episodes). Every pipeline here trains on
one task per episode, so tasks = episodes. The reference recipes are the authors' released training lengths, with
the file they come from; where none was found the row says so. The time is the recipe's task count at the idle
rate: an estimate, since the recipe's episodes are not that shape (and CIFAR-FS images are larger than Omniglot's).
"Gain over the last doubling" is the validation accuracy at the last validation minus the one at (or before) half
that many episodes: near zero means more of the same training is unlikely to close the gap.
"""
import argparse
import json
import statistics
from pathlib import Path

from learners_table import PREFIX, PUBLISHED, SETTINGS, merged_cells
from run_header import print_run_header

from hallucinate.training import load_checkpoint

REFERENCE_RECIPES = {  # (dataset, learner): (tasks, what they are, where the number comes from)
    ("omniglot", "relation"): (1_000_000, "1,000,000 episodes of 5-way 1-shot 19-query",
                               "floodsung/LearningToCompare_FSL omniglot/omniglot_train_one_shot.py, --episode default"),
    ("cifar_fs", "relation"): (500_000, "500,000 episodes of 5-way 1-shot 15-query (their miniImageNet recipe)",
                               "floodsung/LearningToCompare_FSL miniimagenet/miniimagenet_train_one_shot.py, "
                               "--episode default"),
    ("omniglot", "maml"): (40_000 * 32, "40,000 outer steps of 32 tasks (5-way 1-shot)",
                           "cbfinn/maml main.py, usage line for 5-way 1-shot Omniglot"),
    ("cifar_fs", "maml"): (60_000 * 4, "60,000 outer steps of 4 tasks (their miniImageNet recipe)",
                           "cbfinn/maml main.py, usage line for 5-way 1-shot miniImageNet"),
}


def validation_curve(metrics: list[dict]) -> list[tuple[int, float]]:
    return [(row["episode"], row["val_accuracy"]) for row in metrics if "val_accuracy" in row and "episode" in row]


def gain_over_last_doubling(curve: list[tuple[int, float]]) -> tuple[int, float] | None:
    """(the episode compared against, last accuracy minus the accuracy there), or None for a single point."""
    last_episode, last_accuracy = curve[-1]
    earlier = [(episode, accuracy) for episode, accuracy in curve if episode <= last_episode / 2]
    if not earlier:
        return None
    episode, accuracy = earlier[-1]
    return episode, last_accuracy - accuracy


def hours(seconds: float) -> str:
    return f"{seconds / 3600:,.0f} h" if seconds >= 36000 else f"{seconds / 3600:.1f} h"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=list(SETTINGS), required=True)
    parser.add_argument("--results", nargs="+", required=True, metavar="JSON",
                        help="learners_table.py outputs holding the test accuracy of each learner")
    parser.add_argument("--checkpoints", default="checkpoints")
    parser.add_argument("--speeds", default="docs/learners_speed.json",
                        help="benchmarks/learners_speed.py --json-out output (default: %(default)s)")
    parser.add_argument("--within", type=float, default=1.0, help="a cell this close to the published one is met")
    args = parser.parse_args()
    print_run_header("(reads files only)")
    try:
        cells, _, _ = merged_cells(args.dataset, args.results)
    except ValueError as error:
        parser.error(f"--results: {error}")
    idle_rates = {learner: result.get("train_rate")
                  for learner, result in json.loads(Path(args.speeds).read_text())["learners"].items()
                  if result.get("train_unit") == "episodes_per_s"}

    print(f"\n| learner | published cells missed by more than {args.within:g} | trained (tasks) | validation "
          "(last) | gain over the last doubling | speed: logged while training / idle | reference recipe | "
          "it would take here |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for learner, published in PUBLISHED[args.dataset].items():
        missed = []
        for (n_way, k_shot), target in zip(SETTINGS[args.dataset], published):
            row = cells.get((learner, n_way, k_shot))
            measured = row.get("plain") if row else None
            if not isinstance(measured, dict):  # absent, or the reason the checkpoint cannot run the setting
                missed.append(f"{n_way}w{k_shot}s: {measured or 'not evaluated'}")
            elif target - measured["accuracy"] > args.within:
                missed.append(f"{n_way}w{k_shot}s {measured['accuracy']:.1f} vs {target} "
                              f"({measured['accuracy'] - target:+.1f})")
        if not missed:
            continue
        path = Path(args.checkpoints) / f"{PREFIX[args.dataset]}_{learner}_conv4.pt"
        if not path.is_file():
            print(f"| {learner} | {'; '.join(missed)} | checkpoint {path} missing | | | | | |")
            continue
        state = load_checkpoint(path)
        config = state["config"]
        curve = validation_curve(state["metrics"])
        doubling = gain_over_last_doubling(curve) if curve else None
        logged = statistics.median(row["episodes_per_s"] for row in state["metrics"] if "episodes_per_s" in row)
        idle = idle_rates.get(learner)
        recipe = REFERENCE_RECIPES.get((args.dataset, learner))
        trained = (f"{state['trained_episodes']:,} ({config['n_way']}-way {config['k_shot']}-shot "
                   f"{config['q_query']}-query)")
        validation = (f"{curve[-1][1]:.1f}% ({config['val_n_way']}-way {config['val_k_shot']}-shot)"
                      if curve else "none logged")
        trend = f"{doubling[1]:+.1f} (from episode {doubling[0]:,})" if doubling else "one validation only"
        reference = f"{recipe[1]} [{recipe[2]}]" if recipe else "no released recipe found"
        if recipe and idle:
            needed = f"{hours(recipe[0] / idle)} ({recipe[0] / state['trained_episodes']:,.0f}× this run)"
        else:
            needed = "—" if not recipe else f"no idle speed for {learner} in {args.speeds}"
        speed = f"{logged:.2f} / {f'{idle:.2f}' if idle else '—'} episodes/s"
        print(f"| {learner} | {'; '.join(missed)} | {trained} | {validation} | {trend} | {speed} | {reference} | "
              f"{needed} |")


if __name__ == "__main__":
    main()
