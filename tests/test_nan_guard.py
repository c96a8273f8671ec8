"""A NaN or inf in the GAN losses: the step is skipped and counted, the weights stay finite, and a run that keeps
producing them stops with an error naming the losses and the episode."""
import json

import torch

import hallucinate.training.episodic as episodic
from hallucinate.cli import main
from hallucinate.hallucinators.gan import Critic
from hallucinate.training import EpisodicConfig, load_checkpoint
from hallucinate.training.config import changed_settings
from tests.conftest import TINY


def _run(out, data_root, cache, *settings: str) -> int:
    return main(["run", "pipelines/omniglot_protonet_gan.py", "--out", str(out), "--data-root", str(data_root),
                 "--cache-dir", str(cache), "--no-progress",
                 *[x for item in TINY + list(settings) for x in ("--set", item)]])


def _poison(monkeypatch, name: str, episodes: set[int], value: float = float("nan")) -> None:
    """Make the loop's ``name`` loss function (called once per episode) return ``value`` at ``episodes``."""
    original, calls = getattr(episodic, name), []

    def poisoned(*args, **kwargs):
        calls.append(1)
        result = original(*args, **kwargs)
        return result * value if len(calls) in episodes else result

    monkeypatch.setattr(episodic, name, poisoned)


def test_nonfinite_losses_skip_their_steps_and_are_counted(omniglot, data_root, cache, tmp_path, monkeypatch):
    _poison(monkeypatch, "anti_collapse", {3, 5})  # the generator's step
    _poison(monkeypatch, "gradient_penalty", {5, 7}, float("inf"))  # the critic's step
    assert _run(tmp_path, data_root, cache, "episodes=10") == 0
    (row, validation) = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert row["skipped_steps"] == 3  # episodes 3, 5 and 7
    assert all(isinstance(row[name], float) for name in ("classification", "anti_collapse", "gradient_penalty"))
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    assert all(torch.isfinite(w).all() for w in state["model"].values())
    for optimizer in ("optimizer", "critic_optimizer"):
        assert all(torch.isfinite(m).all() for moments in state[optimizer]["state"].values() for m in moments.values())


def test_a_skipped_step_leaves_weights_and_moments_as_they_were(omniglot, data_root, cache, tmp_path, monkeypatch):
    assert _run(tmp_path / "five", data_root, cache, "episodes=5") == 0
    _poison(monkeypatch, "anti_collapse", {6})
    _poison(monkeypatch, "gradient_penalty", {6})
    assert _run(tmp_path / "six", data_root, cache, "episodes=6") == 0
    five, six = (load_checkpoint(tmp_path / name / "checkpoint.pt") for name in ("five", "six"))
    parameters = [name for name, w in five["model"].items() if w.is_floating_point() and "running_" not in name]
    for name in parameters:  # batch-norm statistics move in the forward pass, before any loss exists
        assert torch.equal(five["model"][name], six["model"][name]), name
    for optimizer in ("optimizer", "critic_optimizer"):
        for index, moments in five[optimizer]["state"].items():
            for key in ("exp_avg", "exp_avg_sq"):
                assert torch.equal(moments[key], six[optimizer]["state"][index][key]), (optimizer, index, key)


def test_persistent_nonfinite_losses_stop_the_run_naming_them_and_the_episode(omniglot, data_root, cache, tmp_path,
                                                                             monkeypatch, capsys):
    forward = Critic.forward
    monkeypatch.setattr(Critic, "forward", lambda self, *args: forward(self, *args) * float("nan"))
    settings = ["episodes=20", "log_every=5", "checkpoint_every=2", "max_nonfinite_steps=4"]
    assert _run(tmp_path, data_root, cache, *settings) == 2
    error = capsys.readouterr().err
    assert "hallucinate run: error: losses were NaN or inf in 4 consecutive episodes, up to episode 4" in error
    assert "adversarial (5×), critic (5×), gradient_penalty (5×)" in error and "episodes 1-5" in error
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert rows == [rows[0]] and rows[0]["skipped_steps"] == 5 and rows[0]["critic"] is None
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    assert state["sampler"]["next_episode"] == 4
    assert all(torch.isfinite(w).all() for w in state["model"].values())


def test_a_checkpoint_from_before_max_nonfinite_steps_existed_still_resumes():
    saved = EpisodicConfig().as_dict()
    del saved["max_nonfinite_steps"]
    assert changed_settings(saved, EpisodicConfig()) == []
    assert changed_settings(saved, EpisodicConfig(max_nonfinite_steps=3)) == ["max_nonfinite_steps"]
