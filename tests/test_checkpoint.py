import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from hallucinate.training import CheckpointError, load_checkpoint, save_checkpoint
from tests.conftest import TINY, TINY_STAGE_2, sets


# The default two-stage GAN pipeline, 200 tiny episodes in each stage; and the earlier one-stage design, the noise
# GAN trained jointly with the backbone.
RUNS = {"two-stage": ("pipelines/omniglot_protonet_gan.py", TINY_STAGE_2 + ["episodes=200",
                                                                            "hallucinator_episodes=200"]),
        "joint-noise-gan": ("pipelines/omniglot_protonet_gan_joint.py", ["episodes=200"])}


def _run_command(out, data_root, cache, run, *extra):
    pipeline, settings = RUNS[run]
    return [sys.executable, "-m", "hallucinate.cli", "run", pipeline, "--out", str(out), "--data-root",
            str(data_root), "--cache-dir", str(cache), "--no-progress", *sets(*TINY, *settings), *extra]


def _kill_at_first_checkpoint(command, checkpoint, env) -> int:
    """Start ``command``, SIGKILL it as soon as ``checkpoint`` exists; the episode it would have gone on from."""
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while not checkpoint.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL
    return load_checkpoint(checkpoint)["sampler"]["next_episode"]


def _assert_same_run(straight, resumed) -> None:
    straight, resumed = load_checkpoint(straight), load_checkpoint(resumed)
    for part in ("model", "best_model"):
        assert straight[part].keys() == resumed[part].keys()
        for name in straight[part]:
            assert torch.equal(straight[part][name], resumed[part][name]), (part, name)
    assert [row for row in straight["metrics"] if "val_accuracy" in row] == \
        [row for row in resumed["metrics"] if "val_accuracy" in row]


@pytest.mark.parametrize("run", RUNS)
def test_killed_and_resumed_run_matches_an_uninterrupted_one(run, omniglot, data_root, cache, tmp_path):
    """Killed right after its first checkpoint and resumed, the run ends as the uninterrupted one. A two-stage run
    is killed in stage 1 (at OUT/stage1/checkpoint.pt), resumed, killed again in stage 2 (at OUT/checkpoint.pt), and
    resumed again: each resume continues the stage that was interrupted."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    subprocess.run(_run_command(straight, data_root, cache, run), check=True, env=env, capture_output=True)
    if run == "two-stage":
        stopped_at = _kill_at_first_checkpoint(_run_command(killed, data_root, cache, run),
                                               killed / "stage1" / "checkpoint.pt", env)
        assert 0 < stopped_at < 200 and not (killed / "checkpoint.pt").exists()  # stage 2 had not begun
        stopped_at = _kill_at_first_checkpoint(_run_command(killed, data_root, cache, run, "--resume"),
                                               killed / "checkpoint.pt", env)
        _assert_same_run(straight / "stage1" / "checkpoint.pt", killed / "stage1" / "checkpoint.pt")
    else:
        stopped_at = _kill_at_first_checkpoint(_run_command(killed, data_root, cache, run), killed / "checkpoint.pt",
                                               env)
    assert 0 < stopped_at < 200
    subprocess.run(_run_command(killed, data_root, cache, run, "--resume"), check=True, env=env, capture_output=True)
    _assert_same_run(straight / "checkpoint.pt", killed / "checkpoint.pt")
    assert load_checkpoint(killed / "checkpoint.pt")["sampler"]["next_episode"] == 200


def test_resume_with_other_settings_is_refused(tiny_gan_checkpoint, data_root, cache, capsys):
    from hallucinate.cli import main

    out = tiny_gan_checkpoint.parent
    args = ["run", "pipelines/omniglot_protonet_gan.py", "--out", str(out), "--resume", "--data-root",
            str(data_root), "--cache-dir", str(cache), "--no-progress"]
    before = {path: path.read_bytes() for path in (tiny_gan_checkpoint, out / "stage1" / "checkpoint.pt")}
    # A stage-1 setting (refused by stage 1) and a stage-2 one (refused by stage 2).
    for changed in ("lr=0.5", "hallucinator_lr=0.5"):
        assert main(args + sets(*TINY, *TINY_STAGE_2, "episodes=20", changed)) == 2
        assert f"settings differ from the checkpoint's: ['{changed.split('=')[0]}']" in capsys.readouterr().err
    assert all(path.read_bytes() == data for path, data in before.items())


def test_checkpoint_with_pickled_code_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": "hallucinate.checkpoint/1", "payload": os.system}, path)
    with pytest.raises(CheckpointError, match=r"could run code.*\(.*posix\.system"):  # the reason names the global
        load_checkpoint(path)


def test_truncated_checkpoint_is_refused(tmp_path):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {"weights": torch.ones(1000)})
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(path)


def test_failed_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {"weights": torch.zeros(3)})

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(OSError, match="No space"):
        save_checkpoint(path, {"weights": torch.ones(3)})
    monkeypatch.undo()
    assert torch.equal(load_checkpoint(path)["weights"], torch.zeros(3))
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]
