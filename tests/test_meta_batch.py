"""The meta-batch (``meta_batch``): each optimizer step averages the gradients of that many episodes. One episode per
step is plain Adam on each episode, bit for bit; two are one Adam step on the mean of two episodes' gradients, with
the learning rate's schedule still counted in episodes; a run stopped in the middle of an outer step resumes as an
unbroken one; a NaN in one episode skips its whole outer step; and settings that cannot fall between outer steps are
refused. Tiny runs on random 16-pixel images, no data set needed."""
import json
import os
import socket

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

import hallucinate.training.episodic as episodic
from hallucinate.cli import main
from hallucinate.data.sampler import EpisodeCollate, EpisodeSampler
from hallucinate.learners import episode_loss
from hallucinate.model import build_classifier
from hallucinate.training import CheckpointError, EpisodicConfig, distributed, load_checkpoint, train_episodic
from hallucinate.training.config import changed_settings
from hallucinate.training.guard import NonFiniteLossError
from tests.conftest import Enough

SIZE = 16
LEARNERS = {"maml": "pixels", "anil": "conv4"}


class RandomImages:
    """``per_class`` random images of each of ``classes`` classes; asking for more than ``items`` raises `Enough`."""

    name = "noise"

    def __init__(self, classes: int, per_class: int, *, seed: int, items: int = 10**9):
        self.labels = [c for c in range(classes) for _ in range(per_class)]
        self.images = np.random.default_rng(seed).integers(0, 256, (len(self.labels), SIZE, SIZE, 1), dtype=np.uint8)
        self.served, self.items = 0, items

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        self.served += 1
        if self.served > self.items:
            raise Enough
        return self.images[index], self.labels[index]

    def __getitems__(self, indices: list[int]) -> list:
        return [self[index] for index in indices]


def _config(**changes) -> EpisodicConfig:
    settings = dict(image_size=SIZE, learner="anil", backbone="conv4", n_way=5, k_shot=1, q_query=2, episodes=4,
                    lr_step=2, lr_gamma=0.5, val_every=4, val_episodes=2, val_n_way=5, log_every=2,
                    checkpoint_every=2, num_workers=0, precision="fp32", hallucinator_hidden=16, critic_hidden=16)
    return EpisodicConfig(**settings | changes)


def _train(config: EpisodicConfig, out_dir, *, train=None, resume: bool = False):
    torch.manual_seed(config.seed)
    model = build_classifier(config)
    train_episodic(config, model, train or RandomImages(6, 4, seed=0), RandomImages(5, 16, seed=1), out_dir=out_dir,
                   device=torch.device("cpu"), resume=resume, progress=False)
    return model


def _by_hand(config: EpisodicConfig):
    """The same run written out: the same initial weights and episodes; for each group of ``meta_batch``
    episodes, the mean of their loss gradients and one Adam step, at the learning rate of the group's first
    episode."""
    torch.manual_seed(config.seed)
    model = build_classifier(config).train()
    split = RandomImages(6, 4, seed=0)
    sampler = EpisodeSampler(split.labels, n_way=config.n_way, k_shot=config.k_shot, q_query=config.q_query,
                             episodes=config.episodes, seed=config.seed)
    collate = EpisodeCollate(config.n_way, config.k_shot, config.q_query)
    parameters = list(model.parameters())
    optimizer = torch.optim.Adam(parameters, lr=config.lr)
    n_support = config.n_way * config.k_shot
    for first in range(0, config.episodes, config.meta_batch):
        gradients = []
        for number in range(first, first + config.meta_batch):
            episode = collate(split.__getitems__(sampler.episode_indices(number)))
            images = torch.cat([episode.support, episode.query]).contiguous(memory_format=torch.channels_last)
            features = model.embed(images).float()
            logits = model.learner(features[:n_support], episode.support_labels, features[n_support:])
            gradients.append(torch.autograd.grad(episode_loss(model.learner, logits, episode.query_labels),
                                                 parameters))
        for p, *per_episode in zip(parameters, *gradients):
            p.grad = sum(per_episode) / config.meta_batch
        optimizer.param_groups[0]["lr"] = config.lr * config.lr_gamma ** (first // config.lr_step)
        optimizer.step()
    return model, optimizer


@pytest.mark.parametrize("meta_batch", [1, 2])
@pytest.mark.parametrize("learner", LEARNERS)
def test_an_outer_step_is_one_adam_step_on_the_mean_of_its_episodes_gradients(learner, meta_batch, tmp_path):
    config = _config(learner=learner, backbone=LEARNERS[learner], meta_batch=meta_batch)
    model = _train(config, tmp_path)
    expected, optimizer = _by_hand(config)
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    for index, ((name, p), q) in enumerate(zip(model.named_parameters(), expected.parameters())):
        moments, expected_moments = state["optimizer"]["state"][index], optimizer.state[q]
        assert moments["step"] == expected_moments["step"] == config.episodes // meta_batch
        if meta_batch == 1:  # one episode a step: the loop as it was before the meta-batch, bit for bit
            assert torch.equal(p, q), name
            assert all(torch.equal(moments[key], expected_moments[key]) for key in ("exp_avg", "exp_avg_sq")), name
        else:  # (g0 + g1) / 2 by hand, g0 / 2 + g1 / 2 in the loop: equal to rounding
            assert torch.allclose(p, q, rtol=0, atol=1e-8), name
            assert torch.allclose(moments["exp_avg"], expected_moments["exp_avg"], rtol=1e-6, atol=1e-12), name
            assert torch.allclose(moments["exp_avg_sq"], expected_moments["exp_avg_sq"], rtol=1e-6, atol=1e-15), name
    assert state["scheduler"]["last_epoch"] == config.episodes  # lr_step counts episodes, whatever the meta-batch


def _rank(rank: int, config: EpisodicConfig, out_dir: str, port: int) -> None:
    torch.set_num_threads(1)
    os.environ.update(WORLD_SIZE="2", RANK=str(rank), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    with distributed.process_group("cpu"):
        _train(config, out_dir)


def test_two_ranks_average_their_meta_batches_once_per_outer_step(tmp_path):
    """Two ranks of 2 episodes each: one outer step on the mean of the gradients of the 4 episodes, as one process
    with a meta-batch of 4 takes it (rank r's n-th episode is episode 2(n - 1) + r of the one stream)."""
    config = _config(meta_batch=2, episodes=2, val_every=2)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_rank, args=(config, str(tmp_path), port), nprocs=2)
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    assert state["sampler"] == {"seed": 0, "next_episode": 2, "world_size": 2}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the ranks: reductions in the same order
    try:
        expected, optimizer = _by_hand(_config(meta_batch=4, episodes=4, checkpoint_every=4, log_every=4))
    finally:
        torch.set_num_threads(threads)
    for index, (name, p) in enumerate(expected.named_parameters()):
        assert state["optimizer"]["state"][index]["step"] == 1
        # The four gradients are summed in another order than by hand: equal to a few units in the last place, which
        # Adam's first update (lr x the gradient's sign, about) magnifies where a gradient is near 0.
        assert torch.allclose(state["model"][name], p, rtol=0, atol=1e-6), name
        assert torch.allclose(state["optimizer"]["state"][index]["exp_avg"], optimizer.state[p]["exp_avg"],
                              rtol=1e-5, atol=1e-7), name


def test_meta_batch_1_is_the_run_without_the_setting(tmp_path):
    saved = _config().as_dict()
    del saved["meta_batch"]  # a checkpoint from before the setting existed
    assert EpisodicConfig.from_saved(saved).meta_batch == 1
    assert changed_settings(saved, _config(meta_batch=1)) == []
    assert changed_settings(saved, _config(meta_batch=2)) == ["meta_batch"]
    assert _config() == _config(meta_batch=1)


@pytest.mark.parametrize("run", ["anil", "joint-noise-gan"])
def test_a_run_stopped_inside_an_outer_step_resumes_as_an_unbroken_one(run, tmp_path):
    """Stopped while it loads episode 6: episode 5's gradient was accumulated and its outer step never taken. The
    resumed run goes on from the checkpoint at episode 4. The noise GAN's critic steps once per outer step too."""
    changes = dict(meta_batch=2, episodes=8, checkpoint_every=4)
    if run == "joint-noise-gan":
        changes |= dict(learner="protonet", backbone="conv4", hallucinator="gan", gan_generator="noise",
                        n_synthetic=2)
    config = _config(**changes)
    straight, broken = tmp_path / "straight", tmp_path / "broken"
    _train(config, straight)
    items = config.n_way * (config.k_shot + config.q_query)
    stopped = RandomImages(6, 4, seed=0, items=5 * items)
    with pytest.raises(Enough):
        _train(config, broken, train=stopped)
    assert stopped.served == 5 * items + 1 and load_checkpoint(broken / "checkpoint.pt")["sampler"]["next_episode"] == 4
    _train(config, broken, resume=True)

    a, b = (load_checkpoint(path / "checkpoint.pt") for path in (straight, broken))
    assert a["sampler"] == b["sampler"] == {"seed": 0, "next_episode": 8, "world_size": 1}
    for part in ("model", "best_model"):
        assert a[part].keys() == b[part].keys()
        assert all(torch.equal(a[part][name], b[part][name]) for name in a[part]), part
    optimizers = ("optimizer", "critic_optimizer") if run == "joint-noise-gan" else ("optimizer",)
    for optimizer in optimizers:
        for index, moments in a[optimizer]["state"].items():
            assert moments["step"] == 4  # 8 episodes, 2 a step
            assert all(torch.equal(value, b[optimizer]["state"][index][key]) for key, value in moments.items())
    rows = [[{k: v for k, v in row.items() if k != "episodes_per_s"} for row in state["metrics"]] for state in (a, b)]
    assert rows[0] == rows[1]
    assert [row["episode"] for row in rows[0]] == [2, 4, 4, 6, 8, 8]  # logs every 2 episodes, validations every 4


def test_resume_with_another_meta_batch_is_refused(tmp_path):
    _train(_config(meta_batch=2, episodes=2), tmp_path)
    with pytest.raises(CheckpointError, match=r"settings differ from the checkpoint's: \['meta_batch'\]"):
        _train(_config(meta_batch=1, episodes=2), tmp_path, resume=True)


def _poison_episode(monkeypatch, number: int) -> None:
    """The loss of the ``number``-th training episode is NaN."""
    calls = []

    def poisoned(learner, logits, labels):
        calls.append(1)
        loss = episode_loss(learner, logits, labels)
        return loss * float("nan") if len(calls) == number else loss

    monkeypatch.setattr(episodic, "episode_loss", poisoned)


def test_a_nan_in_one_episode_skips_its_whole_outer_step(tmp_path, monkeypatch):
    """Episode 3's loss is NaN: the outer step of episodes 3 and 4 changes no parameter, episode 4's good gradient
    included, and counts as one skipped step."""
    _train(_config(meta_batch=2, episodes=2), tmp_path / "two")
    _poison_episode(monkeypatch, 3)
    _train(_config(meta_batch=2), tmp_path / "four")
    two, four = (load_checkpoint(tmp_path / name / "checkpoint.pt") for name in ("two", "four"))
    parameters = [name for name in two["model"] if "running_" not in name and "num_batches" not in name]
    assert parameters  # batch-norm statistics move in the forward pass, before any loss exists
    assert all(torch.equal(two["model"][name], four["model"][name]) for name in parameters)
    for index, moments in two["optimizer"]["state"].items():
        for key in ("exp_avg", "exp_avg_sq"):
            assert torch.equal(moments[key], four["optimizer"]["state"][index][key]), (index, key)
    rows = [json.loads(line) for line in (tmp_path / "four" / "metrics.jsonl").read_text().splitlines()]
    assert [row["skipped_steps"] for row in rows if "skipped_steps" in row] == [0, 1]


def test_persistent_nans_are_counted_in_outer_steps(tmp_path, monkeypatch):
    _poison_episode(monkeypatch, 4)
    with pytest.raises(NonFiniteLossError, match="in 1 consecutive steps of 2 episodes, up to episode 4; not finite "
                                                 "in episodes 3-4: classification"):
        _train(_config(meta_batch=2, max_nonfinite_steps=1), tmp_path)


@pytest.mark.parametrize("meta_batch", [0, -2])
def test_a_meta_batch_below_1_is_refused(meta_batch):
    with pytest.raises(ValueError, match=f"meta_batch must be a whole number of episodes, at least 1, got "
                                         f"{meta_batch}"):
        _config(meta_batch=meta_batch)


def test_lengths_and_intervals_that_do_not_fall_between_outer_steps_are_refused():
    # The defaults: episodes=5000, checkpoint_every=250, val_every=500, log_every=50.
    with pytest.raises(ValueError, match=r"^meta_batch=4 must divide .*; not checkpoint_every=250, log_every=50$"):
        EpisodicConfig(meta_batch=4)
    with pytest.raises(ValueError, match=r"; not episodes=5, val_every=3$"):
        _config(meta_batch=2, episodes=5, val_every=3)
    two_stage = dict(hallucinator="gan", hallucinator_episodes=3)  # stage 2's length
    with pytest.raises(ValueError, match=r"; not hallucinator_episodes=3$"):
        _config(meta_batch=2, **two_stage)
    assert _config(meta_batch=2, hallucinator_episodes=3).meta_batch == 2  # no hallucinator, no stage 2


def test_a_bad_meta_batch_on_the_command_line_exits_2_naming_it(tmp_path, capsys):
    code = main(["run", "pipelines/omniglot_maml.py", "--out", str(tmp_path / "run"), "--set", "meta_batch=32"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith("hallucinate run: error: meta_batch=32 must divide") and "checkpoint_every=250" in err
    assert main(["run", "pipelines/omniglot_maml.py", "--out", str(tmp_path / "run"), "--set", "meta_batch=0"]) == 2
    assert "meta_batch must be a whole number of episodes, at least 1, got 0" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
