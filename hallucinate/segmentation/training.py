"""Training a few-shot segmenter on Cluttered Omniglot scenes generated on the fly, with its hallucinator trained
jointly by the segmentation loss: Adam, validation on a fixed set every ``val_every`` steps keeping the best weights,
checkpoints to resume from, metrics files, and the NaN guard the classification loop uses."""
import time
from pathlib import Path

import torch
from torch.nn import functional as F
from tqdm import tqdm

from ..device import resolve_device
from ..training import distributed
from ..training.checkpoint import CheckpointError, save_checkpoint
from ..training.guard import SkipCounter, step_if
from ..training.loss_meter import LossMeter
from ..training.run_files import append_row, load_for_resume, restart_log, write_json_atomic
from .config import SegmentationConfig
from .evaluation import evaluate
from .metric import iou_per_image, predicted_masks
from .model import PrototypeSegmenter, alignment_loss, build_segmenter
from .scenes import SUBSETS, ClutteredOmniglot, FixedScenes, evaluation_scenes, fixed_scenes, load_glyphs, model_inputs


def training_scenes(config: SegmentationConfig, glyphs) -> ClutteredOmniglot:
    """The train subset's scenes at ``config.clutter``, as many as the run uses, seeded by the subset and the run."""
    return ClutteredOmniglot(glyphs, clutter=config.clutter, size=config.steps * config.batch_size,
                             seed=SUBSETS["train"].seed + config.seed, k_shot=config.k_shot,
                             same_drawer=config.same_drawer)


def training_losses(config: SegmentationConfig, model: PrototypeSegmenter, batch: dict, device: torch.device,
                    rng: torch.Generator) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """One step's losses (cross-entropy against the target's mask; PANet's alignment loss when it has a weight)
    and the foreground logits ``[B, 2, 96, 96]`` they came from."""
    support, support_masks, query, query_masks = model_inputs(batch, device)
    support_features = model.embed(support.flatten(0, 1)).unflatten(0, support.shape[:2])
    query_features = model.embed(query)
    scores = model.scores(support_features, support_masks, query_features[:, None], rng)[:, 0]
    logits = model.decode(scores, query)
    losses = {"segmentation": F.cross_entropy(logits, query_masks.long())}
    if config.alignment_weight > 0:
        losses["alignment"] = config.alignment_weight * alignment_loss(query_features, scores, support_features,
                                                                       support_masks, model.scale)
    return losses, logits


def train_segmenter(config: SegmentationConfig, model: PrototypeSegmenter, train_scenes: ClutteredOmniglot,
                    val_scenes: FixedScenes, *, out_dir: Path, device: torch.device, resume: bool = False,
                    progress: bool = True) -> dict:
    """Train ``model`` for ``config.steps`` steps of ``config.batch_size`` scenes of ``train_scenes`` (scene
    ``step * batch_size + j`` at step ``step``, so a resumed run sees the scenes an unbroken one would); validate on
    ``val_scenes`` every ``val_every`` steps and keep the best weights; checkpoint every ``checkpoint_every`` steps
    to ``out_dir/checkpoint.pt``; append metrics to ``out_dir/metrics.jsonl``; return (and write to
    ``out_dir/metrics.json``) the run's summary. A step whose loss is NaN or inf changes no weight;
    ``config.max_nonfinite_steps`` of them in a row stop the run (`NonFiniteLossError`)."""
    if distributed.world_size() > 1:
        raise ValueError("segmentation trains in one process; start it without torchrun")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    checkpoint_path, log_path = out_dir / "checkpoint.pt", out_dir / "metrics.jsonl"
    model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    rng = torch.Generator(device=device).manual_seed(config.seed)

    start, history, best = 0, [], {"val_iou": -1.0, "step": 0, "model": None}
    if resume:
        state = load_for_resume(checkpoint_path, config, ignore=("steps",))
        if state.get("task") != config.task:
            raise CheckpointError(f"cannot resume {checkpoint_path}: it is not a segmentation checkpoint")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        rng.set_state(state["rng"]["hallucination"])
        torch.set_rng_state(state["rng"]["torch"])
        start, history = state["step"], state["metrics"]
        best = {"val_iou": state["best_val_iou"], "step": state["best_step"], "model": state["best_model"]}
    restart_log(log_path, history)

    batch_size = config.batch_size
    loader = torch.utils.data.DataLoader(train_scenes, batch_size=batch_size, num_workers=config.num_workers,
                                         sampler=range(start * batch_size, config.steps * batch_size),
                                         pin_memory=device.type == "cuda")
    skips = SkipCounter(config.max_nonfinite_steps, device)
    meter, run_start = LossMeter(), time.perf_counter()

    def checkpoint(step: int) -> None:
        save_checkpoint(checkpoint_path, {
            "task": config.task, "config": config.as_dict(), "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "rng": {"hallucination": rng.get_state(), "torch": torch.get_rng_state()}, "step": step,
            "metrics": history, "best_val_iou": best["val_iou"], "best_step": best["step"],
            "best_model": best["model"] if best["model"] is not None else model.state_dict()})

    def record(row: dict) -> None:
        history.append(row)
        append_row(log_path, row)

    model.train()
    bar = tqdm(total=config.steps, initial=start, desc="train segmenter", unit=" steps", disable=not progress)
    for step, batch in enumerate(loader, start=start + 1):
        losses, logits = training_losses(config, model, batch, device, rng)
        loss = sum(losses.values())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        ok = torch.isfinite(loss)
        step_if(ok, optimizer)
        skips.update(~ok, step)

        losses["iou"] = iou_per_image(predicted_masks(logits.detach()), batch["query_mask"].to(device)).mean()
        meter.add(losses)
        bar.update()

        if step % config.log_every == 0 or step == config.steps:
            means, counts, steps, seconds = meter.take()
            row = {"step": step, **means, "scenes_per_s": steps * batch_size / seconds, "skipped_steps": skips.take()}
            record(row)
            skips.check(counts, step - steps + 1, step)
            bar.set_postfix(loss=row["segmentation"], iou=row["iou"])
        if step % config.val_every == 0 or step == config.steps:
            validation_start = time.perf_counter()
            result = evaluate(model, val_scenes, hallucinate=model.hallucinating, device=device, seed=config.seed)
            summary = result.as_dict()
            record({"step": step, "val_iou": summary["iou"], "val_ci95": summary["ci95"],
                    "val_localisation": summary["localisation"]})
            if summary["iou"] > best["val_iou"]:
                best = {"val_iou": summary["iou"], "step": step,
                        "model": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}}
            bar.set_postfix(val_iou=f"{summary['iou']:.2f}")
            meter.leave_out(time.perf_counter() - validation_start)
        if step % config.checkpoint_every == 0 or step == config.steps:
            checkpoint(step)
    bar.close()

    summary = {"config": config.as_dict(), "steps": config.steps, "best_val_iou": best["val_iou"],
               "best_step": best["step"], "wall_time_s_this_session": time.perf_counter() - run_start,
               "history": history}
    write_json_atomic(out_dir / "metrics.json", summary)
    return summary


def run_segmentation(config: SegmentationConfig, *, out: str | Path, resume: bool = False, data_root=None,
                     cache_dir=None, device: str | None = None, progress: bool = True) -> dict:
    """Train the segmenter ``config`` describes on the train subset at ``config.clutter``, validating on the first
    ``val_images`` scenes of ``val_subset``. ``cache_dir`` is not used: scenes are generated, never stored."""
    if config.val_subset == "train" or config.val_subset not in SUBSETS:
        raise ValueError(f"val_subset must be one of {', '.join(name for name in SUBSETS if name != 'train')}, "
                         f"got {config.val_subset!r}")
    val_dataset = evaluation_scenes(load_glyphs(config.val_subset, data_root), clutter=config.clutter,
                                    size=config.val_images, k_shot=config.k_shot, same_drawer=config.same_drawer)
    train_dataset = training_scenes(config, load_glyphs("train", data_root))
    torch.manual_seed(config.seed)
    model = build_segmenter(config)
    return train_segmenter(config, model, train_dataset, fixed_scenes(val_dataset), out_dir=Path(out),
                           device=resolve_device(device), resume=resume, progress=progress)
