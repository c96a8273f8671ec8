"""Episodic evaluation on a frozen backbone: every image of the split is embedded once (the feature bank), then each
seeded episode is classified from the bank."""
import hashlib
import os
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..data.sampler import EpisodeSampler
from ..device import autocast, bf16_supported
from .statistics import EvalResult


@torch.no_grad()
def embed_split(model, split, *, device: torch.device, precision: str = "fp32", indices: list[int] | None = None,
                batch_size: int = 1000, progress: bool = False) -> torch.Tensor:
    """Features ``[len(indices), D]`` (float32, on ``device``) of the images ``indices`` of ``split`` (default: all,
    in index order)."""
    indices = list(range(len(split))) if indices is None else indices
    was_training = model.training
    model.eval()
    features = []
    for start in tqdm(range(0, len(indices), batch_size), desc=f"embed {split.name}", disable=not progress,
                      leave=False):
        images = np.stack([image for image, _ in split.__getitems__(indices[start:start + batch_size])])
        batch = torch.from_numpy(images).to(device).permute(0, 3, 1, 2).float().div_(255)
        with autocast(device, precision):
            features.append(model.embed(batch).float())
    model.train(was_training)
    return torch.cat(features)


def feature_bank(model, split, *, device: torch.device, precision: str, cache: Path | None = None,
                 progress: bool = False) -> torch.Tensor:
    """`embed_split`, kept on disk under ``cache`` keyed by the backbone's weights, the store and the precision it
    runs in ("auto" as bf16 or fp32), so evaluating the same checkpoint again (other N, K, seed, hallucination on or
    off) skips the embedding."""
    if cache is None:
        return embed_split(model, split, device=device, precision=precision, progress=progress)
    computed_in = "bf16" if precision == "bf16" or (precision == "auto" and bf16_supported(device)) else "fp32"
    digest = hashlib.sha256(f"{split.store.path.resolve()}|{split.store.meta['source_fingerprint']}|{split.name}|"
                            f"{computed_in}".encode())
    for name, tensor in sorted(model.backbone.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    path = Path(cache) / "banks" / f"{digest.hexdigest()[:32]}.pt"
    if path.is_file():
        bank = torch.load(path, weights_only=True, map_location=device)
        if bank.shape[0] == len(split):
            return bank
    bank = embed_split(model, split, device=device, precision=precision, progress=progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.partial-{os.getpid()}")
    torch.save(bank.cpu(), partial)
    os.replace(partial, path)
    return bank


@torch.no_grad()
def evaluate(model, split, *, n_way: int, k_shot: int, q_query: int = 15, episodes: int = 1000, seed: int = 0,
             hallucinate: bool | None = None, device: torch.device, precision: str = "fp32",
             bank: torch.Tensor | None = None, cache: Path | None = None, progress: bool = False) -> EvalResult:
    """Accuracy over ``episodes`` seeded episodes of ``split``; the same seed gives the same episodes, whatever
    the model and whether it hallucinates (``None`` keeps the model's current setting). ``precision`` is the
    backbone's when it embeds the images, and that of a learner's part that has one (relation networks' module):
    "fp32" evaluates it in float32 whatever the precision it was trained at."""
    sampler = EpisodeSampler(split.labels, n_way=n_way, k_shot=k_shot, q_query=q_query, episodes=episodes,
                             seed=seed)
    if bank is None and cache is not None:
        bank = feature_bank(model, split, device=device, precision=precision, cache=cache, progress=progress)
    elif bank is None:  # embed only the images these episodes use (all of them, for long evaluations)
        used = sorted({i for indices in sampler for i in indices})
        features = embed_split(model, split, device=device, precision=precision, indices=used, progress=progress)
        bank = features.new_zeros(len(split), features.shape[1])
        bank[torch.as_tensor(used, device=device)] = features
    was_hallucinating, was_training = model.hallucinating, model.training
    was_learner_precision = getattr(model.learner, "precision", None)
    if hallucinate is not None:
        model.set_hallucination(hallucinate)
    if was_learner_precision is not None:
        model.learner.precision = precision
    model.eval()
    rng = torch.Generator(device=device).manual_seed(seed)
    support_labels = torch.arange(n_way, device=device).repeat_interleave(k_shot)
    query_labels = torch.arange(n_way, device=device).repeat_interleave(q_query)
    n_support = n_way * k_shot
    correct = []
    try:
        for indices in tqdm(sampler, desc=f"eval {n_way}-way {k_shot}-shot", disable=not progress, leave=False):
            features = bank[torch.as_tensor(indices, device=device)]
            logits = model.classify_features(features[:n_support], support_labels, features[n_support:], rng=rng)
            correct.append((logits.argmax(1) == query_labels).float().mean())
    finally:
        model.hallucinating = was_hallucinating
        model.train(was_training)
        if was_learner_precision is not None:
            model.learner.precision = was_learner_precision
    return EvalResult(tuple(torch.stack(correct).cpu().tolist()), n_way, k_shot, q_query, seed,
                      model.hallucinating if hallucinate is None else hallucinate)
