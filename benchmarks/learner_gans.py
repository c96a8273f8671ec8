"""Stage 2 of the two-stage GAN recipe for every learner: the calibrated GAN hallucinator trained on each learner's
frozen plain checkpoint, exported for benchmarks/learners_table.py.

    python benchmarks/learner_gans.py --dataset omniglot [--learners matching siamese ...]
    python benchmarks/learner_gans.py --dataset cifar_fs --learners protonet baseline_pp --hallucinator mlp
    python benchmarks/learner_gans.py --dataset cifar_fs --set hallucinator_episodes=5   # a smoke run

For each learner the run's config is its ``pipelines/<prefix>_<learner>_gan.py`` where that exists, and otherwise its
plain pipeline's with the hallucinator and stage-2 settings of ``pipelines/<prefix>_protonet_gan.py`` (chosen on
validation for ProtoNet, not chosen again per learner); ``--hallucinator mlp`` or ``analogy`` trains that one in the
GAN's place with the same settings. Stage 1 is the learner's plain checkpoint,
``checkpoints/<prefix>_<learner>_conv4.pt``, given as ``init_from``. The run goes to
``runs/learner_gans/<prefix>_<learner>_<hallucinator>`` (a finished or interrupted run is resumed) and its best weights
to ``checkpoints/<prefix>_<learner>_<hallucinator>_conv4.pt``. A checkpoint over the folder's
5 MiB limit is not exported, and the script says so."""
import argparse
import dataclasses
import time
from pathlib import Path

from hallucinate.cli import main as cli
from hallucinate.pipeline import load_pipeline, run_episodic
from hallucinate.training import override
from hallucinate.training.config import HALLUCINATOR_SETTINGS
from run_header import print_run_header

PREFIX = {"omniglot": "omniglot", "cifar_fs": "cifarfs"}
LEARNERS = {"omniglot": ["matching", "relation", "siamese", "anil", "baseline", "baseline_pp"],
            "cifar_fs": ["matching", "relation", "siamese", "anil", "baseline", "baseline_pp"]}
SIZE_LIMIT = 5 * 2 ** 20


def stage2_config(dataset: str, learner: str, hallucinator: str):
    prefix = PREFIX[dataset]
    own = Path(f"pipelines/{prefix}_{learner}_gan.py")
    if own.is_file():
        config = load_pipeline(own).CONFIG
    else:
        recipe = load_pipeline(f"pipelines/{prefix}_protonet_gan.py").CONFIG
        config = dataclasses.replace(load_pipeline(f"pipelines/{prefix}_{learner}.py").CONFIG,
                                     **{name: getattr(recipe, name) for name in HALLUCINATOR_SETTINGS})
    stage1 = f"checkpoints/{prefix}_{learner}_conv4.pt"
    return dataclasses.replace(config, hallucinator=hallucinator, init_from=stage1), own


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=list(PREFIX), default="omniglot")
    parser.add_argument("--learners", nargs="+")
    parser.add_argument("--hallucinator", choices=["gan", "mlp", "analogy"], default="gan")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="override settings (smoke runs)")
    parser.add_argument("--runs", default="runs/learner_gans")
    parser.add_argument("--checkpoints", default="checkpoints")
    parser.add_argument("--data-root")
    parser.add_argument("--cache-dir")
    args = parser.parse_args()
    start = print_run_header()
    for learner in args.learners or LEARNERS[args.dataset]:
        config, own = stage2_config(args.dataset, learner, args.hallucinator)
        config = override(config, args.set)
        name = f"{PREFIX[args.dataset]}_{learner}_{args.hallucinator}"
        out = Path(args.runs) / name
        print(f"{name}: {own if own.is_file() else 'plain pipeline + ProtoNet GAN settings'}, "
              f"{config.hallucinator_episodes} stage-2 episodes into {out}", flush=True)
        run_episodic(config, out=out, resume=(out / "checkpoint.pt").is_file(), data_root=args.data_root,
                     cache_dir=args.cache_dir, device="cpu", progress=False)
        target = Path(args.checkpoints) / f"{name}_conv4.pt"
        exported = out / "exported.pt"
        cli(["export", str(out / "checkpoint.pt"), str(exported)])
        if exported.stat().st_size > SIZE_LIMIT:
            print(f"{name}: {exported.stat().st_size / 2 ** 20:.1f} MiB, over the {SIZE_LIMIT // 2 ** 20} MiB limit: "
                  f"left at {exported}, not copied to {target}")
        else:
            exported.replace(target)
            print(f"{name}: wrote {target} ({target.stat().st_size / 2 ** 20:.1f} MiB)", flush=True)
    print(f"wall time {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
