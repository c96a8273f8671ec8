"""The prefetcher off CUDA: each episode of the loader, moved to the device when it is asked for (the CUDA side
stream is tested in test_gpu.py)."""
import torch

from hallucinate.data.prefetch import DevicePrefetcher
from hallucinate.data.sampler import EpisodeSampler, episode_loader
from tests.conftest import NoiseSplit


def _loader():
    split = NoiseSplit(items=10**6)
    return episode_loader(split, EpisodeSampler(split.labels, n_way=3, k_shot=1, q_query=2, episodes=6, seed=0))


def test_on_the_cpu_it_gives_the_loaders_episodes_unchanged():
    plain, prefetched = list(_loader()), list(DevicePrefetcher(_loader(), torch.device("cpu")))
    assert len(prefetched) == len(plain) == 6
    for a, b in zip(plain, prefetched):
        assert all(torch.equal(x, y) for x, y in zip(a._tensors(), b._tensors()))


def test_off_cuda_each_episode_is_moved_to_the_device():
    (episode,) = DevicePrefetcher([next(iter(_loader()))], "meta")
    assert {t.device.type for t in episode._tensors()} == {"meta"}
