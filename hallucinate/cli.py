"""hallucinate run | eval | report | ingest | export"""
import argparse
import dataclasses
import json
import sys
from pathlib import Path


def _paths(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-root", help="data sets folder (default: $HALLUCINATE_DATA, else ./data)")
    parser.add_argument("--cache-dir", help="stores and feature banks (default: $HALLUCINATE_CACHE, else "
                                            "~/.cache/hallucinate)")
    parser.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda when available, else cpu)")


def _parser() -> argparse.ArgumentParser:
    from . import __version__
    from .pipeline import shipped_pipelines

    parser = argparse.ArgumentParser(prog="hallucinate", description=__doc__)
    parser.add_argument("--version", action="version", version=f"hallucinate {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    shipped = shipped_pipelines()
    run = commands.add_parser("run", help="train the pipeline a Python file defines",
                              formatter_class=argparse.RawDescriptionHelpFormatter,
                              epilog="pipelines in ./pipelines:\n  " + "\n  ".join(shipped) if shipped else
                              "no ./pipelines folder here: run from the repository root to see the shipped ones")
    run.add_argument("pipeline", help="a pipeline file, e.g. pipelines/omniglot_protonet_gan.py")
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a setting")
    run.add_argument("--out", help="run folder (default: runs/<pipeline name>)")
    run.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    _paths(run)

    evaluate = commands.add_parser("eval", help="accuracy of a checkpoint over seeded test episodes")
    evaluate.add_argument("checkpoint")
    evaluate.add_argument("--n-way", type=int, default=5)
    evaluate.add_argument("--k-shot", type=int, default=1)
    evaluate.add_argument("--q-query", type=int, default=15)
    evaluate.add_argument("--episodes", type=int, default=1000)
    evaluate.add_argument("--seed", type=int, default=0)
    evaluate.add_argument("--split", default="test")
    evaluate.add_argument("--dataset", help="classification: the data set (domain) whose --split to test on, of the "
                                            "checkpoint's image shape (default: the one it was trained on)")
    evaluate.add_argument("--no-hallucinate", action="store_true", help="evaluate without synthetic examples")
    evaluate.add_argument("--hallucinator", choices=["calibration"],
                          help="hallucinate with a training-free hallucinator fitted now on the train split's "
                               "features (replacing the checkpoint's own, if any); detection: on the base classes' "
                               "RoI features, for TFA's fine-tuning")
    evaluate.add_argument("--n-synthetic", type=int, help="synthetic examples per class (default: the checkpoint's)")
    evaluate.add_argument("--synthetic-mass", type=float,
                          help="total support weight of a class's synthetic examples (default: the checkpoint's)")
    evaluate.add_argument("--learner", choices=["logistic"],
                          help="classify with a logistic-regression head fitted on each episode's support features "
                               "(Tukey + L2 transform, the same with hallucination on and off) instead of the "
                               "checkpoint's learner")
    evaluate.add_argument("--inner-steps", type=int,
                          help="MAML and ANIL: gradient steps on the support set at test time (default: the "
                               "checkpoint's, the same as in training; Finn et al.'s code tests Omniglot with 10)")
    evaluate.add_argument("--per-episode", action="store_true", help="include every episode's accuracy")
    evaluate.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "auto"])
    evaluate.add_argument("--clutter", type=int, nargs="+",
                          help="segmentation: clutter levels to measure, one JSON line each (default: the "
                               "checkpoint's)")
    evaluate.add_argument("--same-drawer", choices=["true", "false"],
                          help="segmentation: references from the target's own drawing (true, the paper's task) or "
                               "another drawer's (default: the checkpoint's)")
    evaluate.add_argument("--subset", default="test-one-shot",
                          help="segmentation: test-one-shot, test-train, val-one-shot or val-train")
    evaluate.add_argument("--images", type=int,
                          help="segmentation: scenes per level (default 2000); detection: test canvases (default "
                               "1000, all of them)")
    evaluate.add_argument("--seeds", type=int, default=10,
                          help="detection: K-shot sets (seeds 0..N-1) the base detector is fine-tuned on, one at a "
                               "time, at --k-shot (default 10)")
    evaluate.add_argument("--novel-only", action="store_true",
                          help="detection, Attention-RPN: score the 20 novel classes alone (no bAP50; 6x faster)")
    evaluate.add_argument("--no-progress", action="store_true")
    _paths(evaluate)

    ingest = commands.add_parser("ingest", help="build a data set's LMDB store (CIFAR-FS: when its zips are missing, "
                                                "they are built first from CIFAR-100, downloaded if it is not there)")
    ingest.add_argument("dataset")
    ingest.add_argument("--image-size", type=int)
    ingest.add_argument("--rebuild", action="store_true", help="rebuild even if a current store exists")
    _paths(ingest)

    report = commands.add_parser("report", help="a Markdown report of a run (RUN_DIR/report/report.md): accuracy "
                                                "with and without hallucination, the synthetic features measured "
                                                "and pictured")
    report.add_argument("run_dir", help="a folder `hallucinate run --out` wrote")
    report.add_argument("--episodes", type=int, default=600, help="test episodes per measurement (default 600)")
    report.add_argument("--compare", nargs="+", default=[], metavar="CHECKPOINT",
                        help="also measure and picture these checkpoints' generators (e.g. the earlier noise GAN)")
    report.add_argument("--images", type=int, help="segmentation: test scenes per clutter level (default 500); "
                                                   "detection: base and few-shot test canvases (default 200)")
    report.add_argument("--clutter", type=int, nargs="+",
                        help="segmentation: clutter levels to measure (default: the run's and the next two)")
    report.add_argument("--no-progress", action="store_true")
    _paths(report)

    export = commands.add_parser("export", help="write a checkpoint's best weights, config and metrics alone "
                                                "(no optimizer state, no critic): a small file to publish")
    export.add_argument("checkpoint")
    export.add_argument("output")
    return parser


# What `hallucinate run` prints of a run's summary, per task (classification's otherwise).
SUMMARY_KEYS = {"segmentation": ("steps", "best_val_iou", "best_step"), "detection": ("steps", "val_base_ap50"),
                "detection_attention_rpn": ("steps", "val_base_ap50")}


def _run(args) -> dict | None:
    from .pipeline import load_pipeline
    from .training import override
    from .training.distributed import process_group, rank

    module = load_pipeline(args.pipeline)
    config = override(module.CONFIG, args.set)
    out = Path(args.out or Path("runs") / Path(args.pipeline).stem)
    with process_group(args.device) as device:  # one of several processes when torchrun started this one
        summary = module.run(config, out=out, resume=args.resume, data_root=args.data_root, cache_dir=args.cache_dir,
                             device=device, progress=not args.no_progress)
        if rank() != 0:
            return None  # rank 0 speaks for the run
    keys = SUMMARY_KEYS.get(getattr(config, "task", None), ("episodes", "best_val_accuracy", "best_episode"))
    return {key: summary[key] for key in keys} | {"out": str(out)}


def _eval(args) -> dict | None:
    from . import load
    from .data import DATASETS, open_store
    from .data.paths import cache_dir
    from .device import resolve_device
    from .evaluation import evaluate

    device = resolve_device(args.device)
    model = load(args.checkpoint, device=args.device, data_root=args.data_root, cache_dir=args.cache_dir)
    if getattr(model.config, "task", None) == "segmentation":
        from .segmentation.evaluation import evaluate_levels

        same_drawer = model.config.same_drawer if args.same_drawer is None else args.same_drawer == "true"
        for result in evaluate_levels(model, levels=args.clutter or [model.config.clutter], subset=args.subset,
                                      images=args.images or 2000, same_drawer=same_drawer,
                                      hallucinate=model.hallucinating and not args.no_hallucinate, seed=args.seed,
                                      data_root=args.data_root, device=device, progress=not args.no_progress):
            print(json.dumps(result | {"checkpoint": str(args.checkpoint)}), flush=True)
        return None  # one line per level, printed as each is measured
    if getattr(model.config, "task", None) == "detection_attention_rpn":
        from .detection.attention_evaluation import evaluate_checkpoint as evaluate_attention_rpn

        return evaluate_attention_rpn(model, k_shot=args.k_shot, seeds=args.seeds, images=args.images or 1000,
                                      base=not args.novel_only, data_root=args.data_root, device=device,
                                      progress=not args.no_progress) | {"checkpoint": str(args.checkpoint)}
    if args.novel_only:
        raise ValueError(f"--novel-only applies to Attention-RPN checkpoints; {args.checkpoint} is not one")
    if getattr(model.config, "task", None) == "detection":
        from .detection.evaluation import evaluate_checkpoint

        if args.hallucinator == "calibration":  # hallucinated RoI features in the fine-tuning, whatever the config
            model.config = dataclasses.replace(model.config, hallucinator="calibration")
            model.set_hallucination(True)
        if args.no_hallucinate:
            model.set_hallucination(False)

        return evaluate_checkpoint(model, k_shot=args.k_shot, seeds=args.seeds, images=args.images or 1000,
                                   data_root=args.data_root, device=device,
                                   progress=not args.no_progress) | {"checkpoint": str(args.checkpoint)}
    if args.clutter or args.same_drawer:
        raise ValueError(f"--clutter and --same-drawer apply to segmentation checkpoints; {args.checkpoint} is a "
                         f"classification one")
    dataset = args.dataset or model.config.dataset
    if DATASETS[dataset].CHANNELS != DATASETS[model.config.dataset].CHANNELS:
        raise ValueError(f"{args.checkpoint} takes {DATASETS[model.config.dataset].CHANNELS}-channel images "
                         f"({model.config.dataset}); {dataset} has {DATASETS[dataset].CHANNELS}")
    test_store = open_store(dataset, image_size=model.config.image_size, root=args.data_root, cache=args.cache_dir)
    store = open_store(model.config.dataset, image_size=model.config.image_size, root=args.data_root,
                       cache=args.cache_dir) if dataset != model.config.dataset else test_store
    if args.n_synthetic is not None:
        if args.n_synthetic < 0:
            raise ValueError(f"--n-synthetic must be >= 0, got {args.n_synthetic}")
        model.n_synthetic = args.n_synthetic
    if args.inner_steps is not None:
        if not hasattr(model.learner, "inner_steps"):
            raise ValueError(f"--inner-steps applies to MAML and ANIL checkpoints; {args.checkpoint} is a "
                             f"{model.config.learner!r} one")
        if args.inner_steps < 0:
            raise ValueError(f"--inner-steps must be >= 0, got {args.inner_steps}")
        model.learner.inner_steps = args.inner_steps
    if args.hallucinator == "calibration":
        from .hallucinators.calibration import use_calibration

        use_calibration(model, store.split("train"), device=device, n_synthetic=model.n_synthetic,
                        precision=args.precision, cache=cache_dir(args.cache_dir))
    if args.synthetic_mass is not None:
        if model.hallucinator is None or args.synthetic_mass <= 0:
            raise ValueError(f"--synthetic-mass needs a hallucinator and a value > 0, got {args.synthetic_mass}")
        model.hallucinator.synthetic_mass = args.synthetic_mass
    if args.learner == "logistic":
        from .learners import LogisticRegression

        model.learner = LogisticRegression(transform=model.config.logistic_transform,
                                           power=model.config.logistic_power, l2=model.config.logistic_l2)
    hallucinate = model.hallucinating and model.n_synthetic > 0 and not args.no_hallucinate
    result = evaluate(model, test_store.split(args.split), n_way=args.n_way, k_shot=args.k_shot, q_query=args.q_query,
                      episodes=args.episodes, seed=args.seed, hallucinate=hallucinate, device=device,
                      precision=args.precision, cache=cache_dir(args.cache_dir), progress=not args.no_progress)
    adaptation = {"inner_steps": model.learner.inner_steps} if hasattr(model.learner, "inner_steps") else {}
    weighting = {"synthetic_mass": model.hallucinator.synthetic_mass} if hallucinate else {}
    return result.as_dict(per_episode=args.per_episode) | adaptation | weighting | {
        "checkpoint": str(args.checkpoint), "dataset": dataset, "split": args.split, "learner": args.learner or model.config.learner}


def _ingest(args) -> dict:
    from .data import open_store

    store = open_store(args.dataset, image_size=args.image_size, root=args.data_root, cache=args.cache_dir,
                       rebuild=args.rebuild)
    return {"store": str(store.path), "splits": {name: {"classes": len(split["classes"]), "images": split["size"]}
                                                 for name, split in store.meta["splits"].items()}}


def _report(args) -> dict:
    from .report import write_report

    if args.episodes < 2:
        raise ValueError(f"--episodes must be at least 2 (a 95% interval needs two), got {args.episodes}")
    path = write_report(Path(args.run_dir), data_root=args.data_root, cache_dir=args.cache_dir, device=args.device,
                        compare=[Path(c) for c in args.compare], images=args.images, levels=args.clutter,
                        episodes=args.episodes, progress=not args.no_progress)
    return {"report": str(path), "files": sorted(p.name for p in path.parent.iterdir())}


def _export(args) -> dict:
    from .training import load_checkpoint, save_checkpoint
    from .training.checkpoint import trained_episodes

    state = load_checkpoint(args.checkpoint)
    if state.get("task") in ("detection", "detection_attention_rpn"):  # the last weights are the result
        kept = {key: state[key] for key in ("task", "config", "model", "step", "metrics")}
        save_checkpoint(Path(args.output), kept, keep_previous=False)
        return {"output": args.output, "bytes": Path(args.output).stat().st_size}
    if state.get("task") == "segmentation":
        kept = {key: state[key] for key in ("task", "config", "best_val_iou", "best_step", "metrics", "best_model")}
        save_checkpoint(Path(args.output), kept | {"step": state["step"]}, keep_previous=False)
        return {"output": args.output, "bytes": Path(args.output).stat().st_size}
    keep = ("config", "best_val_accuracy", "best_episode", "metrics") + (("multidomain",) if "multidomain" in state else ())
    # The critic only trains the generator: a released classifier never calls it.
    weights = {name: tensor for name, tensor in state["best_model"].items()
               if not name.startswith("hallucinator.critic.")}
    save_checkpoint(Path(args.output), {key: state[key] for key in keep} | {
        "best_model": weights, "trained_episodes": trained_episodes(state)}, keep_previous=False)
    return {"output": args.output, "bytes": Path(args.output).stat().st_size}


def main(argv: list[str] | None = None) -> int:
    from .data.store import StoreError
    from .training.checkpoint import CheckpointError
    from .training.guard import NonFiniteLossError

    args = _parser().parse_args(argv)
    handler = {"run": _run, "eval": _eval, "report": _report, "ingest": _ingest, "export": _export}[args.command]
    try:
        result = handler(args)
        if result is not None:
            print(json.dumps(result))
    except (ValueError, KeyError, FileNotFoundError, StoreError, CheckpointError, NonFiniteLossError) as error:
        print(f"hallucinate {args.command}: error: {error.args[0] if isinstance(error, KeyError) else error}",
              file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
