"""The CUDA path: skipped without a GPU (see conftest.py)."""
import pytest
import torch

from hallucinate import load
from hallucinate.cli import main
from hallucinate.data import open_store
from hallucinate.data.prefetch import DevicePrefetcher
from hallucinate.data.sampler import EpisodeSampler, episode_loader
from hallucinate.evaluation import evaluate
from tests.conftest import TINY, TINY_STAGE_2, NoiseSplit, sets
from tests.test_step_sync import CASES, EPISODE_ITEMS, STEPS, train_until_enough


@pytest.mark.gpu
def test_training_and_evaluation_run_on_cuda(omniglot, data_root, cache, tmp_path):
    """Both stages of the default two-stage GAN pipeline on CUDA, then evaluation on CUDA and on the CPU."""
    args = ["run", "pipelines/omniglot_protonet_gan.py", "--out", str(tmp_path), "--device", "cuda", "--data-root",
            str(data_root), "--cache-dir", str(cache), "--no-progress"]
    assert main(args + sets(*TINY, *TINY_STAGE_2, "episodes=20")) == 0
    assert (tmp_path / "stage1" / "checkpoint.pt").is_file()
    image_size = load(tmp_path / "checkpoint.pt", device="cpu").config.image_size
    test = open_store("omniglot", image_size=image_size, root=data_root, cache=cache).split("test")
    settings = dict(n_way=5, k_shot=1, episodes=50, seed=0, hallucinate=False)
    on_gpu = evaluate(load(tmp_path / "checkpoint.pt", device="cuda"), test, device=torch.device("cuda"), **settings)
    on_cpu = evaluate(load(tmp_path / "checkpoint.pt", device="cpu"), test, device=torch.device("cpu"), **settings)
    assert abs(on_gpu.accuracy - on_cpu.accuracy) < 1.0
    hallucinating = evaluate(load(tmp_path / "checkpoint.pt", device="cuda"), test, device=torch.device("cuda"),
                             **settings | {"hallucinate": True})
    assert 0 < hallucinating.accuracy <= 100


@pytest.mark.parametrize(("learner", "hallucinator"), CASES)
@pytest.mark.gpu
def test_cuda_training_steps_never_wait_for_the_device(learner, hallucinator, tmp_path):
    """`torch.cuda.set_sync_debug_mode` raises at any sync, the ones inside torch's C++ code included (a read of a
    tensor, a data-dependent shape, a blocking copy), from the first episode's loading to the last step (on a frozen
    backbone, from the first episode drawn from the features; see `train_until_enough`)."""
    split = NoiseSplit((STEPS + 1) * EPISODE_ITEMS, on_first_item=lambda: torch.cuda.set_sync_debug_mode("error"))
    try:  # the prefetcher loads episode t + 1 before step t: STEPS + 1 episodes make STEPS steps
        train_until_enough(learner, hallucinator, split, device=torch.device("cuda"), out_dir=tmp_path)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert split.served > (STEPS + 1) * EPISODE_ITEMS
    assert torch.backends.cudnn.benchmark


@pytest.mark.gpu
def test_prefetched_episodes_are_the_loaders_bit_for_bit():
    """Each episode is read on the training stream after a long kernel there, and dropped before it is read: the
    reads see the episode the loader made, not the next copies that the side stream writes meanwhile (they would,
    were the stream waits or the allocator's record of the training stream's use missing)."""
    def loader():
        split = NoiseSplit(items=10**6)
        sampler = EpisodeSampler(split.labels, n_way=3, k_shot=1, q_query=2, episodes=20, seed=0)
        return episode_loader(split, sampler, pin_memory=True)

    device = torch.device("cuda")
    busy, seen = torch.randn(4096, 4096, device=device), []
    for episode in DevicePrefetcher(loader(), device):
        assert {t.device.type for t in episode._tensors()} == {"cuda"}
        for _ in range(5):
            busy = torch.nn.functional.normalize(busy @ busy)
        seen.append(torch.cat([t.flatten().double() for t in episode._tensors()]))
        del episode
    torch.cuda.synchronize()
    expected = [torch.cat([t.flatten().double() for t in episode._tensors()]) for episode in loader()]
    assert len(seen) == len(expected) == 20
    assert all(torch.equal(a.cpu(), b) for a, b in zip(seen, expected))
