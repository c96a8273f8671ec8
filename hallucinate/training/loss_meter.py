"""The per-interval bookkeeping of a training loop's log rows: each loss's mean over the steps where it was finite,
how many times it was not, and the interval's steps and seconds (validation time left out). The sums stay on the
device, so a step costs no synchronisation."""
import time

import torch


class LossMeter:
    def __init__(self):
        self._reset(time.perf_counter())

    def _reset(self, now: float) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.nonfinite: dict[str, torch.Tensor] = {}
        self.steps, self.start = 0, now

    def add(self, losses: dict[str, torch.Tensor]) -> None:
        """One step's values (scalar tensors)."""
        for name, value in losses.items():
            value = value.detach()
            finite = torch.isfinite(value)
            self.sums[name] = self.sums.get(name, 0) + torch.where(finite, value, 0)
            self.nonfinite[name] = self.nonfinite.get(name, 0) + ~finite
        self.steps += 1

    def leave_out(self, seconds: float) -> None:
        """Time spent in the interval on something else (validation), not counted in its speed."""
        self.start += seconds

    def take(self) -> tuple[dict[str, float | None], dict[str, int], int, float]:
        """``(means, nonfinite_counts, steps, seconds)`` of the interval since the last call, then a new interval.
        A loss that was never finite has the mean None."""
        now = time.perf_counter()
        counts = {name: int(count) for name, count in self.nonfinite.items()}
        means = {name: float(total) / (self.steps - counts[name]) if counts[name] < self.steps else None
                 for name, total in self.sums.items()}
        taken = (means, counts, self.steps, now - self.start)
        self._reset(now)
        return taken
