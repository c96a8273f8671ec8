import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from hallucinate.training import CheckpointError, load_checkpoint, save_checkpoint
from tests.conftest import TINY


def _run_command(out, data_root, cache, *extra):
    sets = [x for item in TINY + ["episodes=600"] for x in ("--set", item)]
    return [sys.executable, "-m", "hallucinate.cli", "run", "pipelines/omniglot_protonet_gan.py", "--out", str(out),
            "--data-root", str(data_root), "--cache-dir", str(cache), "--no-progress", *sets, *extra]


def test_killed_and_resumed_run_matches_an_uninterrupted_one(omniglot, data_root, cache, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(_run_command(tmp_path / "straight", data_root, cache), check=True, env=env,
                   capture_output=True)

    killed = tmp_path / "killed"
    process = subprocess.Popen(_run_command(killed, data_root, cache), env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (killed / "checkpoint.pt").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL
    stopped_at = load_checkpoint(killed / "checkpoint.pt")["sampler"]["next_episode"]
    assert 0 < stopped_at < 600

    subprocess.run(_run_command(killed, data_root, cache, "--resume"), check=True, env=env, capture_output=True)
    straight, resumed = (load_checkpoint(path / "checkpoint.pt") for path in (tmp_path / "straight", killed))
    for part in ("model", "best_model"):
        assert straight[part].keys() == resumed[part].keys()
        for name in straight[part]:
            assert torch.equal(straight[part][name], resumed[part][name]), (part, name)
    assert [row for row in straight["metrics"] if "val_accuracy" in row] == \
        [row for row in resumed["metrics"] if "val_accuracy" in row]


def test_resume_with_other_settings_is_refused(tiny_gan_checkpoint, data_root, cache):
    from hallucinate.cli import main

    out = tiny_gan_checkpoint.parent
    args = ["run", "pipelines/omniglot_protonet_gan.py", "--out", str(out), "--resume", "--data-root",
            str(data_root), "--cache-dir", str(cache), "--no-progress", "--set", "lr=0.5"]
    assert main(args + [x for item in TINY for x in ("--set", item)]) == 2


def test_checkpoint_with_pickled_code_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": "hallucinate.checkpoint/1", "payload": os.system}, path)
    with pytest.raises(CheckpointError, match="could run code"):
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
