"""Base training of the few-shot detector (TFA's first stage): Faster R-CNN on canvases of the 100 base classes
generated on the fly, SGD with momentum, a linear warm-up and a tenfold decay; a bAP50 on fixed validation canvases
every ``val_every`` steps; checkpoints to resume from, metrics files, and the NaN guard the other loops use.

The validation canvases are new layouts of the training drawers' drawings (the test drawers are kept for the test
canvases), so the number watches training; no weights are chosen by it: the run's last weights are its result."""
import time
from collections import OrderedDict
from pathlib import Path

import torch
from torch.nn import functional as F
from tqdm import tqdm

from ..device import autocast, resolve_device
from ..training import distributed
from ..training.checkpoint import CheckpointError, save_checkpoint
from ..training.guard import SkipCounter, step_if
from ..training.loss_meter import LossMeter
from ..training.run_files import append_row, load_for_resume, restart_log, write_json_atomic
from .canvases import BASE_LABELS, NUM_BASE_CLASSES, BaseCanvases, collate_canvases, load_glyphs
from .config import DetectionConfig
from .evaluation import detection_ap
from .model import build_detector, check_targets

TRAIN_SEED, VAL_SEED = 1402386511, 3306541795  # base canvases: training ones (plus the run's seed), validation ones
PRETRAIN_SEED = 2620128917  # the pre-training canvases (plus the run's seed)
WARMUP_START = 0.001  # the warm-up's first learning rate, as a fraction of lr (detectron2's warmup_factor)


def base_canvases(config: DetectionConfig, glyphs) -> tuple[BaseCanvases, BaseCanvases]:
    """The run's training canvases (as many as it uses) and its validation canvases, both of the train drawers."""
    return (BaseCanvases(glyphs, size=config.steps * config.batch_size, seed=TRAIN_SEED + config.seed),
            BaseCanvases(glyphs, size=config.val_canvases, seed=VAL_SEED))


def pretrain_box_classifier(config: DetectionConfig, detector, glyphs, *, device: torch.device,
                            progress: bool = True) -> list[dict]:
    """Train ``detector``'s backbone, box head and classifier (in place) for ``pretrain_steps`` steps to name the
    base character in each ground-truth box of base canvases (their own stream, not the training canvases'): the
    box classifier alone, with no proposals and no background, so it learns the 100 classes before the detector's
    losses (three background RoIs in four) dilute them, as detectors start from a classifier's backbone. Adam;
    returns a row of loss and accuracy every 100 steps."""
    canvases = BaseCanvases(glyphs, size=config.pretrain_steps * config.batch_size, seed=PRETRAIN_SEED + config.seed)
    loader = torch.utils.data.DataLoader(canvases, batch_size=config.batch_size, num_workers=config.num_workers,
                                         collate_fn=collate_canvases)
    heads = detector.roi_heads
    parameters = [*detector.backbone.parameters(), *heads.box_head.parameters(), *heads.box_predictor.parameters()]
    optimizer = torch.optim.Adam(parameters, lr=config.pretrain_lr)
    detector.to(device).train()
    history, correct, seen = [], 0, 0
    for step, (images, targets) in enumerate(tqdm(loader, desc="pre-train box classifier", unit=" steps",
                                                  disable=not progress), start=1):
        batch, targets = detector.transform([image.to(device) for image in images],
                                            [{key: value.to(device) for key, value in t.items()} for t in targets])
        with autocast(device, config.precision):
            maps = OrderedDict([("0", detector.backbone(batch.tensors))])
            features = heads.box_head(heads.box_roi_pool(maps, [t["boxes"] for t in targets], batch.image_sizes))
        scores, _ = heads.box_predictor(features)
        labels = torch.cat([t["labels"] for t in targets])
        loss = F.cross_entropy(scores, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        correct, seen = correct + int((scores.argmax(dim=1) == labels).sum()), seen + len(labels)
        if step % 100 == 0 or step == config.pretrain_steps:
            history.append({"pretrain_step": step, "loss": float(loss.detach()), "accuracy": 100 * correct / seen})
            correct, seen = 0, 0
    return history


def learning_rate_factor(config: DetectionConfig, step: int) -> float:
    """The learning rate of step ``step`` (0-based) as a fraction of ``config.lr``: a linear warm-up from
    `WARMUP_START` over ``warmup_steps``, then 1, then 0.1 from ``lr_decay_at * steps`` on."""
    factor = 0.1 if step >= config.lr_decay_at * config.steps else 1.0
    if step < config.warmup_steps:
        factor *= WARMUP_START + (1 - WARMUP_START) * step / config.warmup_steps
    return factor


def train_base_detector(config: DetectionConfig, detector, train_canvases: BaseCanvases, val_canvases: BaseCanvases,
                        *, out_dir: Path, device: torch.device, resume: bool = False, progress: bool = True) -> dict:
    """Train ``detector`` for ``config.steps`` steps of ``config.batch_size`` canvases of ``train_canvases`` (canvas
    ``step * batch_size + j`` at step ``step``, so a resumed run sees the canvases an unbroken one would); measure
    bAP50 on ``val_canvases`` every ``val_every`` steps; checkpoint every ``checkpoint_every`` steps to
    ``out_dir/checkpoint.pt``; append metrics to ``out_dir/metrics.jsonl``; return (and write to
    ``out_dir/metrics.json``) the run's summary. A step whose loss is NaN or inf changes no weight;
    ``config.max_nonfinite_steps`` of them in a row stop the run (`NonFiniteLossError`)."""
    if distributed.world_size() > 1:
        raise ValueError("detection trains in one process; start it without torchrun")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    checkpoint_path, log_path = out_dir / "checkpoint.pt", out_dir / "metrics.jsonl"
    detector.to(device)
    optimizer = torch.optim.SGD(detector.parameters(), lr=config.lr, momentum=config.momentum,
                                weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: learning_rate_factor(config, step))

    start, history = 0, []
    if resume:
        state = load_for_resume(checkpoint_path, config, ignore=())
        if state.get("task") != config.task:
            raise CheckpointError(f"cannot resume {checkpoint_path}: it is not a detection checkpoint")
        detector.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        start, history = state["step"], state["metrics"]
    restart_log(log_path, history)

    loader = torch.utils.data.DataLoader(
        train_canvases, batch_size=config.batch_size, num_workers=config.num_workers, collate_fn=collate_canvases,
        sampler=range(start * config.batch_size, config.steps * config.batch_size))
    batches = iter(loader)  # draws the loader's seed from torch's stream: before that stream is restored
    if resume:
        torch.set_rng_state(state["rng"]["torch"])  # RPN and RoI sampling draw from it
    skips = SkipCounter(config.max_nonfinite_steps, device)
    meter, run_start = LossMeter(), time.perf_counter()

    def checkpoint(step: int) -> None:
        save_checkpoint(checkpoint_path, {
            "task": config.task, "config": config.as_dict(), "model": detector.state_dict(),
            "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(),
            "rng": {"torch": torch.get_rng_state()}, "step": step, "metrics": history})

    def record(row: dict) -> None:
        history.append(row)
        append_row(log_path, row)

    detector.train()
    bar = tqdm(total=config.steps, initial=start, desc="train detector", unit=" steps", disable=not progress)
    for step, (images, targets) in enumerate(batches, start=start + 1):
        check_targets(images, targets, num_classes=NUM_BASE_CLASSES)
        images = [image.to(device) for image in images]
        targets = [{key: value.to(device) for key, value in target.items()} for target in targets]
        with autocast(device, config.precision):
            losses = detector(images, targets)
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
                   "canvases_per_s": steps * config.batch_size / seconds, "skipped_steps": skips.take()}
            record(row)
            skips.check(counts, step - steps + 1, step)
            bar.set_postfix(loss=sum(value for key, value in row.items() if key.startswith("loss_") and value))
        if step % config.val_every == 0 or step == config.steps:
            validation_start = time.perf_counter()
            result = detection_ap(detector, val_canvases, novel_labels=(), base_labels=BASE_LABELS, device=device,
                                  precision=config.precision)
            record({"step": step, "val_base_ap50": result.base_ap50, "val_map": result.map})
            bar.set_postfix(val_bap50=f"{result.base_ap50:.1f}")
            detector.train()
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


def run_detection(config: DetectionConfig, *, out: str | Path, resume: bool = False, data_root=None,
                  cache_dir=None, device: str | None = None, progress: bool = True) -> dict:
    """Train the base detector ``config`` describes: its box classifier pre-trained on ground-truth boxes first
    (unless resuming, when the checkpoint holds every weight), then the whole detector on base canvases. ``cache_dir`` is
    not used: canvases are generated, never stored."""
    glyphs = load_glyphs("train", data_root)
    train_canvases, val_canvases = base_canvases(config, glyphs)
    device = resolve_device(device)
    torch.manual_seed(config.seed)
    detector = build_detector(num_classes=NUM_BASE_CLASSES, width=config.width,
                              representation_size=config.representation_size, predictor="fc")
    if config.pretrain_steps and not resume:
        pretrain = pretrain_box_classifier(config, detector, glyphs, device=device, progress=progress)
        Path(out).mkdir(parents=True, exist_ok=True)
        write_json_atomic(Path(out) / "pretrain.json", pretrain)
    return train_base_detector(config, detector, train_canvases, val_canvases, out_dir=Path(out), device=device,
                               resume=resume, progress=progress)
