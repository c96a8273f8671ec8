"""Baseline / Baseline++ pre-training (Chen et al. 2019): the backbone and a classifier over every base class, trained
on ordinary shuffled mini-batches. Each epoch ends with the episodic validation the finished model is tested with:
its learner fits a new classifier on every episode's support features."""
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from ..device import autocast
from ..evaluation import evaluate
from ..learners.finetune import HEADS, FineTuneClassifier
from .checkpoint import CheckpointError, save_checkpoint
from .config import EpisodicConfig
from .distributed import world_size
from .run_files import append_row, best_so_far, load_for_resume, restart_log, write_json_atomic


def collate_batch(items: list[tuple[np.ndarray, int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """``[(uint8 image [H, W, C], class), ...]`` -> float images ``[B, C, H, W]`` in [0, 1], classes ``[B]``."""
    images = torch.from_numpy(np.stack([image for image, _ in items])).permute(0, 3, 1, 2).float().div_(255)
    return images, torch.tensor([label for _, label in items])


def epoch_loader(split, config: EpisodicConfig, epoch: int, *, pin_memory: bool = False):
    """Epoch ``epoch``'s shuffled mini-batches (the last, incomplete one dropped, so batch norm never sees a batch of
    one); the order depends only on ``(config.seed, epoch)``, so a resumed run sees what an unbroken one would."""
    seed = int(np.random.SeedSequence([config.seed, epoch]).generate_state(1)[0])
    return torch.utils.data.DataLoader(
        split, batch_size=config.pretrain_batch_size, shuffle=True, drop_last=True, collate_fn=collate_batch,
        generator=torch.Generator().manual_seed(seed), num_workers=config.num_workers, pin_memory=pin_memory)


def pretrain_backbone(config: EpisodicConfig, model: nn.Module, train_split, val_split, *, out_dir: Path,
                      device: torch.device, resume: bool = False, progress: bool = True) -> dict:
    """Train ``model.backbone`` with a new linear or cosine head (the kind ``model.learner`` fits) over every class of
    ``train_split`` for ``config.pretrain_epochs`` epochs (Adam, ``config.lr``); validate on ``val_split`` after each
    epoch and keep the best weights; append a row to ``out_dir/metrics.jsonl`` and checkpoint ``out_dir/checkpoint.pt``
    after each epoch; return (and write to ``out_dir/metrics.json``) the run's summary."""
    if not isinstance(model.learner, FineTuneClassifier):
        raise ValueError(f"pre-training fits the head its learner fits (learner 'baseline' or 'baseline_pp'); "
                         f"learner {config.learner!r} fits none")
    if world_size() > 1:
        raise ValueError(f"mini-batch pre-training (pretrain_epochs={config.pretrain_epochs}) runs in one process; "
                         f"this one is 1 of {world_size()} started by torchrun. Pre-train with a plain `hallucinate "
                         f"run`, then train the hallucinator on its backbone under torchrun with "
                         f"--set init_from=RUN/checkpoint.pt")
    if len(train_split) < config.pretrain_batch_size:
        raise ValueError(f"pretrain_batch_size is {config.pretrain_batch_size} but the train split holds only "
                         f"{len(train_split)} images")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    checkpoint_path, log_path = out_dir / "checkpoint.pt", out_dir / "metrics.jsonl"

    model.to(device)
    head = HEADS[model.learner.head](model.backbone.out_dim, int(np.max(train_split.labels)) + 1).to(device)
    optimizer = torch.optim.Adam([*model.backbone.parameters(), *head.parameters()], lr=config.lr)

    start, history, best = 0, [], {"val_accuracy": -1.0, "episode": 0, "model": None}  # "episode": here an epoch
    if resume:
        state = load_for_resume(checkpoint_path, config, ignore=("pretrain_epochs", "episodes"))
        if "pretrain" not in state:
            raise CheckpointError(f"cannot resume {checkpoint_path}: it is not a pre-training checkpoint")
        model.load_state_dict(state["model"])
        head.load_state_dict(state["pretrain"]["head"])
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"]["torch"])
        start, history, best = state["pretrain"]["next_epoch"], state["metrics"], best_so_far(state)
    restart_log(log_path, history)

    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    batches = len(train_split) // config.pretrain_batch_size
    run_start = time.perf_counter()
    bar = tqdm(total=config.pretrain_epochs * batches, initial=start * batches, desc="pretrain", unit=" batches",
               disable=not progress)
    for epoch in range(start, config.pretrain_epochs):
        model.train()
        head.train()
        loss_sum, correct, seen, epoch_start = 0.0, 0, 0, time.perf_counter()
        for images, labels in epoch_loader(train_split, config, epoch, pin_memory=device.type == "cuda"):
            images = images.to(device, non_blocking=True).contiguous(memory_format=memory_format)
            labels = labels.to(device, non_blocking=True)
            with autocast(device, config.precision):
                features = model.embed(images).float()
            logits = head(features)
            loss = nn.functional.cross_entropy(logits, labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach() * len(labels)
            correct += (logits.argmax(1) == labels).sum()
            seen += len(labels)
            bar.update()
        images_per_s = seen / (time.perf_counter() - epoch_start)

        result = evaluate(model, val_split, n_way=config.val_n_way, k_shot=config.val_k_shot,
                          episodes=config.val_episodes, seed=config.seed, hallucinate=False, device=device,
                          precision=config.precision)  # a hallucinator is trained later, on this backbone
        row = {"pretrain_epoch": epoch + 1, "loss": float(loss_sum) / seen, "accuracy": float(correct) / seen,
               "val_accuracy": result.accuracy, "val_ci95": result.ci95, "images_per_s": images_per_s}
        history.append(row)
        append_row(log_path, row)
        bar.set_postfix(loss=f"{row['loss']:.3f}", val=f"{result.accuracy:.2f}")
        if result.accuracy > best["val_accuracy"]:
            best = {"val_accuracy": result.accuracy, "episode": epoch + 1,
                    "model": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}}
        save_checkpoint(checkpoint_path, {
            "config": config.as_dict(), "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "rng": {"torch": torch.get_rng_state()}, "sampler": {"seed": config.seed, "next_episode": 0},
            "metrics": history, "best_val_accuracy": best["val_accuracy"], "best_episode": best["episode"],
            "best_model": best["model"],
            "pretrain": {"next_epoch": epoch + 1, "head": head.state_dict(),
                         "complete": epoch + 1 == config.pretrain_epochs}})
    bar.close()

    summary = {"config": config.as_dict(), "episodes": 0, "pretrain_epochs": config.pretrain_epochs,
               "best_val_accuracy": best["val_accuracy"], "best_episode": best["episode"],
               "wall_time_s_this_session": time.perf_counter() - run_start, "history": history}
    write_json_atomic(out_dir / "metrics.json", summary)
    return summary
