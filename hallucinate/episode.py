"""The one value every stage of the episode stream passes along."""
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Episode:
    """An N-way K-shot Q-query task.

    ``support`` and ``query`` are images ``[B, C, H, W]`` (or features ``[B, D]`` after the backbone);
    labels are remapped to ``0..N-1``; ``class_ids`` holds the original class index of each way.
    """

    support: torch.Tensor
    support_labels: torch.Tensor
    query: torch.Tensor
    query_labels: torch.Tensor
    class_ids: torch.Tensor

    @property
    def n_way(self) -> int:
        return len(self.class_ids)

    def to(self, device, non_blocking: bool = False) -> "Episode":
        return Episode(*(t.to(device, non_blocking=non_blocking) for t in self._tensors()))

    def pin_memory(self) -> "Episode":
        return Episode(*(t.pin_memory() for t in self._tensors()))

    def record_stream(self, stream) -> None:
        """Mark every tensor as used by CUDA ``stream`` (see `torch.Tensor.record_stream`)."""
        for t in self._tensors():
            t.record_stream(stream)

    def _tensors(self):
        return (self.support, self.support_labels, self.query, self.query_labels, self.class_ids)


def ways(labels: torch.Tensor, n_way: int | None = None) -> int:
    """The number of classes of labels ``0..N-1``: ``n_way`` when the caller knows it, else read from the labels,
    which makes the host wait for the device (on a GPU, a sync that stalls its queue of work; the training loop
    passes ``n_way`` so that its steps have none)."""
    return int(labels.max()) + 1 if n_way is None else n_way
