"""Training and evaluation speed of hallucinate versus easyfsl 1.5.0, measured in one run on this machine.

    python benchmarks/speed.py [--train-episodes 60] [--eval-episodes 1000] [--peer-eval-episodes 300]
                               [--data-root DIR] [--cache-dir DIR] [--checkpoint PATH]

What it measures (Conv-4, ProtoNet, Omniglot 28x28 with the Vinyals splits, CPU):

1. Training: 60-way 5-shot 5-query episodes per second on the train split, Adam 1e-3.
   - hallucinate: `hallucinate.pipeline.run_episodic`, the function `hallucinate run` calls, with the library's
     default settings (precision "auto" = bf16 autocast where the CPU supports it, channels_last, one loader
     worker reading the LMDB store). The rate is the loop's own `episodes_per_s` from `metrics.jsonl`, which
     excludes validation and checkpointing; the first `--warmup-episodes` episodes (one log interval) are left out.
     Its one validation and checkpoint at the final episode are in the part's wall time, not in the rate.
   - easyfsl: `PrototypicalNetworks` + `TaskSampler` + a DataLoader with 2 workers, fp32, over a plain folder
     dataset that opens, rotates and resizes one extracted PNG per item with PIL, as a typical easyfsl user does.
     The same number of warm-up episodes is left out.
2. Evaluation: 5-way 1-shot 15-query episodes per second on the test split.
   - hallucinate: `hallucinate.evaluation.evaluate` in float32 (as `hallucinate eval` by default), and again at
     precision "auto" (bf16 autocast where the CPU supports it, `--precision auto`) on the same episodes: the paired
     difference of their accuracies says whether bf16 changes the result. "Cold" builds the feature bank (each test image the episodes
     use embedded once, about 30,000 of 33,840 for 1000 episodes) inside the timing, as a checkpoint's first
     evaluation does; "warm" is handed the bank already built, as when the on-disk bank cache is hit on a later
     evaluation. The cold rate depends on the number of episodes the bank cost is spread over.
   - easyfsl: `evaluate_on_one_task` in eval mode under `torch.no_grad` over `TaskSampler` episodes with 2 workers;
     its warm-up episodes (worker start-up) are left out, which favours easyfsl.
   Both sides evaluate the same weights: those `--checkpoint` names, else the checkpoint the training part wrote
   (best-on-validation weights after the short training run). Speed does not depend on the weights.

Run it on an otherwise idle machine: torch uses every core by default, and with other processes competing for the
cores its OpenMP threads can run many times slower than on an idle machine (the script warns when the load average
is high). The PNGs for easyfsl are extracted under the temp folder (`$TMPDIR`, else /tmp) and removed at the end.

Progress goes to stderr; the machine, the settings and the wall time of each part go to stdout, and the last line
of stdout is one JSON object with the rates and the hallucinate/easyfsl ratios.
"""
import time

START = time.perf_counter()  # before the imports, which take seconds (torch, easyfsl, torchvision)

import argparse
import importlib.metadata
import json
import os
import random
import sys
import tempfile
from pathlib import Path

import torch
from easyfsl.methods import PrototypicalNetworks
from easyfsl.utils import evaluate_on_one_task
from tqdm import tqdm

import hallucinate
from hallucinate.backbones import conv4
from hallucinate.data import open_store
from hallucinate.data.paths import data_root
from hallucinate.device import bf16_supported
from hallucinate.evaluation import embed_split, evaluate, paired_gain
from hallucinate.pipeline import run_episodic
from hallucinate.training import EpisodicConfig

from easyfsl_peer import PEER_WORKERS, OmniglotFolder, extract_omniglot_pngs, task_loader, task_sampler  # noqa: E402  (benchmarks/, beside this script)
from run_header import print_run_header  # noqa: E402  (benchmarks/, beside this script)

# ---------------------------------------------------------------------------------------------------------- settings
parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("--train-episodes", type=int, default=60, help="timed training episodes per side (default 60)")
parser.add_argument("--warmup-episodes", type=int, default=3, help="untimed episodes before them (default 3)")
parser.add_argument("--eval-episodes", type=int, default=1000, help="hallucinate test episodes (default 1000)")
parser.add_argument("--peer-eval-episodes", type=int, default=300, help="easyfsl test episodes (default 300)")
parser.add_argument("--checkpoint", help="evaluate these weights (default: those the training part wrote)")
parser.add_argument("--data-root", help="data sets folder (default: $HALLUCINATE_DATA, else ./data)")
parser.add_argument("--cache-dir", help="hallucinate stores (default: $HALLUCINATE_CACHE, else ~/.cache/hallucinate)")
args = parser.parse_args()
if min(args.train_episodes, args.warmup_episodes, args.eval_episodes, args.peer_eval_episodes) < 1:
    parser.error("every episode count must be at least 1")

TRAIN = dict(n_way=60, k_shot=5, q_query=5)
TEST = dict(n_way=5, k_shot=1, q_query=15)
device = torch.device("cpu")
walls: dict[str, float] = {"imports": time.perf_counter() - START}


print_run_header(f"bf16 autocast on this CPU: {bf16_supported(device)}")
if os.getloadavg()[0] > 0.5 * (os.cpu_count() or 1):
    print(f"WARNING: load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs: other processes compete for the "
          "cores, so the rates below are low and noisy; run this on an idle machine for numbers to publish")

# --------------------------------------------------------------------------------------------------------- the data
t = time.perf_counter()
omniglot = data_root(args.data_root) / "omniglot"
split_lines = {name: (omniglot / "splits" / "vinyals" / f"{name}.txt").read_text().split()
               for name in ("train", "test")}

# easyfsl reads PNGs from a folder.
workdir = tempfile.TemporaryDirectory(prefix="speed-benchmark-")
png_root = Path(workdir.name)
extract_omniglot_pngs(omniglot, split_lines, png_root)
peer_train, peer_test = OmniglotFolder(png_root, split_lines["train"]), OmniglotFolder(png_root, split_lines["test"])
walls["setup"] = time.perf_counter() - t
print(f"data: {len(peer_train)} train / {len(peer_test)} test images from PNGs extracted to {png_root} for easyfsl "
      f"({walls['setup']:.1f} s)")

warmup, total_train = args.warmup_episodes, args.warmup_episodes + args.train_episodes
results = {"hallucinate": {}, "easyfsl": {}}

# ------------------------------------------------------------------------------------------ training: hallucinate
config = EpisodicConfig(dataset="omniglot", backbone="conv4", learner="protonet", hallucinator="none", **TRAIN,
                        lr=1e-3, episodes=total_train, log_every=warmup, val_every=10 ** 9,
                        checkpoint_every=10 ** 9, val_episodes=20)
print(f"hallucinate train: run_episodic, {total_train} episodes ({warmup} warm-up), precision={config.precision}, "
      f"channels_last={config.channels_last}, num_workers={config.num_workers}")
t = time.perf_counter()
train_dir = Path(workdir.name) / "hallucinate-run"
summary = run_episodic(config, out=train_dir, data_root=args.data_root, cache_dir=args.cache_dir, device="cpu")
walls["hallucinate_train"] = time.perf_counter() - t
rows = [row for row in summary["history"] if "episodes_per_s" in row]
timed_episodes, timed_seconds, previous = 0, 0.0, 0
for row in rows:
    steps = row["episode"] - previous
    if previous >= warmup:
        timed_episodes, timed_seconds = timed_episodes + steps, timed_seconds + steps / row["episodes_per_s"]
    previous = row["episode"]
results["hallucinate"]["train_eps_per_s"] = timed_episodes / timed_seconds
print(f"hallucinate train: {results['hallucinate']['train_eps_per_s']:.3f} episodes/s over {timed_episodes} "
      f"episodes (part wall time {walls['hallucinate_train']:.1f} s, with the final validation and checkpoint)")

# ----------------------------------------------------------------------------------------------- training: easyfsl
torch.manual_seed(0)
random.seed(0)
peer_model = PrototypicalNetworks(conv4(in_channels=1, image_size=28))
optimizer = torch.optim.Adam(peer_model.parameters(), lr=1e-3)
criterion = torch.nn.CrossEntropyLoss()
print(f"easyfsl {importlib.metadata.version('easyfsl')} train: {total_train} episodes ({warmup} warm-up), "
      f"fp32, DataLoader with {PEER_WORKERS} workers over the PNG folder")
t = time.perf_counter()
peer_model.train()
loader = task_loader(peer_train, task_sampler(peer_train, **TRAIN, tasks=total_train))
for episode, (support, support_labels, query, query_labels, _) in enumerate(tqdm(loader, desc="easyfsl train"), 1):
    optimizer.zero_grad()
    peer_model.process_support_set(support, support_labels)
    loss = criterion(peer_model(query), query_labels)
    loss.backward()
    optimizer.step()
    if episode == warmup:
        timed_start = time.perf_counter()
results["easyfsl"]["train_eps_per_s"] = args.train_episodes / (time.perf_counter() - timed_start)
walls["easyfsl_train"] = time.perf_counter() - t
del loader
print(f"easyfsl train: {results['easyfsl']['train_eps_per_s']:.3f} episodes/s over {args.train_episodes} episodes "
      f"(part wall time {walls['easyfsl_train']:.1f} s)")

# --------------------------------------------------------------------------------------- evaluation: the weights
t = time.perf_counter()
store = open_store("omniglot", root=args.data_root, cache=args.cache_dir)
test_split = store.split("test")
if (len(peer_train), len(peer_test)) != (len(store.split("train")), len(test_split)):
    sys.exit(f"the PNG folder datasets ({len(peer_train)}, {len(peer_test)} images) do not match the store's train "
             f"and test splits ({len(store.split('train'))}, {len(test_split)})")
checkpoint = Path(args.checkpoint) if args.checkpoint else train_dir / "checkpoint.pt"
model = hallucinate.load(checkpoint, device="cpu")
peer_model.backbone.load_state_dict(model.backbone.state_dict())
walls["eval_setup"] = time.perf_counter() - t
print(f"evaluation weights: {checkpoint if args.checkpoint else 'the training part checkpoint (best on validation)'}")

# --------------------------------------------------------------------------------------- evaluation: hallucinate
E = args.eval_episodes
cold = {}
for index in range(len(test_split)):  # both precisions read the store with its pages in memory, not the second only
    test_split[index]
for precision in ("fp32", "auto"):
    t = time.perf_counter()
    cold[precision] = evaluate(model, test_split, **TEST, episodes=E, seed=0, device=device, precision=precision,
                               cache=None, progress=True)
    walls[f"hallucinate_eval_cold_{precision}"] = time.perf_counter() - t
results["hallucinate"]["eval_eps_per_s"] = E / walls["hallucinate_eval_cold_fp32"]
results["hallucinate"]["eval_eps_per_s_auto"] = E / walls["hallucinate_eval_cold_auto"]
difference, interval = paired_gain(cold["auto"], cold["fp32"])
results["auto_precision"] = "bf16" if bf16_supported(device) else "fp32"
results["auto_minus_fp32_accuracy"] = [difference, interval]

t = time.perf_counter()
bank = embed_split(model, test_split, device=device, precision="fp32")
walls["hallucinate_bank"] = time.perf_counter() - t
t = time.perf_counter()
warm = evaluate(model, test_split, **TEST, episodes=E, seed=0, device=device, precision="fp32", bank=bank,
                progress=True)
walls["hallucinate_eval_warm"] = time.perf_counter() - t
results["hallucinate"]["eval_eps_per_s_warm_bank"] = E / walls["hallucinate_eval_warm"]
print(f"hallucinate eval (float32): cold {results['hallucinate']['eval_eps_per_s']:.1f} episodes/s ({E} episodes "
      f"in {walls['hallucinate_eval_cold_fp32']:.1f} s, embedding the images they use included; precision auto "
      f"({results['auto_precision']}): {results['hallucinate']['eval_eps_per_s_auto']:.1f} episodes/s); warm bank "
      f"{results['hallucinate']['eval_eps_per_s_warm_bank']:.1f} episodes/s ({walls['hallucinate_eval_warm']:.2f} s; "
      f"building that bank took {walls['hallucinate_bank']:.1f} s)")
print(f"accuracy {cold['auto'].accuracy:.2f}% ({results['auto_precision']}) / {cold['fp32'].accuracy:.2f}% (float32) "
      f"on the same {E} episodes: difference {difference:+.2f} ± {interval:.2f} "
      f"({'inside' if abs(difference) <= interval else 'OUTSIDE'} its paired interval)")

# ------------------------------------------------------------------------------------------- evaluation: easyfsl
P = args.peer_eval_episodes
random.seed(0)
t = time.perf_counter()
peer_model.eval()
correct = predictions = 0
loader = task_loader(peer_test, task_sampler(peer_test, **TEST, tasks=warmup + P))
with torch.no_grad():
    for episode, (support, support_labels, query, query_labels, _) in enumerate(tqdm(loader, desc="easyfsl eval"), 1):
        right, count = evaluate_on_one_task(peer_model, support, support_labels, query, query_labels)
        if episode == warmup:
            timed_start = time.perf_counter()
        elif episode > warmup:
            correct, predictions = correct + right, predictions + count
results["easyfsl"]["eval_eps_per_s"] = P / (time.perf_counter() - timed_start)
walls["easyfsl_eval"] = time.perf_counter() - t
del loader
print(f"easyfsl eval: {results['easyfsl']['eval_eps_per_s']:.1f} episodes/s over {P} episodes ({warmup} warm-up "
      f"left out; part wall time {walls['easyfsl_eval']:.1f} s); accuracy {100 * correct / predictions:.2f}%")

# --------------------------------------------------------------------------------------------------------- summary
t = time.perf_counter()
workdir.cleanup()
walls["cleanup"] = time.perf_counter() - t
walls["total"] = time.perf_counter() - START
print("wall time (s): " + ", ".join(f"{name} {seconds:.1f}" for name, seconds in walls.items())
      + f"; load average now {os.getloadavg()[0]:.2f}")
ours, peer = results["hallucinate"], results["easyfsl"]
results |= {"train_ratio": ours["train_eps_per_s"] / peer["train_eps_per_s"],
            "eval_ratio": ours["eval_eps_per_s"] / peer["eval_eps_per_s"],
            "eval_ratio_auto": ours["eval_eps_per_s_auto"] / peer["eval_eps_per_s"],
            "eval_ratio_warm_bank": ours["eval_eps_per_s_warm_bank"] / peer["eval_eps_per_s"]}
print(json.dumps(results))
