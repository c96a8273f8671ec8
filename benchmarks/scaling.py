"""How the cost of ProtoNet, with and without the GAN hallucinator, grows with the episode: training step time and
memory against N-way, K-shot and the synthetic examples per class M, and evaluation time against the episodes.

    python benchmarks/scaling.py [--steps 5] [--rounds 3] [--device cpu] [--out docs/scaling.json]
                                 [--plot docs/scaling.png] [--quick]

The models are the pipelines': `pipelines/omniglot_protonet.py`'s CONFIG ("protonet") and
`pipelines/omniglot_protonet_gan.py`'s ("protonet+gan") in one stage with the noise generator
(`gan_generator="noise"`, `hallucinator_episodes=0`): the GAN the training loop trains jointly with the backbone, as
this benchmark does (the calibrated generator trains only on a frozen embedding, where the backbone is not in the
step). Both are built by `hallucinate.model.build_classifier`. The images are random (speed does not depend on the
pixels or the weights).

Training: one step is one episode of `hallucinate.training.train_episodic`'s loop, in one stage with a meta-batch of
1: the backbone embeds support and query under `hallucinate.device.autocast` at the config's precision ("auto": bf16
where the hardware supports it) in the config's memory format (channels_last); with the GAN and M > 0 the
hallucinator's `training_step` adds M synthetic features per class; the learner's logits and loss, backward, and the
guarded Adam step (`step_if`); then, with the GAN, its critic's losses, backward and step. The loop's running metric
sums and learning-rate schedule are left out. Each sweep moves one setting from the defaults 20-way 1-shot 5-query,
M = 5 (the GAN only):
- N-way 5, 10, 20, 40, 60 and K-shot 1, 2, 5, 10, 20, for both models;
- M 0, 5, 10, 20, 50, 100 for the GAN alone (M = 0: no synthetic example and no hallucinator or critic step, as the
  loop trains a model whose n_synthetic is 0).
Time is the median over `--rounds` rounds of `--steps` steps each, every step timed alone (the device synchronized
around it); every point takes two untimed warm-up steps first, and the rounds go through all the points in turn, so
that a change in machine load hits them all alike.
Memory, measured on untimed steps after the warm-up:
- saved bytes (every device): the bytes of the distinct storages autograd saves for backward during the step
  (`torch.autograd.graph.saved_tensors_hooks`), the model's parameters left out: the activations the step keeps,
  summed over its backward passes (the learner's and, with the GAN, the critic's, whose graph is built after the
  first is freed); the tables and the plot report it on a CPU;
- peak bytes (CUDA only): `torch.cuda.max_memory_allocated` during the step minus what was allocated before it (the
  weights and the optimizer state; the gradients are cleared first), which the tables and the plot report on CUDA.

Evaluation: `hallucinate.evaluation.evaluate`, 5-way 1-shot 15-query, float32 (as `hallucinate eval` by default), of
100, 300, 1000 and 3000 episodes handed a feature bank already built, as when the bank cache is hit: the episodes'
part, with the GAN hallucinating M = 5 features per class; the median over the rounds. The bank is paid once: the
time `embed_split` takes to embed a split the shape of Omniglot's test split (1692 classes of 20 images) is
reported beside it.

A growth exponent is the slope of log(time) (or log(memory)) against log(the swept setting), `numpy.polyfit` over
the points where the setting is above 0: under 0.9 "sub-linear", over 1.1 "super-linear", else "linear". A cost
that does not depend on the setting (the backbone's, against M; the query images', against K) pulls it below 1: the
tables give the times and the images each episode embeds, to tell a fixed cost plus a linear part from the rest.

Prints the run header, one JSON line per measured point, a Markdown table per sweep with the exponents under it, and
last one JSON summary line; writes every number to `--out` and the figure (time above, memory below, one column per
sweep) to `--plot`. `--quick` measures two or three points per sweep, one step each, for the test.
"""
import argparse
import dataclasses
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from hallucinate.data import DATASETS
from hallucinate.device import autocast, resolve_device
from hallucinate.episode import Episode
from hallucinate.evaluation import embed_split, evaluate
from hallucinate.learners import episode_loss
from hallucinate.model import build_classifier
from hallucinate.pipeline import load_pipeline
from hallucinate.plots import pyplot, save_figure
from hallucinate.training import EpisodicConfig
from hallucinate.training.guard import step_if
from hallucinate.training.run_files import write_json_atomic
from run_header import print_run_header  # noqa: E402  (benchmarks/, beside this script)

PIPELINES = Path(__file__).resolve().parent.parent / "pipelines"
DEFAULT_SHAPE = dict(n_way=20, k_shot=1, q_query=5)
DEFAULT_SYNTHETIC = 5
SWEEPS = {"n_way": [5, 10, 20, 40, 60], "k_shot": [1, 2, 5, 10, 20], "n_synthetic": [0, 5, 10, 20, 50, 100]}
QUICK_SWEEPS = {"n_way": [5, 10], "k_shot": [1, 2], "n_synthetic": [0, 10, 100]}
EPISODES, QUICK_EPISODES = [100, 300, 1000, 3000], [10, 30]
EVAL_SHAPE = dict(n_way=5, k_shot=1, q_query=15)
BANK_CLASSES, QUICK_BANK_CLASSES, IMAGES_PER_CLASS = 1692, 20, 20
WARMUP_STEPS = 2
LABELS = {"n_way": "N-way", "k_shot": "K-shot", "n_synthetic": "M (synthetic per class)",
          "episodes": "evaluation episodes"}


@dataclasses.dataclass
class Trainer:
    """A model with the two optimizers `train_episodic` gives it, and the generator of its hallucination noise."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    critic_optimizer: torch.optim.Optimizer | None
    rng: torch.Generator


@dataclasses.dataclass
class Point:
    """One training measurement: a series' config with one setting swept, its step times and memory."""

    sweep: str
    series: str
    config: EpisodicConfig
    episode: Episode
    times_ms: list[float] = dataclasses.field(default_factory=list)
    saved_bytes: int = 0
    peak_bytes: int | None = None


class RandomImages:
    """What `embed_split` and `evaluate` read of a store's split (``name``, ``labels``, ``__getitems__`` giving uint8
    ``[H, W, C]`` images), holding ``images_per_class`` random images of each of ``classes`` classes."""

    name = "random"

    def __init__(self, classes: int, images_per_class: int, shape: tuple[int, int, int]):
        self.labels = np.repeat(np.arange(classes), images_per_class)
        self.images = np.random.default_rng(0).integers(0, 256, (len(self.labels), *shape), dtype=np.uint8)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitems__(self, indices: list[int]) -> list[tuple[np.ndarray, int]]:
        return [(self.images[i], int(self.labels[i])) for i in indices]


def series_configs() -> dict[str, EpisodicConfig]:
    plain = load_pipeline(PIPELINES / "omniglot_protonet.py").CONFIG
    gan = load_pipeline(PIPELINES / "omniglot_protonet_gan.py").CONFIG
    return {"protonet": dataclasses.replace(plain, n_synthetic=0, **DEFAULT_SHAPE),
            "protonet+gan": dataclasses.replace(gan, gan_generator="noise", hallucinator_episodes=0,
                                                n_synthetic=DEFAULT_SYNTHETIC, **DEFAULT_SHAPE)}


def build_trainer(config: EpisodicConfig, device: torch.device) -> Trainer:
    torch.manual_seed(config.seed)
    model = build_classifier(config).to(device).train()
    critic = model.hallucinator.critic_parameters() if model.hallucinator is not None else []
    critic_ids = {id(p) for p in critic}
    optimizer = torch.optim.Adam([p for p in model.parameters() if id(p) not in critic_ids], lr=config.lr)
    critic_optimizer = torch.optim.Adam(critic, lr=config.critic_lr, betas=(0.5, 0.9)) if critic else None
    return Trainer(model, optimizer, critic_optimizer, torch.Generator(device=device).manual_seed(config.seed))


def random_episode(config: EpisodicConfig, device: torch.device) -> Episode:
    n_way, k_shot, q_query = config.n_way, config.k_shot, config.q_query
    size = config.image_size
    images = torch.rand(n_way * (k_shot + q_query), DATASETS[config.dataset].CHANNELS, size, size, device=device)
    ways = torch.arange(n_way, device=device)
    return Episode(images[:n_way * k_shot], ways.repeat_interleave(k_shot), images[n_way * k_shot:],
                   ways.repeat_interleave(q_query), ways)


def training_step(trainer: Trainer, config: EpisodicConfig, episode: Episode, device: torch.device) -> None:
    """One episode of `train_episodic`'s loop (one stage, meta-batch 1), its metric sums and schedule left out."""
    model, n_way = trainer.model, config.n_way
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    images = torch.cat([episode.support, episode.query]).contiguous(memory_format=memory_format)
    with autocast(device, config.precision):
        features = model.embed(images).float()
    support, query = features[:len(episode.support)], features[len(episode.support):]
    support_labels, support_weights = episode.support_labels, None
    losses, critic_losses = {}, None
    if model.hallucinator is not None and config.n_synthetic > 0:
        step = model.hallucinator.training_step(support, support_labels, query, episode.query_labels, n_way=n_way,
                                                n_per_class=config.n_synthetic, rng=trainer.rng,
                                                class_ids=episode.class_ids)
        support, support_labels, support_weights = step.support, step.support_labels, step.support_weights
        losses.update(step.losses)
        critic_losses = step.critic_losses
    logits = model.learner(support, support_labels, query, support_weights, n_way=n_way)
    losses["classification"] = episode_loss(model.learner, logits, episode.query_labels)
    loss = sum(losses.values())
    trainer.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    step_if(torch.isfinite(loss), trainer.optimizer)
    if critic_losses is not None:
        critic_loss = sum(critic_losses().values())
        trainer.critic_optimizer.zero_grad(set_to_none=True)
        critic_loss.backward()
        step_if(torch.isfinite(critic_loss), trainer.critic_optimizer)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def elapsed_seconds(work, device: torch.device) -> float:
    synchronize(device)
    began = time.perf_counter()
    work()
    synchronize(device)
    return time.perf_counter() - began


def saved_bytes(work, model: torch.nn.Module) -> int:
    """Bytes of the distinct storages autograd saves for backward while ``work`` runs, ``model``'s parameters left
    out."""
    parameters = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        saved.setdefault(storage.data_ptr(), storage)  # held to the end: no address is reused by another storage
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        work()
    return sum(storage.nbytes() for address, storage in saved.items() if address not in parameters)


def peak_bytes(work, device: torch.device) -> int:
    synchronize(device)
    before = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    work()
    synchronize(device)
    return torch.cuda.max_memory_allocated(device) - before


def growth(values: list[float], measured: list[float]) -> dict:
    """The log-log slope of ``measured`` against ``values`` over the values above 0, and its name."""
    pairs = [(v, m) for v, m in zip(values, measured) if v > 0]
    slope = float(np.polyfit(np.log([v for v, _ in pairs]), np.log([m for _, m in pairs]), 1)[0])
    return {"exponent": slope, "grows": "sub-linear" if slope < 0.9 else "super-linear" if slope > 1.1 else "linear"}


def fit_growths(rows: list[dict], memory_key: str) -> dict:
    """`growth` of each series in each sweep: of its time, and of its memory in the training sweeps."""
    growths = {}
    for sweep, series in dict.fromkeys((row["sweep"], row["series"]) for row in rows):
        measured = {"time": "seconds"} if sweep == "episodes" else {"time": "ms_per_step", "memory": memory_key}
        series_rows = [row for row in rows if row["sweep"] == sweep and row["series"] == series]
        growths.setdefault(sweep, {})[series] = {
            kind: growth([row[sweep] for row in series_rows], [row[key] for row in series_rows])
            for kind, key in measured.items()}
    return growths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, help="timed steps per point and round (default 5; 1 with --quick)")
    parser.add_argument("--rounds", type=int, help="rounds through every point (default 3; 1 with --quick)")
    parser.add_argument("--device", help="cpu, cuda, cuda:1 (default: cuda when available, else cpu)")
    parser.add_argument("--out", default="docs/scaling.json", help="every measurement (default docs/scaling.json)")
    parser.add_argument("--plot", default="docs/scaling.png", help="the figure (default docs/scaling.png)")
    parser.add_argument("--quick", action="store_true", help="two or three points per sweep, one step: for the test")
    args = parser.parse_args()
    steps = args.steps if args.steps is not None else 1 if args.quick else 5
    rounds = args.rounds if args.rounds is not None else 1 if args.quick else 3
    if min(steps, rounds) < 1:
        parser.error(f"--steps and --rounds must be at least 1, got {steps} and {rounds}")
    device = resolve_device(args.device)
    sweeps, episode_counts = (QUICK_SWEEPS, QUICK_EPISODES) if args.quick else (SWEEPS, EPISODES)
    bank_classes = QUICK_BANK_CLASSES if args.quick else BANK_CLASSES
    memory_key = "peak_bytes" if device.type == "cuda" else "saved_bytes"
    start = print_run_header(f"device {device}; {steps} timed steps x {rounds} rounds per point; memory reported: "
                             f"{memory_key}")
    if device.type == "cuda":  # as the training loop: one shape per point, cuDNN picks its kernels once
        torch.backends.cudnn.benchmark = True

    configs = series_configs()
    trainers = {series: build_trainer(config, device) for series, config in configs.items()}
    points = []
    for sweep, values in sweeps.items():
        for series, base in configs.items():
            if sweep == "n_synthetic" and base.hallucinator == "none":
                continue
            for value in values:
                config = dataclasses.replace(base, **{sweep: value})
                points.append(Point(sweep, series, config, random_episode(config, device)))

    def step(point: Point):
        return lambda: training_step(trainers[point.series], point.config, point.episode, device)

    for point in points:
        trainer = trainers[point.series]
        for _ in range(WARMUP_STEPS):
            step(point)()
        point.saved_bytes = saved_bytes(step(point), trainer.model)
        if device.type == "cuda":
            for optimizer in (trainer.optimizer, trainer.critic_optimizer):
                if optimizer is not None:
                    optimizer.zero_grad(set_to_none=True)
            point.peak_bytes = peak_bytes(step(point), device)

    split = RandomImages(bank_classes, IMAGES_PER_CLASS, (configs["protonet"].image_size,) * 2
                         + (DATASETS[configs["protonet"].dataset].CHANNELS,))
    bank = embed_split(trainers["protonet"].model, split, device=device, precision="fp32")
    eval_times = {(series, count): [] for series in trainers for count in episode_counts}
    bank_times = []

    def evaluation(series: str, count: int):
        model = trainers[series].model
        return lambda: evaluate(model, split, **EVAL_SHAPE, episodes=count, seed=0, device=device,
                                hallucinate=model.hallucinator is not None, precision="fp32", bank=bank)

    for series in trainers:
        evaluation(series, episode_counts[0])()

    for round_number in range(1, rounds + 1):
        for point in points:
            point.times_ms += [1000 * elapsed_seconds(step(point), device) for _ in range(steps)]
        for series, count in eval_times:
            eval_times[series, count].append(elapsed_seconds(evaluation(series, count), device))
        bank_times.append(elapsed_seconds(lambda: embed_split(trainers["protonet"].model, split, device=device,
                                                      precision="fp32"), device))
        print(f"round {round_number}/{rounds} done ({time.perf_counter() - start:.0f} s)", file=sys.stderr)

    rows = [{"sweep": p.sweep, "series": p.series, "n_way": p.config.n_way, "k_shot": p.config.k_shot,
             "q_query": p.config.q_query, "n_synthetic": p.config.n_synthetic,
             "images": p.config.n_way * (p.config.k_shot + p.config.q_query),
             "ms_per_step": statistics.median(p.times_ms), "saved_bytes": p.saved_bytes, "peak_bytes": p.peak_bytes}
            for p in points]
    rows += [{"sweep": "episodes", "series": series, **EVAL_SHAPE, "episodes": count,
              "n_synthetic": configs[series].n_synthetic, "seconds": statistics.median(times),
              "ms_per_episode": 1000 * statistics.median(times) / count}
             for (series, count), times in eval_times.items()]
    bank_row = {"images": len(split), "classes": bank_classes, "seconds": statistics.median(bank_times)}
    for row in rows:
        print(json.dumps(row))
    print(json.dumps({"sweep": "bank", **bank_row}))

    growths = fit_growths(rows, memory_key)
    print_tables(rows, growths, bank_row, memory_key)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out, {"command": " ".join(sys.argv), "device": str(device), "threads": torch.get_num_threads(),
                            "steps": steps, "rounds": rounds, "warmup_steps": WARMUP_STEPS,
                            "defaults": {**DEFAULT_SHAPE, "n_synthetic": DEFAULT_SYNTHETIC},
                            "evaluation": EVAL_SHAPE, "memory_reported": memory_key, "points": rows,
                            "bank": bank_row, "growth": growths})
    plot(rows, bank_row, memory_key, Path(args.plot))
    print(json.dumps({"out": str(out), "plot": args.plot, "device": str(device), "memory_reported": memory_key,
                      "growth": {sweep: {series: {kind: g["exponent"] for kind, g in kinds.items()}
                                         for series, kinds in by_series.items()}
                                 for sweep, by_series in growths.items()},
                      "bank_seconds": bank_row["seconds"], "wall_s": time.perf_counter() - start}))


def print_tables(rows: list[dict], growths: dict, bank_row: dict, memory_key: str) -> None:
    memory_name = "peak MiB" if memory_key == "peak_bytes" else "saved MiB"
    for sweep, by_series in growths.items():
        series_names = list(by_series)
        sweep_rows = [row for row in rows if row["sweep"] == sweep]
        values = sorted({row[sweep] for row in sweep_rows})
        cell = {(row["series"], row[sweep]): row for row in sweep_rows}
        if sweep == "episodes":
            header = [LABELS[sweep], *(f"{s} s" for s in series_names), *(f"{s} ms/episode" for s in series_names)]
            lines = [[f"{v:,}", *(f"{cell[s, v]['seconds']:.3f}" for s in series_names),
                      *(f"{cell[s, v]['ms_per_episode']:.2f}" for s in series_names)] for v in values]
        else:
            header = [LABELS[sweep], "images", *(f"{s} ms" for s in series_names),
                      *(f"{s} {memory_name}" for s in series_names)]
            lines = [[str(v), str(next(cell[s, v]["images"] for s in series_names if (s, v) in cell)),
                      *(f"{cell[s, v]['ms_per_step']:.1f}" for s in series_names),
                      *(f"{cell[s, v][memory_key] / 2 ** 20:.2f}" for s in series_names)] for v in values]
        print(f"\n### {LABELS[sweep]}\n")
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for line in lines:
            print("| " + " | ".join(line) + " |")
        print("\ngrowth exponents (log-log slope): " + "; ".join(
            f"{series} " + ", ".join(f"{kind} {g['exponent']:.2f} ({g['grows']})" for kind, g in by.items())
            for series, by in by_series.items()))
    print(f"\nthe feature bank, paid once: embedding {bank_row['images']:,} images ({bank_row['classes']} classes) "
          f"takes {bank_row['seconds']:.2f} s")


def plot(rows: list[dict], bank_row: dict, memory_key: str, path: Path) -> None:
    plt = pyplot()
    colors = {series: f"C{index}" for index, series in enumerate(dict.fromkeys(row["series"] for row in rows))}
    figure, axes = plt.subplots(2, len(LABELS), figsize=(4 * len(LABELS), 7), squeeze=False)
    for column, sweep in enumerate(LABELS):
        time_axis, memory_axis = axes[0, column], axes[1, column]
        for series, color in colors.items():
            series_rows = sorted((r for r in rows if r["sweep"] == sweep and r["series"] == series),
                                 key=lambda r: r[sweep])
            x = [r[sweep] for r in series_rows]
            if sweep == "episodes":
                time_axis.plot(x, [r["seconds"] for r in series_rows], marker="o", color=color, label=series)
            elif series_rows:
                time_axis.plot(x, [r["ms_per_step"] for r in series_rows], marker="o", color=color, label=series)
                memory_axis.plot(x, [r[memory_key] / 2 ** 20 for r in series_rows], marker="o", color=color,
                                 label=series)
        if sweep == "episodes":
            time_axis.axhline(bank_row["seconds"], color="grey", linestyle="--",
                              label=f"embedding the bank once ({bank_row['images']:,} images)")
            time_axis.set(ylabel="seconds", title="evaluation (bank built)")
            memory_axis.axis("off")
        else:
            time_axis.set(ylabel="ms per training step", title=f"training against {LABELS[sweep]}")
            memory_axis.set(xlabel=LABELS[sweep], ylabel="peak MiB" if memory_key == "peak_bytes"
                            else "MiB saved for backward")
            memory_axis.set_ylim(bottom=0)
            memory_axis.grid(alpha=0.3)
            memory_axis.legend(fontsize=7)
        time_axis.set(xlabel=LABELS[sweep])
        time_axis.set_ylim(bottom=0)  # from 0, so that a line through the origin reads as proportional
        time_axis.grid(alpha=0.3)
        time_axis.legend(fontsize=7)
    save_figure(figure, path)


if __name__ == "__main__":
    main()
