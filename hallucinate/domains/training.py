"""Episodic training over several domains, drawing a pseudo-seen and a pseudo-unseen domain every episode (Tseng et
al., ICLR 2020; Li et al., AAAI 2018), with the four trainers of `MultiDomainConfig.trainer`:

- ``aggregate``: one Adam step on the pseudo-seen episode (plain multi-domain training);
- ``fwt_fixed``: the same with feature-wise transformation layers after the backbone's batch norms, held at their
  initial values;
- ``lft``, the two steps: (1) ``L_ps = L(theta, phi; T_ps)`` with the layers on, ``g = grad_theta L_ps`` (kept in
  the graph), an Adam step on theta with ``g``; (2) ``L_pu = L(theta - inner_lr * g; T_pu)`` with the layers off and
  batch norm on its running statistics, whose gradient through ``g`` steps the layers' parameters ``phi`` alone. The
  virtual step uses theta from before the Adam step (both are computed, then both optimizers step);
- ``mldg``: ``F = L(theta; T_ps)``, ``G = L(theta - inner_lr * grad F; T_pu)``, one Adam step on ``grad(F +
  mldg_beta * G)`` for every weight.

The episode pairs depend only on the seed and the episode's number, so a resumed run trains on the episodes an
unbroken one would. A jointly-trained hallucinator makes the support set of both steps' episodes and its losses join
theirs; its critic steps after the main step, as in `train_episodic`. A two-stage hallucinator (the calibrated GAN)
trains on the frozen multi-domain embedding with `train_episodic`, over every training domain's train split."""
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.func import functional_call
from tqdm import tqdm

from ..backbones.feature_wise import FeatureWiseLayers, add_feature_wise
from ..data import DATASETS, open_store
from ..data.sampler import EpisodeCollate, EpisodeSampler
from ..data.transforms import build_augmentation
from ..device import autocast, resolve_device
from ..episode import Episode
from ..evaluation import evaluate
from ..learners import episode_loss
from ..model import build_classifier
from ..pipeline import load_backbone
from ..training import distributed
from ..training.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from ..training.config import changed_settings
from ..training.episodic import train_episodic
from ..training.guard import SkipCounter, step_if
from ..training.run_files import append_row, restart_log, write_json_atomic
from .config import MultiDomainConfig

FWT_WEIGHT_DECAY = 1e-8  # Tseng et al.'s, on the feature-wise layers' parameters


class ConcatSplit(torch.utils.data.Dataset):
    """Several splits as one map-style dataset of ``(uint8 image, label)``: the labels of each split come after those
    of the splits before it (offset by their numbers of classes)."""

    name = "train"

    def __init__(self, splits: list):
        self.splits = list(splits)
        sizes = [len(split) for split in self.splits]
        self.starts = np.cumsum([0] + sizes)
        offsets = np.cumsum([0] + [len(split.classes) for split in self.splits])
        self.offsets = offsets[:-1]
        self.classes = [name for split in self.splits for name in split.classes]
        self.labels = np.concatenate([np.asarray(split.labels) + offset
                                      for split, offset in zip(self.splits, self.offsets)])

    def __len__(self) -> int:
        return int(self.starts[-1])

    def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: list[int]) -> list[tuple[np.ndarray, int]]:
        which = np.searchsorted(self.starts, indices, side="right") - 1
        items = [None] * len(indices)
        for part in np.unique(which):
            positions = np.flatnonzero(which == part)
            local = [int(indices[p] - self.starts[part]) for p in positions]
            for position, (image, label) in zip(positions, self.splits[part].__getitems__(local)):
                items[position] = (image, label + int(self.offsets[part]))
        return items


def domain_pair(seed: int, episode: int, n_domains: int, weights: np.ndarray | None = None
                ) -> tuple[int, int | None]:
    """The pseudo-seen and pseudo-unseen domains of ``episode`` (two different ones, drawn uniformly, or the first in
    proportion to ``weights`` and the second among the rest in proportion to theirs; with one domain, that domain
    and None): a function of the seed and the episode's number alone."""
    if n_domains == 1:
        return 0, None
    p = None if weights is None else weights / weights.sum()
    seen, unseen = np.random.default_rng([seed, episode]).choice(n_domains, 2, replace=False, p=p)
    return int(seen), int(unseen)


class EpisodePairs(torch.utils.data.Dataset):
    """Item ``e`` is episode ``e``'s ``(pseudo-seen Episode, pseudo-unseen Episode or None)`` (see `domain_pair`);
    the pseudo-unseen one is read only when ``with_unseen`` (the trainers that use it). Domain ``d``'s episodes come
    from an `EpisodeSampler` of seed ``seed + 1 + d``, its episode ``e`` at episode ``e``. ``sampling`` "uniform"
    draws the domains alike, "classes" in proportion to their numbers of classes."""

    def __init__(self, splits: list, *, n_way: int, k_shot: int, q_query: int, episodes: int, seed: int,
                 with_unseen: bool, names: list[str], sampling: str = "uniform"):
        self.splits, self.episodes, self.seed, self.with_unseen = splits, episodes, seed, with_unseen
        self.weights = None if sampling == "uniform" else np.array([len(np.unique(split.labels)) for split in splits],
                                                                   dtype=float)
        self.samplers = []
        for d, (split, name) in enumerate(zip(splits, names)):
            try:
                self.samplers.append(EpisodeSampler(split.labels, n_way=n_way, k_shot=k_shot, q_query=q_query,
                                                    episodes=episodes, seed=seed + 1 + d))
            except ValueError as error:
                raise ValueError(f"training episodes of domain {name!r} (its train split): {error}") from None
        self.collate = EpisodeCollate(n_way, k_shot, q_query)

    def __len__(self) -> int:
        return self.episodes

    def __getitem__(self, episode: int):
        seen, unseen = domain_pair(self.seed, episode, len(self.splits), self.weights)
        return self._episode(seen, episode), self._episode(unseen, episode) if self.with_unseen else None

    def _episode(self, domain: int, episode: int) -> Episode:
        return self.collate(self.splits[domain].__getitems__(self.samplers[domain].episode_indices(episode)))


def _unchanged(item):
    return item


class EpisodeObjective(nn.Module):
    """``forward(episode, n_way, rng) -> (losses, critic_losses or None, accuracy)`` of one episode of images: the
    backbone, the hallucinator's `training_step` (when ``hallucinating``) and the learner's loss. Its parameters are
    the classifier's, under the classifier's names, so `torch.func.functional_call` runs it with other weights."""

    def __init__(self, model: nn.Module, *, hallucinating: bool, n_synthetic: int, device: torch.device,
                 precision: str, memory_format: torch.memory_format):
        super().__init__()
        self.backbone, self.learner, self.hallucinator = model.backbone, model.learner, model.hallucinator
        self.hallucinating, self.n_synthetic = hallucinating, n_synthetic
        self.device, self.precision, self.memory_format = device, precision, memory_format

    def forward(self, episode: Episode, n_way: int, rng: torch.Generator):
        n_support = len(episode.support)
        images = torch.cat([episode.support, episode.query]).contiguous(memory_format=self.memory_format)
        with autocast(self.device, self.precision):
            features = self.backbone(images).float()
        support, query = features[:n_support], features[n_support:]
        support_labels, support_weights = episode.support_labels, None
        losses, critic_losses = {}, None
        if self.hallucinating:
            step = self.hallucinator.training_step(support, support_labels, query, episode.query_labels, n_way=n_way,
                                                   n_per_class=self.n_synthetic, rng=rng, class_ids=episode.class_ids)
            support, support_labels, support_weights = step.support, step.support_labels, step.support_weights
            losses.update(step.losses)
            critic_losses = step.critic_losses
        logits = self.learner(support, support_labels, query, support_weights, n_way=n_way)
        losses["classification"] = episode_loss(self.learner, logits, episode.query_labels)
        return losses, critic_losses, (logits.argmax(1) == episode.query_labels).float().mean()


def virtual_step(named: list[tuple[str, nn.Parameter]], grads, inner_lr: float) -> dict[str, torch.Tensor]:
    """``theta - inner_lr * g`` for every parameter that has a gradient (the others keep their values)."""
    return {name: p - inner_lr * g for (name, p), g in zip(named, grads) if g is not None}


def plain_step(objective: EpisodeObjective, named, seen: Episode, *, n_way: int, rng) -> tuple[list, torch.Tensor]:
    """aggregate and fwt_fixed: the pseudo-seen episode's gradient, into each parameter's ``.grad``."""
    losses, critic, accuracy = objective(seen, n_way, rng)
    loss = sum(losses.values())
    _set_grads(named, torch.autograd.grad(loss, [p for _, p in named], allow_unused=True))
    return [(losses | {"accuracy": accuracy}, critic)], torch.isfinite(loss)


def lft_step(objective: EpisodeObjective, named, layers: FeatureWiseLayers, seen: Episode, unseen: Episode, *,
             inner_lr: float, n_way: int, rng) -> tuple[list, torch.Tensor]:
    """The two steps' gradients: step 1's ``g`` (layers on) into theta's ``.grad``, step 2's gradient of the
    pseudo-unseen loss at ``theta - inner_lr * g`` (layers off, batch norm in eval mode) into the layers'."""
    losses, critic, accuracy = objective(seen, n_way, rng)
    seen_loss = sum(losses.values())
    grads = torch.autograd.grad(seen_loss, [p for _, p in named], create_graph=True, allow_unused=True)
    objective.eval()
    layers.enabled = False
    try:
        unseen_losses, unseen_critic, unseen_accuracy = functional_call(
            objective, virtual_step(named, grads, inner_lr), (unseen, n_way, rng))
    finally:
        objective.train()
        layers.enabled = True
    unseen_loss = sum(unseen_losses.values())
    phi = list(layers.parameters())
    for p, g in zip(phi, torch.autograd.grad(unseen_loss, phi)):
        p.grad = g
    _set_grads(named, [None if g is None else g.detach() for g in grads])
    return ([(losses | {"accuracy": accuracy}, critic), (unseen_losses | {"accuracy": unseen_accuracy}, unseen_critic)],
            torch.isfinite(seen_loss) & torch.isfinite(unseen_loss))


def mldg_step(objective: EpisodeObjective, named, seen: Episode, unseen: Episode, *, inner_lr: float, beta: float,
              n_way: int, rng) -> tuple[list, torch.Tensor]:
    """``grad(F + beta * G)`` into every parameter's ``.grad``, ``G`` the pseudo-unseen loss after the virtual step
    ``theta - inner_lr * grad F`` (differentiated through it)."""
    parameters = [p for _, p in named]
    losses, critic, accuracy = objective(seen, n_way, rng)
    seen_loss = sum(losses.values())
    grads = torch.autograd.grad(seen_loss, parameters, create_graph=True, allow_unused=True)
    unseen_losses, unseen_critic, unseen_accuracy = functional_call(
        objective, virtual_step(named, grads, inner_lr), (unseen, n_way, rng))
    unseen_loss = sum(unseen_losses.values())
    _set_grads(named, torch.autograd.grad(seen_loss + beta * unseen_loss, parameters, allow_unused=True))
    return ([(losses | {"accuracy": accuracy}, critic), (unseen_losses | {"accuracy": unseen_accuracy}, unseen_critic)],
            torch.isfinite(seen_loss) & torch.isfinite(unseen_loss))


def _set_grads(named, grads) -> None:
    for (_, p), g in zip(named, grads):
        p.grad = g


def train_multidomain(config: MultiDomainConfig, model: nn.Module, train_splits: dict, val_split, *, out_dir: Path,
                      device: torch.device, resume: bool = False, progress: bool = True) -> dict:
    """Train ``model`` with ``config.trainer`` on ``config.episodes`` episode pairs of ``train_splits`` (domain name
    -> train split, the names of ``config.domains`` in its order); validate on ``val_split`` every ``val_every``
    episodes and keep the best weights; checkpoint every ``checkpoint_every`` episodes to ``out_dir/checkpoint.pt``;
    append metrics (each trainer's ``episodes_per_s`` among them) to ``out_dir/metrics.jsonl``; return (and write to
    ``out_dir/metrics.json``) the run's summary. A step whose losses are NaN or inf changes no weight and is counted
    (``skipped_steps``); ``config.max_nonfinite_steps`` of them in a row stop the run.

    The checkpoint's ``config`` and ``model`` are the plain classifier's (`MultiDomainConfig.classifier_config`), so
    it loads as any classification checkpoint; ``multidomain`` holds the whole config, ``fwt`` the feature-wise
    layers' parameters and optimizer. The layers are taken off ``model`` when training ends."""
    if distributed.world_size() > 1:
        raise ValueError("the multi-domain trainers run in one process; start it without torchrun")
    names = list(config.training_domains)
    if list(train_splits) != names:
        raise ValueError(f"train_splits has the domains {list(train_splits)}; the config trains on {names}, in "
                         f"that order")
    hallucinator = model.hallucinator if model.hallucinator is not None and config.n_synthetic > 0 else None
    if hallucinator is not None and not any(p.requires_grad for p in hallucinator.parameters()):
        raise ValueError(f"hallucinator {config.hallucinator!r} is training-free: train with hallucinator=none, then "
                         f"evaluate with `hallucinate eval CHECKPOINT --hallucinator {config.hallucinator}`")
    if hallucinator is not None and hallucinator.needs_frozen_embedding:
        raise ValueError(f"the {config.hallucinator} hallucinator ({config.gan_generator} generator) is built on a "
                         f"frozen embedding's base-class statistics: train it in two stages (hallucinator_episodes > "
                         f"0) or choose gan_generator=noise")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    checkpoint_path, log_path = out_dir / "checkpoint.pt", out_dir / "metrics.jsonl"

    model.to(device)
    critic = hallucinator.critic_parameters() if hallucinator is not None else []
    critic_ids = {id(p) for p in critic}
    named = [(name, p) for name, p in model.named_parameters() if id(p) not in critic_ids and p.requires_grad]
    optimizer = torch.optim.Adam([p for _, p in named], lr=config.lr)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=config.lr_step, gamma=config.lr_gamma)
    critic_optimizer = torch.optim.Adam(critic, lr=config.critic_lr, betas=(0.5, 0.9)) if critic else None
    rng = torch.Generator(device=device).manual_seed(config.seed)  # the hallucinator's
    noise = torch.Generator(device=device).manual_seed(config.seed + 1)  # the feature-wise layers'
    layers = fwt_optimizer = None
    if config.trainer in ("fwt_fixed", "lft"):
        layers = add_feature_wise(model.backbone, gamma_init=config.fwt_gamma_init, beta_init=config.fwt_beta_init,
                                  generator=noise)
        layers.requires_grad_(config.trainer == "lft")
    if config.trainer == "lft":
        fwt_optimizer = torch.optim.Adam(layers.parameters(), lr=config.fwt_lr, weight_decay=FWT_WEIGHT_DECAY)

    start, history, best = 0, [], {"val_accuracy": -1.0, "episode": 0, "model": None}
    if resume:
        state = load_checkpoint(checkpoint_path)
        if "multidomain" not in state:
            raise CheckpointError(f"cannot resume {checkpoint_path}: it is not a multi-domain run's checkpoint")
        changed = changed_settings(state["multidomain"], config, ignore=("episodes",))
        if changed:
            raise CheckpointError(f"cannot resume {checkpoint_path}: settings differ from the checkpoint's: {changed}")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if critic:
            critic_optimizer.load_state_dict(state["critic_optimizer"])
        if layers is not None:
            layers.load_state_dict(state["fwt"]["layers"])
        if fwt_optimizer is not None:
            fwt_optimizer.load_state_dict(state["fwt"]["optimizer"])
        rng.set_state(state["rng"]["hallucination"])
        noise.set_state(state["rng"]["noise"])
        torch.set_rng_state(state["rng"]["torch"])
        start, history = state["sampler"]["next_episode"], state["metrics"]
        best = {"val_accuracy": state["best_val_accuracy"], "episode": state["best_episode"],
                "model": state["best_model"]}
    restart_log(log_path, history)

    two_steps = config.trainer in ("lft", "mldg")
    pairs = EpisodePairs([train_splits[name] for name in names], n_way=config.n_way, k_shot=config.k_shot,
                         q_query=config.q_query, episodes=config.episodes, seed=config.seed, with_unseen=two_steps,
                         names=names, sampling=config.domain_sampling)
    loader = torch.utils.data.DataLoader(pairs, batch_size=None, sampler=range(start, config.episodes),
                                         collate_fn=_unchanged, num_workers=config.num_workers,
                                         prefetch_factor=4 if config.num_workers else None)
    base_split = ConcatSplit(list(train_splits.values()))  # what a hallucinator refreshes its features from
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    objective = EpisodeObjective(model, hallucinating=hallucinator is not None, n_synthetic=config.n_synthetic,
                                 device=device, precision=config.precision, memory_format=memory_format)
    sums: dict[str, torch.Tensor] = {}
    nonfinite: dict[str, torch.Tensor] = {}
    skips = SkipCounter(config.max_nonfinite_steps, device)
    steps = 0
    interval_start, run_start = time.perf_counter(), time.perf_counter()

    def checkpoint(episode: int) -> None:
        save_checkpoint(checkpoint_path, {
            "config": config.classifier_config().as_dict(), "multidomain": config.as_dict(),
            "model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "critic_optimizer": critic_optimizer.state_dict() if critic else None,
            "fwt": None if layers is None else {
                "layers": layers.state_dict(),
                "optimizer": fwt_optimizer.state_dict() if fwt_optimizer is not None else None},
            "rng": {"hallucination": rng.get_state(), "noise": noise.get_state(), "torch": torch.get_rng_state()},
            "sampler": {"seed": config.seed, "next_episode": episode, "world_size": 1}, "metrics": history,
            "best_val_accuracy": best["val_accuracy"], "best_episode": best["episode"],
            "best_model": best["model"] if best["model"] is not None else model.state_dict()})

    def record(row: dict) -> None:
        history.append(row)
        append_row(log_path, row)

    model.train()
    bar = tqdm(total=config.episodes, initial=start, desc=f"train {config.trainer}", unit=" episodes",
               disable=not progress)
    try:
        for episode_number, (seen, unseen) in enumerate(loader, start=start + 1):
            seen = seen.to(device, non_blocking=True)
            unseen = unseen.to(device, non_blocking=True) if unseen is not None else None
            if config.trainer == "lft":
                terms, ok = lft_step(objective, named, layers, seen, unseen, inner_lr=config.inner_lr,
                                     n_way=config.n_way, rng=rng)
            elif config.trainer == "mldg":
                terms, ok = mldg_step(objective, named, seen, unseen, inner_lr=config.inner_lr,
                                      beta=config.mldg_beta, n_way=config.n_way, rng=rng)
            else:
                terms, ok = plain_step(objective, named, seen, n_way=config.n_way, rng=rng)
            step_if(ok, optimizer)
            if fwt_optimizer is not None:
                step_if(ok, fwt_optimizer)
            scheduler.step()
            if critic_optimizer is not None:
                critic_loss = 0
                for losses, critic_losses in terms:
                    critic_terms = critic_losses()
                    losses.update(critic_terms)
                    critic_loss = critic_loss + sum(critic_terms.values())
                critic_optimizer.zero_grad(set_to_none=True)
                (critic_loss / len(terms)).backward()
                critic_ok = torch.isfinite(critic_loss)
                step_if(critic_ok, critic_optimizer)
                ok = ok & critic_ok
            skips.update(~ok, episode_number)
            bar.update()
            steps += 1

            for prefix, (losses, _) in zip(("", "unseen_"), terms):
                for name, value in losses.items():
                    finite = torch.isfinite(value.detach())
                    key = prefix + name
                    sums[key] = sums.get(key, 0) + torch.where(finite, value.detach(), 0)
                    nonfinite[key] = nonfinite.get(key, 0) + ~finite
            if episode_number % config.log_every == 0 or episode_number == config.episodes:
                now = time.perf_counter()
                counts = {name: int(count) for name, count in nonfinite.items()}
                row = {"episode": episode_number, "lr": scheduler.get_last_lr()[0],
                       **{name: float(total) / (steps - counts[name]) if counts[name] < steps else None
                          for name, total in sums.items()},
                       "episodes_per_s": steps / (now - interval_start), "skipped_steps": skips.take()}
                record(row)
                skips.check(counts, episode_number - steps + 1, episode_number)
                bar.set_postfix(loss=row["classification"], acc=row["accuracy"])
                sums, nonfinite, steps, interval_start = {}, {}, 0, now
            if episode_number % config.val_every == 0 or episode_number == config.episodes:
                validation_start = time.perf_counter()
                if model.hallucinator is not None:
                    model.hallucinator.before_validation(model, base_split, seed=config.seed + episode_number,
                                                         device=device, precision=config.precision)
                result = evaluate(model, val_split, n_way=config.val_n_way, k_shot=config.val_k_shot,
                                  episodes=config.val_episodes, seed=config.seed, device=device,
                                  precision=config.precision)
                record({"episode": episode_number, "val_accuracy": result.accuracy, "val_ci95": result.ci95})
                if result.accuracy > best["val_accuracy"]:
                    best = {"val_accuracy": result.accuracy, "episode": episode_number,
                            "model": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}}
                bar.set_postfix(val=f"{result.accuracy:.2f}")
                model.train()
                interval_start += time.perf_counter() - validation_start
            if episode_number % config.checkpoint_every == 0 or episode_number == config.episodes:
                checkpoint(episode_number)
    finally:
        bar.close()
        if layers is not None:
            layers.remove()

    summary = {"config": config.as_dict(), "episodes": config.episodes, "best_val_accuracy": best["val_accuracy"],
               "best_episode": best["episode"], "wall_time_s_this_session": time.perf_counter() - run_start,
               "history": history}
    write_json_atomic(out_dir / "metrics.json", summary)
    return summary


def open_domain(name: str, config: MultiDomainConfig, *, data_root=None, cache_dir=None):
    """The store of domain ``name``, refused unless its images have the classifier's shape (``config.image_size``
    square, ``config.dataset``'s channels)."""
    channels = DATASETS[config.dataset].CHANNELS
    if DATASETS[name].CHANNELS != channels:
        raise ValueError(f"domain {name!r} has {DATASETS[name].CHANNELS}-channel images; the classifier takes "
                         f"{channels}-channel ones (dataset {config.dataset!r}): every domain must have its shape")
    store = open_store(name, image_size=config.image_size, root=data_root, cache=cache_dir)
    shape = (config.image_size, config.image_size, channels)
    if tuple(store.image_shape) != shape:
        raise ValueError(f"domain {name!r}: its store {store.path} holds images of shape {tuple(store.image_shape)} "
                         f"(H, W, C), the classifier takes {shape}")
    return store


def run_multidomain(config: MultiDomainConfig, *, out: str | Path, resume: bool = False, data_root=None,
                    cache_dir=None, device: str | None = None, progress: bool = True) -> dict:
    """Train the classifier ``config`` describes on the train splits of ``config.domains`` with ``config.trainer``,
    selecting on the val split of ``config.val_domain``.

    A two-stage config (``hallucinator_episodes > 0``) trains stage 1, the embedding without a hallucinator, into
    ``out/stage1`` (unless ``init_from`` names its result), then stage 2, the hallucinator on the frozen embedding,
    with `train_episodic` over every training domain's train split (one `ConcatSplit`), into ``out``; ``resume``
    continues whichever stage was interrupted."""
    stores = {name: open_domain(name, config, data_root=data_root, cache_dir=cache_dir)
              for name in config.training_domains}
    train_splits = {name: store.split("train", augment=build_augmentation(config.augment), augment_seed=config.seed)
                    for name, store in stores.items()}
    val_split = open_domain(config.val_domain, config, data_root=data_root, cache_dir=cache_dir).split("val")
    try:  # refused now, not at the first validation val_every episodes in (15 queries, as validation uses)
        EpisodeSampler(val_split.labels, n_way=config.val_n_way, k_shot=config.val_k_shot, q_query=15, episodes=1)
    except ValueError as error:
        raise ValueError(f"validation episodes (val_n_way, val_k_shot) on the val split of {config.val_domain!r}: "
                         f"{error}") from None
    out, device = Path(out), resolve_device(device)
    if config.two_stage:
        return _run_two_stages(config, stores, train_splits, val_split, out=out, resume=resume, device=device,
                               progress=progress)
    torch.manual_seed(config.seed)
    model = build_classifier(config)
    if config.init_from:
        load_backbone(model, config.init_from)
    return train_multidomain(config, model, train_splits, val_split, out_dir=out, device=device, resume=resume,
                             progress=progress)


def _run_two_stages(config: MultiDomainConfig, stores: dict, train_splits: dict, val_split, *, out: Path,
                    resume: bool, device: torch.device, progress: bool) -> dict:
    if config.init_from:
        stage1 = config.init_from
    else:
        stage1_dir = out / "stage1"
        torch.manual_seed(config.seed)
        plain = config.stage1()
        train_multidomain(plain, build_classifier(plain), train_splits, val_split, out_dir=stage1_dir, device=device,
                          resume=resume and (stage1_dir / "checkpoint.pt").is_file(), progress=progress)
        stage1 = str(stage1_dir / "checkpoint.pt")
    torch.manual_seed(config.seed)
    model = build_classifier(config)
    load_backbone(model, stage1, with_learner=True)
    base = ConcatSplit([store.split("train") for store in stores.values()])
    return train_episodic(config.classifier_config(), model, base, val_split, out_dir=out, device=device,
                          resume=resume and (out / "checkpoint.pt").is_file(), progress=progress)
