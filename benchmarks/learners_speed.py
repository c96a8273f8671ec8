"""Training and evaluation speed of every learner in `hallucinate.learners.LEARNERS`, beside easyfsl 1.5.0's
implementations of the same methods, measured in one run on this machine.

    python benchmarks/learners_speed.py [--train-episodes 30] [--warmup-episodes 3] [--eval-episodes 300]
                                        [--peer-eval-episodes 100] [--learners protonet matching ...]
                                        [--pretrain-probe-batches 20] [--pretrain-epoch-limit 120]
                                        [--pretrain-batches 200] [--json-out FILE] [--data-root DIR] [--cache-dir DIR]

What it measures (Omniglot 28x28, Vinyals splits, CPU, untrained weights: speed does not depend on them):

1. Training, one episode shape for every learner so that they compare: 20-way 1-shot 5-query episodes per second
   on the train split.
   - hallucinate: `hallucinate.pipeline.run_episodic`, the function `hallucinate run` calls, with the CONFIG of
     the learner's pipeline (`pipelines/omniglot_<learner>.py`: its backbone, learner settings, learning rate and
     the library defaults, i.e. precision "auto" = bf16 autocast for the backbone where the CPU supports it,
     channels_last, one loader worker reading the LMDB store), with only the episode shape (20-way 1-shot 5-query),
     the episode count, the log interval and validation (5 episodes, 20-way 1-shot, at the final episode only)
     replaced and no hallucinator. The rate is the loop's own `episodes_per_s` from its history, which excludes
     validation and checkpointing; the first `--warmup-episodes` episodes (one log interval) are left out.
     MAML's and ANIL's heads are fixed to `n_way` when the model is built: here they are built 20-way (their
     pipelines train 5-way 1-shot 15-query), and validated 20-way.
     `matching` is the pipeline's (no full context embeddings); `matching_fce` is the same pipeline with
     `matching_fce=True`, the variant compared with easyfsl's MatchingNetworks, which always uses them.
   - Baseline and Baseline++ (pipelines with `pretrain_epochs > 0`, or a built-in config where no pipeline file
     exists yet) are trained by mini-batch pre-training over every base class, not by episodes: their rate is
     pre-training images per second (`images_per_s` of `hallucinate.training.pretrain.pretrain_backbone`, which
     `run_episodic` calls for them; DataLoader start-up included, the epoch's closing validation excluded). A short
     probe (`--pretrain-probe-batches` mini-batches of an evenly strided subset of the train split, also the
     warm-up) projects the time of one full epoch; if it is under `--pretrain-epoch-limit` seconds (default 120),
     one full epoch is run through `run_episodic` and measured, else one epoch of `pretrain_backbone` over an evenly
     strided subset of `--pretrain-batches` mini-batches (labels kept, so the head still covers every base class)
     is measured instead (the probe before it has paid the one-time costs; the loader's start-up remains in its
     rate, as in every epoch's), and the output says which. The pipeline's settings are kept, but for one epoch and
     a closing validation of 5 episodes, 5-way 1-shot.
   - easyfsl: `PrototypicalNetworks` (peer of protonet), `MatchingNetworks` (peer of matching_fce) and
     `RelationNetworks` (peer of relation), each with its documented loss (cross-entropy, NLL of its
     log-probabilities, MSE of its relation scores against one-hot targets), Adam 1e-3, fp32, `TaskSampler` + a
     DataLoader with 2 workers over a plain folder dataset that opens, rotates and resizes one extracted PNG per
     item with PIL, as a typical easyfsl user does. Backbones: hallucinate's Conv-4 (64-dim features) for
     PrototypicalNetworks and MatchingNetworks (`feature_dimension=64`); for RelationNetworks the blocks of
     hallucinate's `conv4_maps` without the flatten (64 x 5 x 5 feature maps, `feature_dimension=64`) and easyfsl's
     default relation module. The same number of warm-up episodes is left out. The other learners have no
     easyfsl counterpart.
2. Evaluation: 5-way 1-shot 15-query test episodes per second with `hallucinate.evaluation.evaluate`, fp32, from
   a freshly built (untrained) model of the learner's pipeline CONFIG with `n_way=5` (MAML's and ANIL's heads).
   "Cold" builds the feature bank (each test image the episodes use embedded once) inside the timing, as a
   checkpoint's first evaluation does; "warm" is handed the bank already built (the whole test split embedded,
   timed apart), as when the on-disk bank cache is hit. For MAML the "features" are the pixels and the inner loop
   runs the whole Conv-4 every episode; Baseline/Baseline++ fit a new head on every episode's support features.
   - easyfsl: `evaluate_on_one_task` in eval mode under `torch.no_grad` over `TaskSampler` episodes with 2 workers,
     from a freshly built (untrained) model; its warm-up episodes (worker start-up) are left out, which favours
     easyfsl.

Differences between the compared implementations that affect speed: hallucinate's matching with FCE runs its query
attention LSTM for 5 steps, easyfsl's for as many steps as there are support images (20 in a 20-way 1-shot training
episode, 5 in a 5-way 1-shot test episode); hallucinate's relation module pools 5x5 -> 2x2 -> 1x1 with padded 3x3
convolutions, easyfsl's default one pools adaptively to 5x5 then convolves unpadded to 3x3 and pools to 1x1.

Run it on an otherwise idle machine: torch uses every core by default, and with other processes competing for the
cores its OpenMP threads can run many times slower than on an idle machine (the script warns when the load average
is high). The PNGs for easyfsl are extracted under the temp folder (`$TMPDIR`, else /tmp) and removed at the end,
with the short training runs' outputs.

Progress goes to stderr; the machine, the settings and the wall time of each part go to stdout, then a Markdown
table, and the last line of stdout is one JSON object with every rate and the hallucinate/easyfsl ratios. A learner
whose training or evaluation fails has its traceback printed to stdout and its rate reported as null.
"""
import time

START = time.perf_counter()  # before the imports, which take seconds (torch, easyfsl, torchvision)

import argparse
import dataclasses
import importlib.metadata
import json
import os
import random
import sys
import tempfile
import traceback
from pathlib import Path

import torch
from easyfsl.methods import MatchingNetworks, PrototypicalNetworks, RelationNetworks
from easyfsl.utils import evaluate_on_one_task
from tqdm import tqdm

from hallucinate.backbones import conv4, conv4_maps
from hallucinate.data import open_store
from hallucinate.data.paths import data_root
from hallucinate.data.transforms import build_augmentation
from hallucinate.device import bf16_supported
from hallucinate.evaluation import embed_split, evaluate
from hallucinate.learners import LEARNERS
from hallucinate.model import build_classifier
from hallucinate.pipeline import load_pipeline, run_episodic
from hallucinate.training import EpisodicConfig
from hallucinate.training.pretrain import pretrain_backbone

from easyfsl_peer import PEER_WORKERS, OmniglotFolder, extract_omniglot_pngs, task_loader, task_sampler  # noqa: E402  (benchmarks/, beside this script)
from run_header import print_run_header  # noqa: E402  (benchmarks/, beside this script)

PIPELINES = Path(__file__).resolve().parent.parent / "pipelines"
VARIANTS = {"matching_fce": ("matching", {"matching_fce": True})}  # row name -> (pipeline learner, changes)
ROWS = [name for learner in LEARNERS for name in (learner, *[v for v, (base, _) in VARIANTS.items()
                                                            if base == learner])]
PEERS = {"protonet": "PrototypicalNetworks", "matching_fce": "MatchingNetworks", "relation": "RelationNetworks"}

# ---------------------------------------------------------------------------------------------------------- settings
parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("--train-episodes", type=int, default=30, help="timed training episodes per side (default 30)")
parser.add_argument("--warmup-episodes", type=int, default=3, help="untimed episodes before them (default 3)")
parser.add_argument("--eval-episodes", type=int, default=300, help="hallucinate test episodes (default 300)")
parser.add_argument("--peer-eval-episodes", type=int, default=100, help="easyfsl test episodes (default 100)")
parser.add_argument("--learners", nargs="+", choices=ROWS, default=ROWS, metavar="LEARNER",
                    help=f"rows to measure (default all: {' '.join(ROWS)})")
parser.add_argument("--pretrain-probe-batches", type=int, default=20,
                    help="mini-batches of the pre-training probe that projects a full epoch's time (default 20)")
parser.add_argument("--pretrain-epoch-limit", type=float, default=120.0,
                    help="run a full pre-training epoch only if the probe projects it under this many seconds "
                         "(default 120)")
parser.add_argument("--pretrain-batches", type=int, default=200,
                    help="mini-batches of the strided subset measured when a full epoch is too long (default 200)")
parser.add_argument("--json-out", help="also write the last line's JSON object to this file (read by benchmarks/budget_table.py)")
parser.add_argument("--data-root", help="data sets folder (default: $HALLUCINATE_DATA, else ./data)")
parser.add_argument("--cache-dir", help="hallucinate stores (default: $HALLUCINATE_CACHE, else ~/.cache/hallucinate)")
args = parser.parse_args()
if min(args.train_episodes, args.warmup_episodes, args.eval_episodes, args.peer_eval_episodes,
       args.pretrain_probe_batches, args.pretrain_batches) < 1:
    parser.error("every episode and batch count must be at least 1")
rows_wanted = [name for name in ROWS if name in args.learners]

TRAIN = dict(n_way=20, k_shot=1, q_query=5)
TEST = dict(n_way=5, k_shot=1, q_query=15)
device = torch.device("cpu")
walls: dict[str, float] = {"imports": time.perf_counter() - START}


print_run_header(f"easyfsl {importlib.metadata.version('easyfsl')}; "
                 f"bf16 autocast on this CPU: {bf16_supported(device)}")
print(f"training episodes: {TRAIN['n_way']}-way {TRAIN['k_shot']}-shot {TRAIN['q_query']}-query, "
      f"{args.warmup_episodes} warm-up + {args.train_episodes} timed; evaluation: {TEST['n_way']}-way "
      f"{TEST['k_shot']}-shot {TEST['q_query']}-query, {args.eval_episodes} episodes (hallucinate), "
      f"{args.peer_eval_episodes} (+{args.warmup_episodes} warm-up) episodes (easyfsl)")
if os.getloadavg()[0] > 0.5 * (os.cpu_count() or 1):
    print(f"WARNING: load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs: other processes compete for the "
          "cores, so the rates below are low and noisy; run this on an idle machine for numbers to publish")


def pipeline_config(row: str) -> tuple[EpisodicConfig, str]:
    """The CONFIG of the row's pipeline (with the row's variant changes) and where it came from."""
    learner, changes = VARIANTS.get(row, (row, {}))
    path = PIPELINES / f"omniglot_{learner}.py"
    if path.is_file():
        config, source = load_pipeline(path).CONFIG, f"pipelines/{path.name}"
    elif learner in ("baseline", "baseline_pp"):  # Chen et al.'s recipe, until the pipeline file exists
        config = EpisodicConfig(dataset="omniglot", backbone="conv4", learner=learner, hallucinator="none",
                                pretrain_epochs=1, pretrain_batch_size=64, lr=1e-3)
        source = "built-in config (no pipeline file): conv4, pretrain_batch_size=64, Adam 1e-3"
    else:
        raise FileNotFoundError(f"no pipeline file {path} for learner {learner!r}")
    if changes:
        config = dataclasses.replace(config, **changes)
        source += " with " + ", ".join(f"{k}={v}" for k, v in changes.items())
    return config, source


# --------------------------------------------------------------------------------------------------------- the data
t = time.perf_counter()
omniglot = data_root(args.data_root) / "omniglot"
split_lines = {name: (omniglot / "splits" / "vinyals" / f"{name}.txt").read_text().split()
               for name in ("train", "test")}
store = open_store("omniglot", root=args.data_root, cache=args.cache_dir)
test_split = store.split("test")
workdir = tempfile.TemporaryDirectory(prefix="learners-speed-")
peer_rows = [row for row in rows_wanted if row in PEERS]

# easyfsl reads PNGs from a folder.
png_root = Path(workdir.name) / "png"
if peer_rows:
    extract_omniglot_pngs(omniglot, split_lines, png_root)
    peer_train = OmniglotFolder(png_root, split_lines["train"])
    peer_test = OmniglotFolder(png_root, split_lines["test"])
    if (len(peer_train), len(peer_test)) != (len(store.split("train")), len(test_split)):
        sys.exit(f"the PNG folder datasets ({len(peer_train)}, {len(peer_test)} images) do not match the store's "
                 f"train and test splits ({len(store.split('train'))}, {len(test_split)})")
walls["setup"] = time.perf_counter() - t
print(f"data: store {store.path} ({len(store.split('train'))} train / {len(test_split)} test images)"
      + (f"; the same images as PNGs extracted to {png_root} for easyfsl" if peer_rows else "")
      + f" ({walls['setup']:.1f} s)")


def peer_model(row: str) -> tuple[torch.nn.Module, object]:
    """A freshly built easyfsl model for the row, and the loss ``(output, query_labels) -> loss`` it trains with."""
    torch.manual_seed(0)
    if row == "protonet":
        return PrototypicalNetworks(conv4(in_channels=1, image_size=28)), torch.nn.functional.cross_entropy
    if row == "matching_fce":  # outputs log-probabilities
        return (MatchingNetworks(conv4(in_channels=1, image_size=28), feature_dimension=64),
                torch.nn.functional.nll_loss)
    if row == "relation":  # relation scores in (0, 1), regressed on one-hot targets
        model = RelationNetworks(conv4_maps(in_channels=1, image_size=28).blocks, feature_dimension=64)
        return model, lambda scores, labels: torch.nn.functional.mse_loss(
            scores, torch.nn.functional.one_hot(labels, scores.shape[1]).float())
    raise KeyError(row)


def timed_rate(history: list[dict], warmup: int) -> tuple[float, int]:
    """Episodes per second over the logged intervals after the first ``warmup`` episodes."""
    episodes, seconds, previous = 0, 0.0, 0
    for row in history:
        if "episodes_per_s" not in row:
            continue
        steps = row["episode"] - previous
        if previous >= warmup:
            episodes, seconds = episodes + steps, seconds + steps / row["episodes_per_s"]
        previous = row["episode"]
    return episodes / seconds, episodes


class StridedSubset(torch.utils.data.Subset):
    """Every ``stride``-th image of a split (``count`` of them), with its labels, as pre-training reads a split."""

    def __init__(self, split, count: int):
        stride = max(1, len(split) // count)
        indices = list(range(0, len(split), stride))[:count]
        super().__init__(split, indices)
        self.labels = split.labels[indices]


def pretrain_rate(config: EpisodicConfig, name: str, out: Path) -> dict:
    """Pre-training images per second of ``config`` (see the module docstring), and what was measured."""
    config = dataclasses.replace(config, pretrain_epochs=1, val_episodes=5, val_n_way=TEST["n_way"],
                                 val_k_shot=TEST["k_shot"], hallucinator="none")
    train_split = store.split("train", augment=build_augmentation(config.augment), augment_seed=config.seed)
    val_split = store.split("val")
    batch = config.pretrain_batch_size

    def one_epoch(count: int, folder: str) -> float:
        torch.manual_seed(config.seed)
        model = build_classifier(config)
        summary = pretrain_backbone(config, model, StridedSubset(train_split, count), val_split,
                                    out_dir=out / folder, device=device)
        return summary["history"][-1]["images_per_s"]

    t = time.perf_counter()
    probe = one_epoch(args.pretrain_probe_batches * batch, "probe")
    walls[f"{name}_pretrain_probe"] = time.perf_counter() - t
    projected = len(train_split) / probe
    print(f"{name} pre-training probe: {probe:.1f} images/s over {args.pretrain_probe_batches} batches of {batch} "
          f"(DataLoader start-up included); a full epoch of {len(train_split)} images projected at {projected:.0f} s "
          f"(limit {args.pretrain_epoch_limit:.0f} s)")
    t = time.perf_counter()
    if projected < args.pretrain_epoch_limit:
        summary = run_episodic(config, out=out / "epoch", data_root=args.data_root, cache_dir=args.cache_dir,
                               device="cpu")
        count, rate = len(train_split), summary["history"][-1]["images_per_s"]
        what = f"one full epoch ({count} images, {count // batch} batches of {batch}) through run_episodic"
    else:
        count = args.pretrain_batches * batch
        rate = one_epoch(count, "subset")
        what = f"one epoch of pretrain_backbone over an evenly strided subset of {count} of the {len(train_split)} " \
               f"train images ({args.pretrain_batches} batches of {batch}; a full epoch was projected at " \
               f"{projected:.0f} s > {args.pretrain_epoch_limit:.0f} s)"
    walls[f"{name}_pretrain"] = time.perf_counter() - t
    return {"train_rate": rate, "train_measured": what}


def peer_part(row: str, result: dict) -> None:
    """Train and evaluate the row's easyfsl counterpart; its rates and the ratios go into ``result``."""
    # ----------------------------------------------------------------------------------------- training: easyfsl
    peer_name = PEERS[row]
    result["easyfsl"] = peer = {"method": peer_name}
    peer_net, criterion = peer_model(row)
    random.seed(0)
    optimizer = torch.optim.Adam(peer_net.parameters(), lr=1e-3)
    print(f"easyfsl {peer_name} train: {total_train} episodes ({warmup} warm-up), fp32, DataLoader with "
          f"{PEER_WORKERS} workers over the PNG folder")
    t = time.perf_counter()
    peer_net.train()
    loader = task_loader(peer_train, task_sampler(peer_train, **TRAIN, tasks=total_train))
    for episode, (support, support_labels, query, query_labels, _) in enumerate(
            tqdm(loader, desc=f"easyfsl {peer_name} train"), 1):
        optimizer.zero_grad()
        peer_net.process_support_set(support, support_labels)
        loss = criterion(peer_net(query), query_labels)
        loss.backward()
        optimizer.step()
        if episode == warmup:
            timed_start = time.perf_counter()
    peer["train_eps_per_s"] = args.train_episodes / (time.perf_counter() - timed_start)
    walls[f"{row}_easyfsl_train"] = time.perf_counter() - t
    del loader
    print(f"easyfsl {peer_name} train: {peer['train_eps_per_s']:.3f} episodes/s over {args.train_episodes} "
          f"episodes (part wall time {walls[f'{row}_easyfsl_train']:.1f} s)")

    # --------------------------------------------------------------------------------------- evaluation: easyfsl
    P = args.peer_eval_episodes
    peer_net, _ = peer_model(row)  # freshly built, as on the hallucinate side
    random.seed(0)
    t = time.perf_counter()
    peer_net.eval()
    correct = predictions = 0
    loader = task_loader(peer_test, task_sampler(peer_test, **TEST, tasks=warmup + P))
    with torch.no_grad():
        for episode, (support, support_labels, query, query_labels, _) in enumerate(
                tqdm(loader, desc=f"easyfsl {peer_name} eval"), 1):
            right, count = evaluate_on_one_task(peer_net, support, support_labels, query, query_labels)
            if episode == warmup:
                timed_start = time.perf_counter()
            elif episode > warmup:
                correct, predictions = correct + right, predictions + count
    peer["eval_eps_per_s"] = P / (time.perf_counter() - timed_start)
    walls[f"{row}_easyfsl_eval"] = time.perf_counter() - t
    del loader
    print(f"easyfsl {peer_name} eval: {peer['eval_eps_per_s']:.1f} episodes/s over {P} episodes ({warmup} warm-up "
          f"left out; part wall time {walls[f'{row}_easyfsl_eval']:.1f} s); untrained accuracy "
          f"{100 * correct / predictions:.2f}%")
    if result.get("train_rate"):
        result["train_ratio"] = result["train_rate"] / peer["train_eps_per_s"]
    if result.get("eval_eps_per_s_cold"):
        result["eval_ratio_cold"] = result["eval_eps_per_s_cold"] / peer["eval_eps_per_s"]
        result["eval_ratio_warm"] = result["eval_eps_per_s_warm"] / peer["eval_eps_per_s"]


warmup, total_train = args.warmup_episodes, args.warmup_episodes + args.train_episodes
results: dict[str, dict] = {}

for row in rows_wanted:
    result = results[row] = {}
    print(f"\n=== {row}")
    try:
        config, source = pipeline_config(row)
    except Exception:
        print(f"{row}: no config:\n{traceback.format_exc()}")
        continue
    result["config_source"] = source
    print(f"{row}: {source}; backbone {config.backbone}, learner {config.learner}, precision={config.precision}, "
          f"channels_last={config.channels_last}, num_workers={config.num_workers}")

    # ------------------------------------------------------------------------------------ training: hallucinate
    out = Path(workdir.name) / row
    t = time.perf_counter()
    try:
        if config.pretrain_epochs > 0:
            result |= {"train_unit": "pretrain_images_per_s", **pretrain_rate(config, row, out)}
            print(f"{row} pre-training: {result['train_rate']:.1f} images/s, {result['train_measured']}")
        else:
            train_config = dataclasses.replace(
                config, **TRAIN, episodes=total_train, log_every=warmup, val_every=10 ** 9, checkpoint_every=10 ** 9,
                val_episodes=5, val_n_way=TRAIN["n_way"], val_k_shot=TRAIN["k_shot"], hallucinator="none")
            summary = run_episodic(train_config, out=out / "train", data_root=args.data_root,
                                   cache_dir=args.cache_dir, device="cpu")
            rate, episodes = timed_rate(summary["history"], warmup)
            walls[f"{row}_train"] = time.perf_counter() - t
            result |= {"train_unit": "episodes_per_s", "train_rate": rate}
            print(f"{row} train: {rate:.3f} episodes/s over {episodes} episodes (part wall time "
                  f"{walls[f'{row}_train']:.1f} s, with the final validation and checkpoint)")
    except Exception:
        walls[f"{row}_train"] = time.perf_counter() - t
        result |= {"train_rate": None, "train_error": traceback.format_exc()}
        print(f"{row} train FAILED:\n{result['train_error']}")

    # ---------------------------------------------------------------------------------- evaluation: hallucinate
    E = args.eval_episodes
    try:
        torch.manual_seed(config.seed)
        model = build_classifier(dataclasses.replace(config, **TEST, hallucinator="none"))
        t = time.perf_counter()
        cold = evaluate(model, test_split, **TEST, episodes=E, seed=0, device=device, precision="fp32", cache=None,
                        progress=True)
        walls[f"{row}_eval_cold"] = time.perf_counter() - t
        t = time.perf_counter()
        bank = embed_split(model, test_split, device=device, precision="fp32")
        walls[f"{row}_bank"] = time.perf_counter() - t
        t = time.perf_counter()
        warm = evaluate(model, test_split, **TEST, episodes=E, seed=0, device=device, precision="fp32", bank=bank,
                        progress=True)
        walls[f"{row}_eval_warm"] = time.perf_counter() - t
        result |= {"eval_eps_per_s_cold": E / walls[f"{row}_eval_cold"],
                   "eval_eps_per_s_warm": E / walls[f"{row}_eval_warm"]}
        print(f"{row} eval: cold {result['eval_eps_per_s_cold']:.1f} episodes/s ({E} episodes in "
              f"{walls[f'{row}_eval_cold']:.1f} s, embedding the images they use included); warm bank "
              f"{result['eval_eps_per_s_warm']:.1f} episodes/s ({walls[f'{row}_eval_warm']:.2f} s; building that "
              f"bank of {len(test_split)} images took {walls[f'{row}_bank']:.1f} s); untrained accuracy "
              f"{cold.accuracy:.2f}% / {warm.accuracy:.2f}%")
        del model, bank
    except Exception:
        result |= {"eval_eps_per_s_cold": None, "eval_eps_per_s_warm": None, "eval_error": traceback.format_exc()}
        print(f"{row} eval FAILED:\n{result['eval_error']}")

    if row not in PEERS:
        continue
    try:
        peer_part(row, result)
    except Exception:
        result.setdefault("easyfsl", {"method": PEERS[row]})["error"] = traceback.format_exc()
        print(f"easyfsl {PEERS[row]} FAILED:\n{result['easyfsl']['error']}")

# --------------------------------------------------------------------------------------------------------- summary
t = time.perf_counter()
workdir.cleanup()
walls["cleanup"] = time.perf_counter() - t
walls["total"] = time.perf_counter() - START


def number(value, digits: int) -> str:
    return "failed" if value is None else f"{value:.{digits}f}"


print()
print(f"Training: {TRAIN['n_way']}-way {TRAIN['k_shot']}-shot {TRAIN['q_query']}-query episodes/s (Baseline and "
      f"Baseline++: pre-training images/s). Evaluation: {TEST['n_way']}-way {TEST['k_shot']}-shot "
      f"{TEST['q_query']}-query episodes/s. Ratios: hallucinate / easyfsl.")
print()
print("| learner | hallucinate train eps/s | easyfsl train eps/s | ratio | hallucinate eval eps/s (cold / warm) "
      "| easyfsl eval eps/s | ratio (cold / warm) |")
print("|---|---:|---:|---:|---:|---:|---:|")
for row, result in results.items():
    peer = result.get("easyfsl")
    label = row + (f" (vs {peer['method']})" if peer else "")
    if "train_rate" not in result:
        train = "—"
    elif result.get("train_unit") == "pretrain_images_per_s":
        train = f"pre-training {number(result['train_rate'], 0)} img/s"
    else:
        train = number(result["train_rate"], 2)
    if "eval_eps_per_s_cold" in result:
        evaluation = f"{number(result['eval_eps_per_s_cold'], 1)} / {number(result['eval_eps_per_s_warm'], 1)}"
    else:
        evaluation = "—"
    peer_train = (f"{peer['train_eps_per_s']:.2f}" if "train_eps_per_s" in peer else "failed") if peer else "—"
    peer_eval = (f"{peer['eval_eps_per_s']:.1f}" if "eval_eps_per_s" in peer else "failed") if peer else "—"
    train_ratio = f"{result['train_ratio']:.2f}" if "train_ratio" in result else "—"
    eval_ratio = (f"{result['eval_ratio_cold']:.2f} / {result['eval_ratio_warm']:.2f}"
                  if "eval_ratio_cold" in result else "—")
    print(f"| {label} | {train} | {peer_train} | {train_ratio} | {evaluation} | {peer_eval} | {eval_ratio} |")
print()
for row, result in results.items():
    if "train_measured" in result:
        print(f"{row} pre-training rate: {result['train_measured']}")
print("wall time (s): " + ", ".join(f"{name} {seconds:.1f}" for name, seconds in walls.items())
      + f"; load average now {os.getloadavg()[0]:.2f}")
settings = {"train": TRAIN, "test": TEST, "train_episodes": args.train_episodes, "warmup_episodes": warmup,
            "eval_episodes": args.eval_episodes, "peer_eval_episodes": args.peer_eval_episodes,
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "bf16": bf16_supported(device)}
for result in results.values():  # tracebacks are printed above; keep the last line short
    for holder, key in ((result, "train_error"), (result, "eval_error"), (result.get("easyfsl", {}), "error")):
        if key in holder:
            holder[key] = holder[key].strip().splitlines()[-1]
summary = json.dumps({"settings": settings, "learners": results, "walls_s": walls})
print(summary)
if args.json_out:
    partial = Path(args.json_out + ".partial")
    partial.write_text(summary + "\n")
    os.replace(partial, args.json_out)
