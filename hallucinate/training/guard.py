"""Steps whose losses are not finite (NaN or inf) change no weight, and a run that keeps producing them stops.

All of it is decided on the device: a step's update is applied and then undone with ``torch.where`` where its loss
was not finite, so the guard never makes the host wait for the device inside a step (on a GPU, reading the flag each
step would stall the queue of work). The counts are read at log intervals, when the loop reads its metrics anyway."""
import torch


class NonFiniteLossError(RuntimeError):
    pass


@torch.no_grad()
def step_if(ok: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
    """``optimizer.step()``, undone unless ``ok`` (a bool tensor on the parameters' device): the parameters and
    their optimizer state (Adam's moment estimates) keep their values, and a state the undone step created goes back
    to zeros, where Adam starts it. Adam's step counter, a host tensor, still advances (holding it back would mean
    reading ``ok`` on the host), so later steps' bias correction counts one step more per skipped step."""
    params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
    kept = [(p.clone(), {key: value.clone() for key, value in optimizer.state[p].items() if key != "step"})
            for p in params]
    optimizer.step()
    for p, (old, old_state) in zip(params, kept):
        p.copy_(torch.where(ok, p, old))
        for key, value in optimizer.state[p].items():
            if key != "step":
                value.copy_(torch.where(ok, value, old_state.get(key, 0)))


class SkipCounter:
    """Counts, on the device, the steps skipped since the last check and the current run of consecutive ones;
    `check` (at a log interval) raises once a run has reached ``limit``. A step trains on ``episodes_per_step``
    episodes (a meta-batch)."""

    def __init__(self, limit: int, device: torch.device, *, episodes_per_step: int = 1):
        if limit < 1:
            raise ValueError(f"max_nonfinite_steps must be at least 1, got {limit}")
        self.limit, self.episodes_per_step = limit, episodes_per_step
        self.skipped = torch.zeros((), dtype=torch.long, device=device)
        self.streak = torch.zeros((), dtype=torch.long, device=device)
        self.reached_at = torch.zeros((), dtype=torch.long, device=device)  # the episode a streak reached the limit

    def update(self, skipped: torch.Tensor, episode: int) -> None:
        self.skipped += skipped
        self.streak = (self.streak + 1) * skipped
        self.reached_at = torch.where((self.streak == self.limit) & (self.reached_at == 0), episode, self.reached_at)

    def take(self) -> int:
        """The steps skipped since the last call."""
        skipped, self.skipped = int(self.skipped), torch.zeros_like(self.skipped)
        return skipped

    def check(self, nonfinite: dict[str, int], first_episode: int, last_episode: int) -> None:
        """``nonfinite``: how many times each loss was not finite in episodes ``first_episode..last_episode``."""
        if int(self.reached_at):
            named = ", ".join(f"{name} ({count}×)" for name, count in nonfinite.items() if count)
            steps = "episodes" if self.episodes_per_step == 1 else f"steps of {self.episodes_per_step} episodes"
            raise NonFiniteLossError(
                f"losses were NaN or inf in {self.limit} consecutive {steps}, up to episode "
                f"{int(self.reached_at)}; not finite in episodes {first_episode}-{last_episode}: {named}. Their "
                f"updates were skipped, so the weights (and the last checkpoint) are from before them; lower lr or "
                f"critic_lr, or raise max_nonfinite_steps (now {self.limit}) to allow longer runs of skipped steps")
