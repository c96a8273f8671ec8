"""One process against two gloo ranks (torchrun) on this machine: the same short training, four ways.

    python benchmarks/distributed.py [--episodes 80] [--n-way 20] [--val-episodes 100] [--out /tmp/hallucinate-ddp]

Trains pipelines/omniglot_protonet_gan.py (the main job) on N-way 1-shot 5-query episodes: one process for
``--episodes`` steps (one episode each), on one thread and then on two (OMP_NUM_THREADS); two ranks of one thread
each for as many steps (two episodes each: twice the episodes); and two ranks for half as many steps, which trains
on exactly the one process's episodes, two at a time (each step on the mean of the two episodes' losses). Every
process reads the store itself (num_workers=0). Prints, for each run, the training rate the loop measured (episodes
of every rank per second, validation excluded), the command's wall time (start-up and validation included) and the
final validation accuracy (N-way 1-shot, the same seeded episodes for every run).
"""
import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from run_header import print_run_header

REPO = Path(__file__).resolve().parents[1]


def loop_rate(history: list[dict], world: int) -> float:
    """Episodes per second over the whole run, from the loop's own per-interval rates."""
    episodes = seconds = 0.0
    previous = 0
    for row in history:
        if "episodes_per_s" in row:
            interval = (row["episode"] - previous) * world
            episodes, seconds = episodes + interval, seconds + interval / row["episodes_per_s"]
            previous = row["episode"]
    return episodes / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=80, help="steps of the one-process run (even)")
    parser.add_argument("--n-way", type=int, default=20)
    parser.add_argument("--val-episodes", type=int, default=100)
    parser.add_argument("--out", default="/tmp/hallucinate-ddp")
    args = parser.parse_args()
    if args.episodes % 2:
        parser.error("--episodes must be even: two ranks also take them two at a time")

    print_run_header()
    settings = [f"n_way={args.n_way}", "k_shot=1", "q_query=5", f"val_n_way={args.n_way}", "val_k_shot=1",
                f"val_episodes={args.val_episodes}", "val_every=100000", "log_every=25", "checkpoint_every=100000",
                "num_workers=0"]
    results = []
    runs = ((1, 1, args.episodes), (1, 2, args.episodes), (2, 1, args.episodes), (2, 1, args.episodes // 2))
    for world, threads, steps in runs:
        out = Path(args.out) / f"{world}proc-{threads}threads-{steps}steps"
        launcher = [sys.executable] if world == 1 else [
            sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={world}"]
        command = [*launcher, "-m", "hallucinate.cli", "run", "pipelines/omniglot_protonet_gan.py", "--out", str(out),
                   "--no-progress", *[x for item in settings + [f"episodes={steps}"] for x in ("--set", item)]]
        shown = [Path(part).name if part == sys.executable else part for part in command]
        print(f"\n$ OMP_NUM_THREADS={threads} {' '.join(shown)}", flush=True)
        start = time.perf_counter()
        subprocess.run(command, cwd=REPO, check=True, env={**os.environ, "OMP_NUM_THREADS": str(threads)})
        wall = time.perf_counter() - start
        summary = json.loads((out / "metrics.json").read_text())
        validation = [row for row in summary["history"] if "val_accuracy" in row][-1]
        results.append((world, threads, steps, loop_rate(summary["history"], world), wall, validation))

    print(f"\n| processes | threads each | steps | episodes | training episodes/s (loop) | wall time (s) | "
          f"validation accuracy % ({args.n_way}-way 1-shot, {args.val_episodes} episodes, 95% interval) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for world, threads, steps, rate, wall, validation in results:
        print(f"| {world} | {threads} | {steps} | {steps * world} | {rate:.2f} | {wall:.1f} | "
              f"{validation['val_accuracy']:.2f} ± {validation['val_ci95']:.2f} |")
    print(f"load average at end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
