"""A NaN or inf in the GAN losses: the step is skipped and counted, the weights stay finite, and a run that keeps
producing them stops with an error naming the losses and the episode. Each test runs the default two-stage pipeline
(the calibrated GAN in stage 2, on the frozen embedding) and the earlier one-stage design (the noise GAN trained
jointly with the backbone)."""
import json

import pytest
import torch

import hallucinate.hallucinators.calibrated_gan as calibrated_gan
import hallucinate.hallucinators.gan as gan
from hallucinate.cli import main
from hallucinate.hallucinators.gan import Critic
from hallucinate.training import EpisodicConfig, load_checkpoint
from hallucinate.training.config import changed_settings
from tests.conftest import TINY, TINY_STAGE_2, sets

# Each run: its pipeline, its settings, and the length of the stage the GAN trains in (stage 2 of the two-stage run:
# hallucinator_episodes; stage 1 is 10 episodes); then the module whose generator loss (called once per step) and
# critic loss (once per critic step) are poisoned, with their names.
RUNS = {
    "two-stage": ("pipelines/omniglot_protonet_gan.py", TINY_STAGE_2 + ["episodes=10"], "hallucinator_episodes",
                  calibrated_gan, "per_sample_loss", "per_sample"),
    "joint-noise-gan": ("pipelines/omniglot_protonet_gan_joint.py", [], "episodes", gan, "anti_collapse",
                        "anti_collapse"),
}


def _run(run, out, data_root, cache, episodes: int, *settings: str) -> int:
    pipeline, run_settings, length = RUNS[run][:3]
    return main(["run", pipeline, "--out", str(out), "--data-root", str(data_root), "--cache-dir", str(cache),
                 "--no-progress", *sets(*TINY, *run_settings, f"{length}={episodes}", *settings)])


def _poison(monkeypatch, module, name: str, episodes: set[int], value: float = float("nan")) -> None:
    """Make ``module``'s ``name`` loss function (called once per episode) return ``value`` at ``episodes``."""
    original, calls = getattr(module, name), []

    def poisoned(*args, **kwargs):
        calls.append(1)
        result = original(*args, **kwargs)
        return result * value if len(calls) in episodes else result

    monkeypatch.setattr(module, name, poisoned)


@pytest.mark.parametrize("run", RUNS)
def test_nonfinite_losses_skip_their_steps_and_are_counted(run, omniglot, data_root, cache, tmp_path, monkeypatch):
    module, generator_loss, logged = RUNS[run][3:]
    _poison(monkeypatch, module, generator_loss, {3, 5})  # the generator's step
    _poison(monkeypatch, module, "gradient_penalty", {5, 7}, float("inf"))  # the critic's step
    assert _run(run, tmp_path, data_root, cache, 10) == 0
    (row, validation) = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert row["skipped_steps"] == 3  # episodes 3, 5 and 7
    assert all(isinstance(row[name], float) for name in ("classification", logged, "gradient_penalty"))
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    assert all(torch.isfinite(w).all() for w in state["model"].values())
    for optimizer in ("optimizer", "critic_optimizer"):
        assert all(torch.isfinite(m).all() for moments in state[optimizer]["state"].values() for m in moments.values())
    if run == "two-stage":  # stage 1 trained no hallucinator: nothing there was poisoned or skipped
        (stage1_row, _) = [json.loads(line) for line in (tmp_path / "stage1" / "metrics.jsonl").read_text().splitlines()]
        assert stage1_row["skipped_steps"] == 0 and logged not in stage1_row


@pytest.mark.parametrize("run", RUNS)
def test_a_skipped_step_leaves_weights_and_moments_as_they_were(run, omniglot, data_root, cache, tmp_path,
                                                                monkeypatch):
    module, generator_loss = RUNS[run][3:5]
    assert _run(run, tmp_path / "five", data_root, cache, 5) == 0
    _poison(monkeypatch, module, generator_loss, {6})
    _poison(monkeypatch, module, "gradient_penalty", {6})
    assert _run(run, tmp_path / "six", data_root, cache, 6) == 0
    five, six = (load_checkpoint(tmp_path / name / "checkpoint.pt") for name in ("five", "six"))
    assert six["sampler"]["next_episode"] == 6
    parameters = [name for name, w in five["model"].items() if w.is_floating_point() and "running_" not in name]
    assert any(name.startswith("hallucinator.generator.") for name in parameters)
    for name in parameters:  # batch-norm statistics move in the forward pass, before any loss exists
        assert torch.equal(five["model"][name], six["model"][name]), name
    for optimizer in ("optimizer", "critic_optimizer"):
        assert five[optimizer]["state"]
        for index, moments in five[optimizer]["state"].items():
            for key in ("exp_avg", "exp_avg_sq"):
                assert torch.equal(moments[key], six[optimizer]["state"][index][key]), (optimizer, index, key)


@pytest.mark.parametrize("run", RUNS)
def test_persistent_nonfinite_losses_stop_the_run_naming_them_and_the_episode(run, omniglot, data_root, cache,
                                                                             tmp_path, monkeypatch, capsys):
    forward = Critic.forward
    monkeypatch.setattr(Critic, "forward", lambda self, *args: forward(self, *args) * float("nan"))
    settings = ["log_every=5", "checkpoint_every=2", "max_nonfinite_steps=4"]
    assert _run(run, tmp_path, data_root, cache, 20, *settings) == 2
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
