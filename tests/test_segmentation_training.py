"""`hallucinate run` on the segmentation pipeline, resuming it, `hallucinate.load` and `hallucinate eval` on its
checkpoint, and a short real training run at 4 characters measured against the floors on test-one-shot (the
inked floor it does not beat yet: an expected failure that turns into a failure once it does, to be made a plain
test then)."""
import json
from pathlib import Path

import pytest
import torch

from hallucinate import load
from hallucinate.cli import main
from hallucinate.segmentation import PrototypeSegmenter, SegmentationConfig
from hallucinate.training import load_checkpoint, override

PIPELINE = "pipelines/cluttered_omniglot_segmentation.py"
# A short run that learns: 32 channels (a quarter of the default's compute), a higher learning rate.
SHORT = ["steps=SHORT_STEPS", "batch_size=16", "width=32", "lr=0.003", "val_images=100", "val_every=100",
         "checkpoint_every=50", "log_every=25", "num_workers=1"]
SHORT_STEPS = 240


def sets(*settings: str) -> list[str]:
    return [x for item in settings for x in ("--set", item)]


def _run(out: Path, data_root, *settings: str) -> int:
    return main(["run", PIPELINE, "--out", str(out), "--data-root", str(data_root), "--no-progress",
                 *sets(*settings)])


@pytest.fixture(scope="module")
def trained(data_root, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("segmentation_run")
    assert _run(out, data_root, *[s.replace("SHORT_STEPS", str(SHORT_STEPS)) for s in SHORT]) == 0
    return out


def test_override_takes_the_segmentation_config():
    config = override(SegmentationConfig(), ["clutter=8", "same_drawer=false", "lr=0.01"])
    assert config == SegmentationConfig(clutter=8, same_drawer=False, lr=0.01)
    with pytest.raises(ValueError, match="unknown setting 'n_way'; valid keys: clutter \\(int\\)"):
        override(SegmentationConfig(), ["n_way=5"])


def test_run_writes_the_run_files_and_a_segmentation_checkpoint(trained, capsys):
    state = load_checkpoint(trained / "checkpoint.pt")
    assert state["task"] == "segmentation" and state["step"] == SHORT_STEPS
    summary = json.loads((trained / "metrics.json").read_text())
    assert summary["steps"] == SHORT_STEPS and summary["best_step"] in (100, 200, SHORT_STEPS)
    rows = [json.loads(line) for line in (trained / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows if "val_iou" in row] == [100, 200, SHORT_STEPS]
    assert all(row["skipped_steps"] == 0 for row in rows if "segmentation" in row)


def test_load_returns_the_segmenter_with_its_best_weights(trained):
    model = load(trained / "checkpoint.pt")
    assert isinstance(model, PrototypeSegmenter) and not model.training
    assert model.config.width == 32
    best = load_checkpoint(trained / "checkpoint.pt")["best_model"]
    assert all(torch.equal(value, best[name]) for name, value in model.state_dict().items())
    references, masks = torch.zeros(1, 3, 32, 32), torch.zeros(1, 32, 32)
    references[0, :, 10:20, 15], masks[0, 10:20, 15] = 1.0, 1.0
    with torch.no_grad():
        assert model(references, masks, torch.rand(2, 3, 96, 96)).shape == (2, 2, 96, 96)


def test_export_keeps_the_best_weights_without_the_optimizer(trained, tmp_path):
    assert main(["export", str(trained / "checkpoint.pt"), str(tmp_path / "exported.pt")]) == 0
    exported = load_checkpoint(tmp_path / "exported.pt")
    assert "optimizer" not in exported and "model" not in exported and exported["task"] == "segmentation"
    best = load_checkpoint(trained / "checkpoint.pt")["best_model"]
    model = load(tmp_path / "exported.pt")
    assert all(torch.equal(value, best[name]) for name, value in model.state_dict().items())


def _eval(capsys, checkpoint, data_root, *extra) -> list[dict]:
    assert main(["eval", str(checkpoint), "--data-root", str(data_root), "--no-progress", *extra]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def _test_one_shot(capsys, trained, data_root) -> dict:
    [result] = _eval(capsys, trained / "checkpoint.pt", data_root, "--clutter", "4", "--images", "400")
    assert result["subset"] == "test-one-shot" and result["images"] == 400 and result["clutter"] == 4
    assert result["floor_empty_iou"] == 0.0  # every scene holds its target
    assert 15 < result["floor_inked_iou"] < 40  # about one pixel in four of the ink is the target's
    return result


def test_a_short_run_at_4_characters_beats_the_empty_floor_on_test_one_shot(trained, data_root, capsys):
    result = _test_one_shot(capsys, trained, data_root)
    assert result["iou"] - 2 * result["ci95"] > result["floor_empty_iou"] + 3, result


@pytest.mark.xfail(strict=True, reason="not yet: 240 steps reach about 8% IoU and 600 steps (5 min) 22% against the "
                                       "inked floor's 26%; the matching learns to tell the target from its "
                                       "distractors slowly on these CPUs")
def test_a_short_run_at_4_characters_beats_the_inked_floor_on_test_one_shot(trained, data_root, capsys):
    result = _test_one_shot(capsys, trained, data_root)
    assert result["iou"] - 2 * result["ci95"] > result["floor_inked_iou"] + 10, result


def test_eval_prints_one_line_per_level_and_refuses_unknown_levels(trained, data_root, capsys):
    results = _eval(capsys, trained / "checkpoint.pt", data_root, "--clutter", "4", "8", "--images", "20",
                    "--same-drawer", "false")
    assert [r["clutter"] for r in results] == [4, 8] and all(not r["same_drawer"] for r in results)
    assert set(results[0]) >= {"iou", "ci95", "localisation", "images"}
    assert main(["eval", str(trained / "checkpoint.pt"), "--data-root", str(data_root), "--clutter", "5"]) == 2
    assert "no clutter level 5; valid: 4, 8" in capsys.readouterr().err


def test_a_resumed_run_ends_as_an_unbroken_one(data_root, tmp_path):
    tiny = ["batch_size=2", "width=8", "val_images=4", "val_every=3", "checkpoint_every=3", "log_every=3",
            "num_workers=0"]
    assert _run(tmp_path / "unbroken", data_root, "steps=6", *tiny) == 0
    assert _run(tmp_path / "broken", data_root, "steps=3", *tiny) == 0
    assert main(["run", PIPELINE, "--out", str(tmp_path / "broken"), "--data-root", str(data_root), "--resume",
                 "--no-progress", *sets("steps=6", *tiny)]) == 0
    unbroken, resumed = (load_checkpoint(tmp_path / name / "checkpoint.pt") for name in ("unbroken", "broken"))
    assert all(torch.equal(unbroken["model"][name], resumed["model"][name]) for name in unbroken["model"])

    def curve(state):
        return [(row["step"], row.get("segmentation"), row.get("val_iou")) for row in state["metrics"]]

    assert curve(unbroken) == curve(resumed)  # the same weights at every step: the same losses, exactly


def test_resuming_with_other_settings_is_refused(data_root, tmp_path, capsys):
    tiny = ["steps=2", "batch_size=2", "width=8", "val_images=2", "num_workers=0"]
    assert _run(tmp_path, data_root, *tiny) == 0
    assert main(["run", PIPELINE, "--out", str(tmp_path), "--data-root", str(data_root), "--resume",
                 "--no-progress", *sets(*tiny, "lr=0.5")]) == 2
    assert "settings differ from the checkpoint's: ['lr']" in capsys.readouterr().err
