"""Attention-RPN's 2-way contrastive training (Fan et al., CVPR 2020) on Omniglot-Det's base classes: episodes
generated on the fly, each a base query canvas, a positive class (present on it) and a negative one (absent), each
given by ``support_shots`` support canvases; SGD with momentum, a linear warm-up and a tenfold decay; a few-shot
base AP50 on fixed validation canvases every ``val_every`` steps; checkpoints to resume from, metrics files, and the
NaN guard the other loops use. Optionally warm-started from a base detector's backbone (the TFA pipeline's).

Everything is drawn by the train drawers (the test drawers are kept for the test canvases); no weights are chosen on
validation: the run's last weights are its result."""
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..device import autocast, resolve_device
from ..training import distributed
from ..training.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from ..training.guard import SkipCounter, step_if
from ..training.loss_meter import LossMeter
from ..training.run_files import append_row, load_for_resume, restart_log, write_json_atomic
from .attention_config import AttentionRPNConfig
from .attention_evaluation import validation_ap
from .attention_rpn import build_attention_rpn, support_windows, warm_start
from .canvases import NUM_BASE_CLASSES, BaseCanvases, Glyphs, KShotCanvases, compose_canvas, load_glyphs
from .canvases import distractors

TRAIN_SEED, VAL_SEED = 1876142397, 3306541795  # episodes (plus the run's seed); validation canvases (TFA's)
WARMUP_START = 0.001  # the warm-up's first learning rate, as a fraction of lr (detectron2's warmup_factor)


def _tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image).float().div_(255).unsqueeze(0)


class ContrastiveEpisodes(torch.utils.data.Dataset):
    """Episode ``i``: ``(query [1, 96, 96], target, positive windows [K, 1, S, S], positive boxes [K, 4], negative
    windows, negative boxes)``. The query is base canvas ``i`` of ``BaseCanvases(glyphs, seed=seed)``; its target
    holds the boxes of one of its classes, the positive (label 1); the negative is a base class not on it. Each
    class's K support canvases have one annotated character of it, by K different drawers, and 0-3 distractors, as
    the K-shot sets' canvases; their boxes are cut out with `support_windows`. All drawn from the seed
    ``(seed, i)``."""

    def __init__(self, glyphs: Glyphs, *, size: int, seed: int, shots: int):
        if glyphs.split != "train":
            raise ValueError(f"training episodes are drawn by the train drawers: load_glyphs('train'), not "
                             f"{glyphs.split!r}")
        if not 1 <= shots <= len(glyphs.drawers):
            raise ValueError(f"support_shots must be 1..{len(glyphs.drawers)} (one drawer a shot), got {shots}")
        self.queries = BaseCanvases(glyphs, size=size, seed=seed)
        self.glyphs, self.seed, self.shots = glyphs, seed, shots

    def __len__(self) -> int:
        return len(self.queries)

    def _support(self, class_id: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        images, boxes = [], []
        for drawer in rng.choice(len(self.glyphs.drawers), self.shots, replace=False):
            canvas = compose_canvas(self.glyphs, [(class_id, int(drawer))] + distractors(self.glyphs, rng), rng)
            images.append(_tensor(canvas.image))
            boxes.append(torch.from_numpy(canvas.boxes[canvas.characters == class_id]).float())
        return support_windows(images, boxes)

    def __getitem__(self, index: int):
        canvas = self.queries.canvas(index)
        rng = np.random.default_rng([self.seed, index])
        present = np.unique(canvas.characters[canvas.labelled])
        positive = int(rng.choice(present))
        negative = int(rng.choice(np.setdiff1d(np.arange(NUM_BASE_CLASSES), present)))
        boxes = torch.from_numpy(canvas.boxes[canvas.characters == positive]).float()
        target = {"boxes": boxes, "labels": torch.ones(len(boxes), dtype=torch.long)}
        return (_tensor(canvas.image), target, *self._support(positive, rng), *self._support(negative, rng))


def collate_episodes(batch: list) -> tuple:
    """Episodes -> ``(images, targets, positive windows [B, K, 1, S, S], positive boxes [B, K, 4], negative
    windows, negative boxes)``."""
    images, targets, *supports = zip(*batch)
    return (list(images), list(targets), *(torch.stack(part) for part in supports))


def learning_rate_factor(config: AttentionRPNConfig, step: int) -> float:
    """The learning rate of step ``step`` (0-based) as a fraction of ``config.lr``: a linear warm-up from
    `WARMUP_START` over ``warmup_steps``, then 1, then 0.1 from ``lr_decay_at * steps`` on."""
    factor = 0.1 if step >= config.lr_decay_at * config.steps else 1.0
    if step < config.warmup_steps:
        factor *= WARMUP_START + (1 - WARMUP_START) * step / config.warmup_steps
    return factor


def episode_losses(model, episode: tuple, *, device: torch.device, precision: str) -> dict[str, torch.Tensor]:
    """The model's losses on a collated batch of episodes: the prototypes (the mean of each class's K support
    features) of its positive and negative classes, then `AttentionRPN.losses`."""
    images, targets, positive_windows, positive_boxes, negative_windows, negative_boxes = episode
    episodes, shots = positive_boxes.shape[:2]
    windows = torch.cat([positive_windows, negative_windows]).flatten(0, 1).to(device)
    boxes = torch.cat([positive_boxes, negative_boxes]).flatten(0, 1).to(device)
    with autocast(device, precision):
        features = model.support_features(windows, boxes)
        positive, negative = features.float().view(2, episodes, shots, *features.shape[1:]).mean(dim=2)
        return model.losses([image.to(device) for image in images],
                            [{key: value.to(device) for key, value in t.items()} for t in targets], positive, negative)


def train_attention_rpn(config: AttentionRPNConfig, model, episodes: ContrastiveEpisodes, val_canvases,
                        val_support: KShotCanvases, *, out_dir: Path, device: torch.device, resume: bool = False,
                        progress: bool = True) -> dict:
    """Train ``model`` for ``config.steps`` steps of ``episodes_per_step`` episodes (episode ``step * B + j`` at
    step ``step``, so a resumed run sees the episodes an unbroken one would); measure few-shot base AP50 on
    ``val_canvases`` against ``val_support``'s prototypes every ``val_every`` steps; checkpoint every
    ``checkpoint_every`` steps to ``out_dir/checkpoint.pt``; append metrics to ``out_dir/metrics.jsonl``; return
    (and write to ``out_dir/metrics.json``) the run's summary. A step whose loss is NaN or inf changes no weight;
    ``config.max_nonfinite_steps`` of them in a row stop the run (`NonFiniteLossError`)."""
    if distributed.world_size() > 1:
        raise ValueError("Attention-RPN trains in one process; start it without torchrun")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    checkpoint_path, log_path = out_dir / "checkpoint.pt", out_dir / "metrics.jsonl"
    model.to(device)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=config.lr,
                                momentum=config.momentum, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: learning_rate_factor(config, step))

    start, history = 0, []
    if resume:
        state = load_for_resume(checkpoint_path, config, ignore=())
        if state.get("task") != config.task:
            raise CheckpointError(f"cannot resume {checkpoint_path}: it is not an Attention-RPN checkpoint")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        start, history = state["step"], state["metrics"]
    restart_log(log_path, history)

    batch = config.episodes_per_step
    loader = torch.utils.data.DataLoader(episodes, batch_size=batch, num_workers=config.num_workers,
                                         collate_fn=collate_episodes,
                                         sampler=range(start * batch, config.steps * batch))
    batches = iter(loader)  # draws the loader's seed from torch's stream: before that stream is restored
    if resume:
        torch.set_rng_state(state["rng"]["torch"])  # RPN anchor and foreground RoI sampling draw from it
    skips = SkipCounter(config.max_nonfinite_steps, device)
    meter, run_start = LossMeter(), time.perf_counter()

    def checkpoint(step: int) -> None:
        save_checkpoint(checkpoint_path, {
            "task": config.task, "config": config.as_dict(), "model": model.state_dict(),
            "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(),
            "rng": {"torch": torch.get_rng_state()}, "step": step, "metrics": history})

    def record(row: dict) -> None:
        history.append(row)
        append_row(log_path, row)

    model.train()
    bar = tqdm(total=config.steps, initial=start, desc="train attention-rpn", unit=" steps", disable=not progress)
    for step, episode in enumerate(batches, start=start + 1):
        losses = episode_losses(model, episode, device=device, precision=config.precision)
        loss = sum(losses.values())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        ok = torch.isfinite(loss)
        step_if(ok, optimizer)
        schedule.step()
        skips.update(~ok, step)
        meter.add(losses)
        bar.update()

        if step % config.log_every == 0 or step == config.steps:
            means, counts, steps, seconds = meter.take()
            row = {"step": step, "lr": optimizer.param_groups[0]["lr"], **means,
                   "episodes_per_s": steps * batch / seconds, "skipped_steps": skips.take()}
            record(row)
            skips.check(counts, step - steps + 1, step)
            bar.set_postfix(loss=sum(value for key, value in row.items() if key.startswith("loss_") and value))
        if step % config.val_every == 0 or step == config.steps:
            validation_start = time.perf_counter()
            ap50 = validation_ap(model, val_canvases, val_support, device=device, precision=config.precision)
            record({"step": step, "val_base_ap50": ap50})
            bar.set_postfix(val_bap50=f"{ap50:.1f}")
            meter.leave_out(time.perf_counter() - validation_start)
        if step % config.checkpoint_every == 0 or step == config.steps:
            checkpoint(step)
    bar.close()

    summary = {"config": config.as_dict(), "steps": config.steps,
               "val_base_ap50": next((row["val_base_ap50"] for row in reversed(history) if "val_base_ap50" in row),
                                     None),
               "wall_time_s_this_session": time.perf_counter() - run_start, "history": history}
    write_json_atomic(out_dir / "metrics.json", summary)
    return summary


def prepare(config: AttentionRPNConfig, glyphs: Glyphs) -> tuple:
    """The run's model (warm-started as ``config`` says), episodes, validation canvases (base canvases of the
    train drawers, TFA's validation set) and validation supports (the base classes of the 1-shot set of seed 0)."""
    torch.manual_seed(config.seed)
    model = build_attention_rpn(config)
    if config.init_from:
        warm_start(model, load_checkpoint(config.init_from), frozen_blocks=config.frozen_blocks,
                   source=config.init_from)
    episodes = ContrastiveEpisodes(glyphs, size=config.steps * config.episodes_per_step, seed=TRAIN_SEED + config.seed,
                                   shots=config.support_shots)
    return (model, episodes, BaseCanvases(glyphs, size=config.val_canvases, seed=VAL_SEED),
            KShotCanvases(glyphs, k_shot=1, seed=0))


def run_attention_rpn(config: AttentionRPNConfig, *, out: str | Path, resume: bool = False, data_root=None,
                      cache_dir=None, device: str | None = None, progress: bool = True) -> dict:
    """Train the Attention-RPN model ``config`` describes on base-class episodes. ``cache_dir`` is not used:
    canvases are generated, never stored."""
    model, episodes, val_canvases, val_support = prepare(config, load_glyphs("train", data_root))
    return train_attention_rpn(config, model, episodes, val_canvases, val_support, out_dir=Path(out),
                               device=resolve_device(device), resume=resume, progress=progress)
