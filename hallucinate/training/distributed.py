"""Training on several processes that `torchrun` starts: one per GPU, or several on CPUs, on one machine or many.

torchrun gives each process ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK`` (and where to meet, ``MASTER_ADDR`` and
``MASTER_PORT``); `process_group` joins them for the length of a run. Inside it the episodic loop trains one episode
per rank at each step, averages gradients with `all_reduce_gradients`, and leaves writing files to rank 0. Without
torchrun (``WORLD_SIZE`` unset or 1) nothing here creates a process group and `rank()`/`world_size()` are 0 and 1."""
import contextlib
import os
from collections.abc import Callable, Iterable, Iterator

import numpy as np
import torch
import torch.distributed as dist
from torch import nn


@contextlib.contextmanager
def process_group(device: str | None = None) -> Iterator[str | None]:
    """When torchrun started this process as one of several (``WORLD_SIZE`` > 1), join the process group for the
    block and yield the device this rank trains on: ``cuda:LOCAL_RANK`` with NCCL when CUDA is there (unless
    ``device`` is "cpu"), else the CPU with gloo. Otherwise create nothing and yield ``device`` as given."""
    if int(os.environ.get("WORLD_SIZE", "1")) == 1:
        yield device
        return
    wanted = torch.device(device) if device else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if wanted.type == "cuda":
        if wanted.index is not None:
            raise ValueError(f"--device {device}: under torchrun each rank trains on cuda:LOCAL_RANK; pass --device "
                             f"cuda (or leave it out)")
        if "LOCAL_RANK" not in os.environ:
            raise ValueError("WORLD_SIZE is set but LOCAL_RANK is not: start the processes with torchrun")
        local_rank = int(os.environ["LOCAL_RANK"])
        if local_rank >= torch.cuda.device_count():
            raise ValueError(f"LOCAL_RANK is {local_rank} but this machine has {torch.cuda.device_count()} GPUs: "
                             f"start at most that many processes per node (torchrun --nproc_per_node)")
        rank_device = torch.device("cuda", local_rank)
        torch.cuda.set_device(rank_device)
        dist.init_process_group("nccl", device_id=rank_device)
    elif wanted.type == "cpu":
        rank_device = wanted
        dist.init_process_group("gloo")
    else:
        raise ValueError(f"distributed training runs on cuda or cpu, not {wanted.type}")
    try:
        yield str(rank_device)
        dist.barrier()  # rank 0 may still be writing its last files: leave together
    finally:
        dist.destroy_process_group()


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def episode_seed(seed: int, episode: int) -> int:
    """The seed of one episode's hallucination randomness (seeds, noise, critic samples) in a distributed run: it
    depends on nothing but the run's seed and the episode's number, so a resumed rank needs no saved RNG state."""
    return int(np.random.SeedSequence([seed, episode]).generate_state(1)[0])


def all_reduce_gradients(parameters: Iterable[nn.Parameter], ok: torch.Tensor,
                         buffers: Iterable[torch.Tensor] = ()) -> torch.Tensor:
    """Average over the ranks, in one all-reduce of one flat tensor: the gradients of ``parameters`` (a parameter
    without a gradient counts as zero, and gets that zero) and the values of ``buffers``. The same all-reduce carries
    each rank's ``ok`` (a bool tensor: were its losses finite?); the result says whether every rank's were, so all
    ranks skip or take a step together."""
    parameters, buffers = list(parameters), list(buffers)
    for p in parameters:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    tensors = [p.grad for p in parameters] + buffers
    flat = torch.cat([t.detach().flatten() for t in tensors] + [(~ok).reshape(1).to(tensors[0].dtype)])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    for tensor, average in zip(tensors, flat[:-1].split([t.numel() for t in tensors])):
        tensor.copy_(average.view_as(tensor))
    return flat[-1] == 0


def running_statistics(module: nn.Module) -> list[torch.Tensor]:
    """The batch-norm running means and variances that a forward pass in training mode updates. Each rank updates
    them from its own episode; averaging them (with the gradients) keeps the ranks identical and lets them describe
    every rank's episodes (DistributedDataParallel instead copies rank 0's over the others)."""
    return [stat for m in module.modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training and m.track_running_stats
            for stat in (m.running_mean, m.running_var)]


def sum_over_ranks(tensor: torch.Tensor) -> torch.Tensor:
    if dist.is_initialized():
        dist.all_reduce(tensor)
    return tensor


def on_rank_zero(load: Callable[[], dict]) -> dict:
    """``load()`` run by rank 0 alone and its result (or the error it raised) sent to every rank, so only rank 0
    needs the file (the run folder may be on its machine alone), and every rank fails alike if it cannot be read."""
    if not dist.is_initialized():
        return load()
    message = [None]
    if dist.get_rank() == 0:
        try:
            message = [load()]
        except Exception as error:
            message = [error]
    dist.broadcast_object_list(message, src=0)
    if isinstance(message[0], Exception):
        raise message[0]
    return message[0]


def check_in_sync(module: nn.Module) -> None:
    """Raise if ``module``'s weights or buffers differ between the ranks (they never should: every rank starts from
    the same seeded weights and applies the same averaged updates). Compares a checksum per tensor; one all-gather."""
    if not dist.is_initialized():
        return
    names, tensors = zip(*module.state_dict().items())
    sums = torch.stack([torch.stack([t.double().sum(), t.double().abs().sum()]) for t in tensors])
    gathered = [torch.empty_like(sums) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, sums)
    for other, sums_there in enumerate(gathered[1:], start=1):
        differs = (sums_there != gathered[0]).any(1).nonzero()
        if len(differs):
            raise RuntimeError(f"ranks 0 and {other} hold different values of {names[int(differs[0])]!r}: "
                               f"the processes no longer train the same model")
