"""Episodes moved to the device one step ahead: on CUDA, episode t+1 is copied on a side stream while episode t
trains."""
from collections.abc import Iterable, Iterator

import torch

from ..episode import Episode


class DevicePrefetcher:
    """Iterates ``loader``'s episodes, each on ``device``.

    On CUDA the copy of the next episode is queued on a side stream before the current one is handed over, so the
    device copies it while it computes the current step. The copies are non-blocking, which only overlaps from
    pinned host memory (`episode_loader` pins when its device is CUDA). Before an episode is handed over, the
    training stream waits for its copy (``wait_stream``), and each of its tensors is recorded as used by that stream
    (``record_stream``): the tensors were allocated on the side stream, and the allocator must not give their memory
    to the side stream's next copy while the step may still read them. On any other device each episode is moved
    when it is asked for."""

    def __init__(self, loader: Iterable[Episode], device: torch.device):
        self.loader, self.device = loader, torch.device(device)

    def __iter__(self) -> Iterator[Episode]:
        if self.device.type != "cuda":
            for episode in self.loader:
                yield episode.to(self.device)
            return
        side = torch.cuda.Stream(self.device)
        episodes = iter(self.loader)
        upcoming = self._copy(next(episodes, None), side)
        while upcoming is not None:
            current = torch.cuda.current_stream(self.device)
            current.wait_stream(side)
            upcoming.record_stream(current)
            episode, upcoming = upcoming, self._copy(next(episodes, None), side)
            yield episode

    def _copy(self, episode: Episode | None, stream: torch.cuda.Stream) -> Episode | None:
        if episode is None:
            return None
        with torch.cuda.stream(stream):
            return episode.to(self.device, non_blocking=True)
