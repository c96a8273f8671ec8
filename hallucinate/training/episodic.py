"""Episodic training of a few-shot classifier, with its hallucinator trained jointly (and adversarially when it has
a critic): one loop, both optimizers in sight. The loop knows a hallucinator only through `training_step`, which
hands back the support set to give the learner, the hallucinator's own losses and its critic's.

On a frozen backbone (stage 2 of a two-stage run; Baseline and Baseline++ after pre-training) the train split is
embedded once and the episodes are drawn from those features: the backbone's output would be the same every time."""
import time
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from ..data.prefetch import DevicePrefetcher
from ..data.sampler import EpisodeSampler, episode_loader
from ..device import autocast
from ..episode import Episode
from ..evaluation import embed_split, evaluate
from ..learners import PrototypicalNetworks, episode_loss
from . import distributed
from .checkpoint import CheckpointError, save_checkpoint
from .config import EpisodicConfig
from .guard import SkipCounter, step_if
from .run_files import append_row, best_so_far, load_for_resume, restart_log, write_json_atomic


def feature_episodes(bank: torch.Tensor, labels: torch.Tensor, sampler: EpisodeSampler):
    """`EpisodeSampler`'s episodes as `Episode` values of the features ``bank`` ``[N, D]`` (labels ``[N]``)."""
    n_way, k_shot, q_query = sampler.n_way, sampler.k_shot, sampler.q_query
    n_support = n_way * k_shot
    support_labels = torch.arange(n_way, device=bank.device).repeat_interleave(k_shot)
    query_labels = torch.arange(n_way, device=bank.device).repeat_interleave(q_query)
    for indices in sampler:
        index = torch.as_tensor(indices)
        if bank.is_cuda:  # a copy from pinned memory does not make the host wait for the device
            index = index.pin_memory()
        index = index.to(bank.device, non_blocking=True)
        features = bank[index]
        yield Episode(features[:n_support], support_labels, features[n_support:], query_labels,
                      labels[index[:n_support:k_shot]])


def train_episodic(config: EpisodicConfig, model: nn.Module, train_split, val_split, *, out_dir: Path,
                   device: torch.device, resume: bool = False, progress: bool = True) -> dict:
    """Train ``model`` on ``config.episodes`` episodes of ``train_split`` (stage 2 of a two-stage run:
    ``config.hallucinator_episodes`` of the ``hallucinator_*`` shape, on the frozen backbone's features,
    ``train_split`` unaugmented); validate on ``val_split`` every ``val_every`` episodes and keep the best weights;
    checkpoint every ``checkpoint_every`` episodes to ``out_dir/checkpoint.pt``; append metrics to
    ``out_dir/metrics.jsonl``; return (and write to ``out_dir/metrics.json``) the run's summary. Each optimizer step
    (an outer step) averages the gradients of ``config.meta_batch`` consecutive episodes. A step whose losses are NaN
    or inf changes no weight and is counted (``skipped_steps``); ``config.max_nonfinite_steps`` of them in a row stop
    the run (`NonFiniteLossError`).

    In a process group (torchrun; see `distributed`) each of the N ranks trains its own episodes at each step and
    the gradients are averaged: ``config.episodes`` counts each rank's episodes, N times as many in all. Every rank
    validates (the same weights on the same seeded episodes: the same result, in the time it would otherwise wait for
    rank 0), and rank 0 alone writes files."""
    rank, world = distributed.rank(), distributed.world_size()
    writer = rank == 0
    out_dir = Path(out_dir)
    if writer:
        out_dir.mkdir(parents=True, exist_ok=True)
    checkpoint_path, log_path = out_dir / "checkpoint.pt", out_dir / "metrics.jsonl"

    model.to(device)
    if device.type == "cuda":  # episodes have one shape for the whole run: cuDNN picks its fastest kernels once
        torch.backends.cudnn.benchmark = True
    if model.hallucinator is not None and not any(p.requires_grad for p in model.hallucinator.parameters()):
        raise ValueError(f"hallucinator {config.hallucinator!r} is training-free: train with hallucinator=none, then "
                         f"evaluate with `hallucinate eval CHECKPOINT --hallucinator {config.hallucinator}`")
    if world > 1 and model.hallucinator is not None and model.hallucinator.per_process_state:
        raise ValueError(f"the {config.hallucinator} hallucinator keeps features of the episodes it trains on, so "
                         f"each rank's would hold its own episodes' and the ranks would differ: train it in one "
                         f"process")
    hallucinator = model.hallucinator if config.n_synthetic > 0 else None
    critic = hallucinator.critic_parameters() if hallucinator is not None else []
    # After mini-batch pre-training (Baseline, Baseline++) and in stage 2 the backbone stays frozen. The fine-tune
    # heads (Baseline, Baseline++, logistic) fit a new head inside forward, which the hallucinator's gradient cannot
    # pass through, so their episodes are scored by prototypes on the frozen features instead.
    frozen = config.pretrain_epochs > 0 or config.two_stage
    if hallucinator is not None and hallucinator.needs_frozen_embedding and not frozen:
        raise ValueError(f"the {config.hallucinator} hallucinator ({config.gan_generator} generator) is built on a "
                         f"frozen embedding's base-class statistics: train it in two stages "
                         f"(hallucinator_episodes > 0) or choose gan_generator=noise")
    fitted_head = config.learner in ("baseline", "baseline_pp", "logistic")
    episode_learner = PrototypicalNetworks() if frozen and fitted_head else model.learner
    if config.two_stage:
        n_way, k_shot, q_query = config.hallucinator_n_way, config.hallucinator_k_shot, config.hallucinator_q_query
        episodes, lr = config.hallucinator_episodes, config.hallucinator_lr
    else:
        n_way, k_shot, q_query, episodes, lr = config.n_way, config.k_shot, config.q_query, config.episodes, config.lr
    critic_ids = {id(p) for p in critic}
    main_parameters = [p for name, p in model.named_parameters() if id(p) not in critic_ids
                       and not (frozen and name.startswith("backbone."))]
    optimizer = torch.optim.Adam(main_parameters, lr=lr)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=config.lr_step, gamma=config.lr_gamma)
    critic_optimizer = torch.optim.Adam(critic, lr=config.critic_lr, betas=(0.5, 0.9)) if critic else None
    rng = torch.Generator(device=device).manual_seed(config.seed)
    if frozen:
        bank = embed_split(model, train_split, device=device, precision=config.precision, progress=progress and writer)
        bank_labels = torch.as_tensor(train_split.labels, device=device)
        val_bank = embed_split(model, val_split, device=device, precision=config.precision)
        if model.hallucinator is not None:
            model.hallucinator.before_training(bank, bank_labels)

    start, history, best = 0, [], {"val_accuracy": -1.0, "episode": 0, "model": None}
    if resume:
        state = distributed.on_rank_zero(lambda: load_for_resume(checkpoint_path, config,
                                                                 ignore=("episodes", "hallucinator_episodes")))
        trained_by = state["sampler"].get("world_size", 1)
        if trained_by != world:  # another number of ranks would train on other episodes than an unbroken run
            raise CheckpointError(f"cannot resume {checkpoint_path}: it was trained by {trained_by} process(es) and "
                                  f"this run has {world}; resume it with as many (torchrun: nodes x processes each)")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if critic:
            critic_optimizer.load_state_dict(state["critic_optimizer"])
        rng.set_state(state["rng"]["hallucination"])
        torch.set_rng_state(state["rng"]["torch"])
        start, history, best = state["sampler"]["next_episode"], state["metrics"], best_so_far(state)
    if writer:
        restart_log(log_path, history)
    distributed.check_in_sync(model)

    sampler = EpisodeSampler(train_split.labels, n_way=n_way, k_shot=k_shot, q_query=q_query, episodes=episodes,
                             seed=config.seed, start=start, rank=rank, world_size=world)
    if frozen:
        stream = feature_episodes(bank, bank_labels, sampler)
    else:
        loader = episode_loader(train_split, sampler, num_workers=config.num_workers,
                                pin_memory=device.type == "cuda")
        stream = DevicePrefetcher(loader, device)
    n_support = n_way * k_shot
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    sums: dict[str, torch.Tensor] = {}
    nonfinite: dict[str, torch.Tensor] = {}  # how many times each loss was NaN or inf since the last log row
    skips = SkipCounter(config.max_nonfinite_steps, device, episodes_per_step=config.meta_batch)
    steps = 0
    # The episodes of the outer step under way: each one's losses, its critic's losses (None without a critic) and
    # its accuracy. The critic's losses are computed at the outer step, after the main step, as with one episode.
    outer_step = []
    interval_start, run_start = time.perf_counter(), time.perf_counter()

    def checkpoint(episode: int) -> None:
        distributed.check_in_sync(model)
        if not writer:
            return
        save_checkpoint(checkpoint_path, {
            "config": config.as_dict(), "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "critic_optimizer": critic_optimizer.state_dict() if critic else None,
            "rng": {"hallucination": rng.get_state(), "torch": torch.get_rng_state()},
            "sampler": {"seed": config.seed, "next_episode": episode, "world_size": world}, "metrics": history,
            "best_val_accuracy": best["val_accuracy"], "best_episode": best["episode"],
            "best_model": best["model"] if best["model"] is not None else model.state_dict()})

    def record(row: dict) -> None:
        history.append(row)
        if writer:
            append_row(log_path, row)

    def train_mode() -> None:
        model.train()
        if frozen:  # batch norm keeps its pre-trained statistics
            model.backbone.eval()

    train_mode()
    statistics = distributed.running_statistics(model) if world > 1 else []
    bar = tqdm(total=episodes, initial=start, desc="train hallucinator" if config.two_stage else "train",
               unit=" episodes", disable=not (progress and writer))
    # Nothing in a step reads a tensor back to the host (no .item(), no `if tensor`, the number of ways passed, not
    # read from the labels), so on a GPU the host queues step after step without waiting; the metrics are read every
    # log_every steps. tests/test_step_sync.py holds every learner and hallucinator to it.
    for episode_number, episode in enumerate(stream, start=start + 1):
        if world > 1:  # this rank's episode number in the one stream (see EpisodeSampler) seeds its randomness
            rng.manual_seed(distributed.episode_seed(config.seed, (episode_number - 1) * world + rank))
        if frozen:
            support, query = episode.support, episode.query
        else:
            images = torch.cat([episode.support, episode.query]).contiguous(memory_format=memory_format)
            with autocast(device, config.precision):
                features = model.embed(images).float()
            support, query = features[:n_support], features[n_support:]
        support_labels, support_weights = episode.support_labels, None
        losses, critic_losses = {}, None
        if hallucinator is not None:
            step = hallucinator.training_step(support, support_labels, query, episode.query_labels, n_way=n_way,
                                              n_per_class=config.n_synthetic, rng=rng, class_ids=episode.class_ids)
            support, support_labels, support_weights = step.support, step.support_labels, step.support_weights
            losses.update(step.losses)
            critic_losses = step.critic_losses

        logits = episode_learner(support, support_labels, query, support_weights, n_way=n_way)
        losses["classification"] = episode_loss(episode_learner, logits, episode.query_labels)
        loss = sum(losses.values())
        if not outer_step:
            optimizer.zero_grad(set_to_none=True)
            ok = torch.isfinite(loss)
        else:
            ok = ok & torch.isfinite(loss)
        (loss / config.meta_batch).backward()  # one backward per episode: one episode's graph alive at a time
        outer_step.append((losses, critic_losses, (logits.argmax(1) == episode.query_labels).float().mean()))
        bar.update()
        steps += 1
        if episode_number % config.meta_batch:
            continue

        # Gradients are averaged by hand rather than by DistributedDataParallel: this loop calls the backbone, the
        # generator, the learner and the critic directly, where DDP averages only the backward of its wrapper's
        # forward, and it steps two optimizers on two backward passes. One flat all-reduce per optimizer is what
        # DDP would do with one bucket; its overlap of communication with the backward matters little for these
        # small networks. The same all-reduce tells every rank whether any rank's loss was NaN or inf, and averages
        # the batch-norm statistics, which differ between the ranks inside an outer step (nothing reads them there).
        if world > 1:
            ok = distributed.all_reduce_gradients(main_parameters, ok, buffers=statistics)
        step_if(ok, optimizer)
        for _ in range(config.meta_batch):  # lr_step counts episodes
            scheduler.step()

        if critic_optimizer is not None:
            critic_loss = 0
            for losses, critic_losses, _ in outer_step:
                critic_terms = critic_losses()
                losses.update(critic_terms)
                critic_loss = critic_loss + sum(critic_terms.values())
            critic_optimizer.zero_grad(set_to_none=True)
            (critic_loss / config.meta_batch).backward()
            critic_ok = torch.isfinite(critic_loss)
            if world > 1:
                critic_ok = distributed.all_reduce_gradients(critic, critic_ok)
            step_if(critic_ok, critic_optimizer)
            ok = ok & critic_ok
        skips.update(~ok, episode_number)

        for losses, _, accuracy in outer_step:
            losses["accuracy"] = accuracy
            for name, value in losses.items():
                finite = torch.isfinite(value.detach())
                sums[name] = sums.get(name, 0) + torch.where(finite, value.detach(), 0)
                nonfinite[name] = nonfinite.get(name, 0) + ~finite
        outer_step = []

        if episode_number % config.log_every == 0 or episode_number == episodes:
            now = time.perf_counter()
            names, seen = list(sums), steps * world  # seen: episodes, over every rank
            totals = distributed.sum_over_ranks(torch.stack([sums[name] for name in names])).tolist()
            counts = distributed.sum_over_ranks(torch.stack([nonfinite[name] for name in names])).tolist()
            row = {"episode": episode_number, "lr": scheduler.get_last_lr()[0],
                   **{name: total / (seen - count) if count < seen else None
                      for name, total, count in zip(names, totals, counts)},
                   "episodes_per_s": seen / (now - interval_start), "skipped_steps": skips.take()}
            record(row)
            skips.check(dict(zip(names, counts)), episode_number - steps + 1, episode_number)
            bar.set_postfix(loss=row["classification"], acc=row["accuracy"])
            sums, nonfinite, steps, interval_start = {}, {}, 0, now
        if episode_number % config.val_every == 0 or episode_number == episodes:
            validation_start = time.perf_counter()
            if model.hallucinator is not None:
                model.hallucinator.before_validation(model, train_split, seed=config.seed + episode_number,
                                                     device=device, precision=config.precision)
            result = evaluate(model, val_split, n_way=config.val_n_way, k_shot=config.val_k_shot,
                              episodes=config.val_episodes, seed=config.seed, device=device,
                              precision=config.precision, bank=val_bank if frozen else None)
            record({"episode": episode_number, "val_accuracy": result.accuracy, "val_ci95": result.ci95})
            if result.accuracy > best["val_accuracy"]:
                best = {"val_accuracy": result.accuracy, "episode": episode_number,
                        "model": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}}
            bar.set_postfix(val=f"{result.accuracy:.2f}")
            train_mode()
            interval_start += time.perf_counter() - validation_start
        if episode_number % config.checkpoint_every == 0 or episode_number == episodes:
            checkpoint(episode_number)
    bar.close()

    summary = {"config": config.as_dict(), "episodes": episodes, "best_val_accuracy": best["val_accuracy"],
               "best_episode": best["episode"], "wall_time_s_this_session": time.perf_counter() - run_start,
               "history": history}
    if writer:
        write_json_atomic(out_dir / "metrics.json", summary)
    return summary
