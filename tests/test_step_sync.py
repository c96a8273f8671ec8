"""A training step never makes the host wait for the device: between one episode and the next, nothing reads a tensor
back (``.item()``, ``bool``, ``int``, ``float``, ``.tolist()``, ``.numpy()``). On a GPU each such read stalls the
queue of work until the device catches up. The reads are Python calls, so they are counted here on the CPU, where
the test runs without a GPU; test_gpu.py checks the same steps on CUDA with ``torch.cuda.set_sync_debug_mode``,
which also sees syncs made inside torch's C++ code."""
import sys
from collections import Counter
from collections.abc import Callable
from unittest import mock

import pytest
import torch

import hallucinate.training.episodic as episodic
from hallucinate.model import build_classifier
from hallucinate.training import EpisodicConfig, train_episodic
from tests.conftest import Enough, NoiseSplit

READS = ("item", "tolist", "numpy", "__bool__", "__int__", "__float__", "__index__", "__complex__", "__array__")
# Modules whose reads are of host tensors on a GPU run too, so they do not sync: Adam's step count (kept on the host
# unless capturable) and the DataLoader's base seed, drawn once per pass over the loader.
HOST_READERS = ("/torch/optim/", "/torch/utils/data/")
LEARNERS = {"protonet": "conv4", "matching": "conv4", "relation": "conv4_maps", "siamese": "conv4", "maml": "pixels",
            "anil": "conv4", "baseline_pp": "conv4"}
# Each hallucinator as it trains: the calibrated GAN ("gan", the default generator) in stage 2 of a two-stage run, on
# the frozen backbone's features; the noise GAN and the others jointly with the backbone.
STAGE_2 = dict(hallucinator_episodes=100, hallucinator_n_way=3, hallucinator_k_shot=1, hallucinator_q_query=2)
HALLUCINATORS = {"none": {}, "mlp": {}, "gan": STAGE_2, "gan_noise": {"hallucinator": "gan", "gan_generator": "noise"},
                 "analogy": {}}
# Baseline and Baseline++ train episodically only after pre-training, and then only their hallucinator, on the
# frozen backbone, scoring its episodes with prototypes.
CASES = [(learner, hallucinator) for learner in LEARNERS for hallucinator in HALLUCINATORS
         if not (learner == "baseline_pp" and hallucinator == "none")]
STEPS, N_WAY, K_SHOT, Q_QUERY = 3, 3, 1, 2
EPISODE_ITEMS = N_WAY * (K_SHOT + Q_QUERY)


def _count_reads(monkeypatch) -> tuple[Counter, Callable[[], None]]:
    """Each read of a tensor back to the host, by read and by the line that made it, counted once ``start`` is
    called."""
    reads, started = Counter(), []
    for name in READS:
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _original=original, _name=name, **kwargs):
            caller = sys._getframe(1).f_code.co_filename
            if started and not any(reader in caller for reader in HOST_READERS):
                reads[f"{_name} at {caller}:{sys._getframe(1).f_lineno}"] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    return reads, lambda: started.append(True)


def step_config(learner: str, hallucinator: str) -> EpisodicConfig:
    settings = dict(hallucinator=hallucinator) | HALLUCINATORS[hallucinator]
    return EpisodicConfig(learner=learner, backbone=LEARNERS[learner], n_way=N_WAY, k_shot=K_SHOT, q_query=Q_QUERY,
                          n_synthetic=2, episodes=100, log_every=1000, val_every=1000, checkpoint_every=1000,
                          num_workers=0, hallucinator_hidden=16, critic_hidden=16,
                          pretrain_epochs=int(learner == "baseline_pp"), **settings)


class ServedSampler:
    """An `EpisodeSampler` that asks ``split`` for each item of an episode as the episode is drawn: on a frozen
    backbone the episodes come from features embedded once, in the set-up, and this keeps the budget and the
    first-item call of a `NoiseSplit` marking the steps as they do for episodes of images."""

    def __init__(self, sampler, split: NoiseSplit):
        self.sampler, self.split = sampler, split

    def __getattr__(self, name: str):
        return getattr(self.sampler, name)

    def __iter__(self):
        for indices in self.sampler:
            for index in indices:
                self.split[index]
            yield indices


def train_until_enough(learner: str, hallucinator: str, split: NoiseSplit, *, device: torch.device, out_dir) -> None:
    """Train on ``split`` until it raises `Enough`, in a run that would log, validate and checkpoint later. On a
    frozen backbone (stage 2, Baseline++ after pre-training) the loop embeds a copy of ``split`` without its budget
    (the same images), and ``split`` is asked for each episode's items as the episode is drawn from the features."""
    config = step_config(learner, hallucinator)
    torch.manual_seed(0)
    model = build_classifier(config)
    frozen = config.two_stage or config.pretrain_epochs > 0
    images = NoiseSplit(10**9) if frozen else split
    draw = episodic.feature_episodes
    served = lambda bank, labels, sampler: draw(bank, labels, ServedSampler(sampler, split))  # noqa: E731
    with mock.patch.object(episodic, "feature_episodes", served), pytest.raises(Enough):
        train_episodic(config, model, images, images, out_dir=out_dir, device=device, progress=False)


def _train_steps(learner: str, hallucinator: str, tmp_path, monkeypatch) -> Counter:
    """The reads made by the first `STEPS` steps (from the first episode's loading on)."""
    reads, start = _count_reads(monkeypatch)
    split = NoiseSplit(STEPS * EPISODE_ITEMS, on_first_item=start)
    train_until_enough(learner, hallucinator, split, device=torch.device("cpu"), out_dir=tmp_path)
    monkeypatch.undo()
    assert split.served > STEPS * EPISODE_ITEMS  # every step ran
    return reads


@pytest.mark.parametrize(("learner", "hallucinator"), CASES)
def test_a_training_step_reads_no_tensor_back_to_the_host(learner, hallucinator, tmp_path, monkeypatch):
    assert _train_steps(learner, hallucinator, tmp_path, monkeypatch) == Counter()


@pytest.mark.parametrize(("learner", "hallucinator"), [("protonet", "none"), ("protonet", "gan"),
                                                       ("baseline_pp", "mlp")])
def test_the_check_sees_a_read_in_the_step(learner, hallucinator, tmp_path, monkeypatch):
    """On images, in stage 2 and after pre-training (where prototypes score the episodes): one read a step, no more
    (none of the set-up's: the embedding of the split, the calibrated GAN's base statistics)."""
    from hallucinate.learners import PrototypicalNetworks

    forward = PrototypicalNetworks.forward
    monkeypatch.setattr(PrototypicalNetworks, "forward", lambda self, support, labels, query, *args, **kwargs: (
        forward(self, support, labels, query, *args, **kwargs) * float(support.sum() != 0)))
    reads = _train_steps(learner, hallucinator, tmp_path, monkeypatch)
    assert sum(count for read, count in reads.items() if read.startswith("__float__")) == STEPS
    assert step_config(learner, hallucinator).two_stage == (hallucinator == "gan")
