"""N-way K-shot Q-query episodes as a plain, seeded torch Sampler, and the collate that makes them `Episode`s."""
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Sampler

from ..episode import Episode


class EpisodeSampler(Sampler[list[int]]):
    """Yields the dataset indices of one episode at a time: ``n_way * k_shot`` support indices, class by class,
    then ``n_way * q_query`` query indices in the same class order.

    Episode ``e`` depends only on ``(seed, e)``: the same seed gives the same episodes, and a sampler started at
    ``start`` continues a run exactly where it stopped.

    In distributed training, rank ``r`` of ``world_size`` yields episodes ``r``, ``r + world_size``, ...: at step
    ``t`` the ranks together train on episodes ``t * world_size`` to ``t * world_size + world_size - 1`` of the one
    stream, and ``episodes`` and ``start`` count steps.
    """

    def __init__(self, labels: Sequence[int], *, n_way: int, k_shot: int, q_query: int, episodes: int,
                 seed: int = 0, start: int = 0, rank: int = 0, world_size: int = 1):
        labels = np.asarray(labels)
        classes, counts = np.unique(labels, return_counts=True)
        if min(n_way, k_shot, q_query, episodes) < 1:
            raise ValueError(f"n_way, k_shot, q_query and episodes must be at least 1, got "
                             f"{n_way}, {k_shot}, {q_query}, {episodes}")
        if n_way > len(classes):
            raise ValueError(f"asked for {n_way}-way episodes but there are only {len(classes)} classes")
        if k_shot + q_query > counts.min():
            smallest = classes[counts.argmin()]
            raise ValueError(f"asked for {k_shot} shots + {q_query} queries = {k_shot + q_query} images per class "
                             f"but class {smallest} has only {counts.min()}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in 0..world_size-1, got rank {rank} of {world_size}")
        self.n_way, self.k_shot, self.q_query = n_way, k_shot, q_query
        self.episodes, self.seed, self.start = episodes, seed, start
        self.rank, self.world_size = rank, world_size
        self.members = [np.flatnonzero(labels == c) for c in classes]

    def __len__(self) -> int:
        return max(self.episodes - self.start, 0)

    def __iter__(self) -> Iterator[list[int]]:
        for step in range(self.start, self.episodes):
            yield self.episode_indices(step * self.world_size + self.rank)

    def episode_indices(self, episode: int) -> list[int]:
        rng = np.random.default_rng([self.seed, episode])
        support, query = [], []
        for c in rng.choice(len(self.members), self.n_way, replace=False):
            picked = rng.choice(self.members[c], self.k_shot + self.q_query, replace=False)
            support.extend(picked[:self.k_shot])
            query.extend(picked[self.k_shot:])
        return [int(i) for i in support + query]


class EpisodeCollate:
    """``[(uint8 image [H, W, C], class), ...]`` in `EpisodeSampler` order -> `Episode` of float images in [0, 1]."""

    def __init__(self, n_way: int, k_shot: int, q_query: int):
        self.n_way, self.k_shot, self.q_query = n_way, k_shot, q_query

    def __call__(self, items: list[tuple[np.ndarray, int]]) -> Episode:
        n_support = self.n_way * self.k_shot
        if len(items) != n_support + self.n_way * self.q_query:
            raise ValueError(f"expected {n_support + self.n_way * self.q_query} images for a {self.n_way}-way "
                             f"{self.k_shot}-shot {self.q_query}-query episode, got {len(items)}")
        images = torch.from_numpy(np.stack([image for image, _ in items])).permute(0, 3, 1, 2).float().div_(255)
        classes = torch.tensor([label for _, label in items])
        class_ids = classes[:n_support:self.k_shot]
        support_labels = torch.arange(self.n_way).repeat_interleave(self.k_shot)
        query_labels = torch.arange(self.n_way).repeat_interleave(self.q_query)
        if not (torch.equal(classes[:n_support], class_ids[support_labels])
                and torch.equal(classes[n_support:], class_ids[query_labels])):
            raise ValueError("images are not in EpisodeSampler order (support class by class, then query)")
        return Episode(images[:n_support], support_labels, images[n_support:], query_labels, class_ids)


def episode_loader(dataset, sampler: EpisodeSampler, *, num_workers: int = 0, pin_memory: bool = False):
    return torch.utils.data.DataLoader(
        dataset, batch_sampler=sampler, collate_fn=EpisodeCollate(sampler.n_way, sampler.k_shot, sampler.q_query),
        num_workers=num_workers, pin_memory=pin_memory, persistent_workers=False,
        prefetch_factor=4 if num_workers else None)
