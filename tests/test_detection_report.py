"""`hallucinate report` on a tiny detection run: the learning curve and the test canvases as PNGs, and a report whose
numbers are those `hallucinate eval` measures on the same canvases (the base detector's, and the 1-shot fine-tuning's
of K-shot seed 0); the settings that do not apply to detection are refused."""
import json
import re
from pathlib import Path

import pytest
from PIL import Image

from hallucinate.cli import main

from tests.conftest import sets

PIPELINE = "pipelines/omniglot_detection_tfa.py"
TINY = ["steps=20", "pretrain_steps=20", "width=8", "batch_size=2", "val_canvases=4", "val_every=10",
        "checkpoint_every=10", "log_every=5", "num_workers=0", "finetune_steps_per_shot=5"]
IMAGES = "8"


@pytest.fixture(scope="module")
def run_dir(data_root, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("detection_report")
    assert main(["run", PIPELINE, "--out", str(out), "--data-root", str(data_root), "--no-progress",
                 *sets(*TINY)]) == 0
    return out


def _cli(capsys, *arguments: str) -> dict:
    assert main([*arguments, "--no-progress"]) == 0
    return json.loads(capsys.readouterr().out)


def test_report_draws_the_run_and_lists_the_numbers_eval_measures(run_dir, data_root, capsys):
    written = _cli(capsys, "report", str(run_dir), "--images", IMAGES, "--data-root", str(data_root))
    assert written["files"] == ["canvases.png", "report.md", "training.png"]
    for name in ("canvases.png", "training.png"):
        path = run_dir / "report" / name
        with Image.open(path) as picture:
            picture.verify()
        with Image.open(path) as picture:
            assert picture.format == "PNG" and min(picture.size) > 300, (name, picture.size)
        assert path.stat().st_size > 10_000, name
    report = (run_dir / "report" / "report.md").read_text()
    for name in written["files"]:
        assert f"`{name}`" in report, name
    assert f"`hallucinate report {run_dir} --images {IMAGES}`" in report
    assert f"`hallucinate eval {run_dir / 'checkpoint.pt'} --k-shot K --seeds 10`" in report
    assert "**one seed**" in report and f"the first {IMAGES} base test canvases" in report

    measured = _cli(capsys, "eval", str(run_dir / "checkpoint.pt"), "--k-shot", "1", "--seeds", "2", "--images",
                    IMAGES, "--data-root", str(data_root))
    base, tfa = report.split("## TFA 1-shot")
    assert f"| base AP50 (bAP50) % | {measured['base_detector_bap50']:.2f} |" in base
    assert f"| RPN recall@0.5, 100 proposals % | {measured['base_detector_rpn_recall']:.2f} |" in base
    assert f"| novel AP50 (nAP50) % | {measured['nap50_per_seed'][0]:.2f} |" in tfa
    assert f"| base AP50 (bAP50) % | {measured['bap50_per_seed'][0]:.2f} |" in tfa
    assert f"| mAP@[.5:.95] % | {measured['map_per_seed'][0]:.2f} |" in tfa
    assert re.search(r"\| mAP@\[\.5:\.95\] % \| \d+\.\d\d \|", base)


@pytest.mark.parametrize("arguments, message", [
    (["--compare", "x"], "--compare measures hallucinators' features of classification runs;"),
    (["--clutter", "4"], "--clutter sets the clutter levels of segmentation runs;"),
    (["--images", "0"], "--images must be 1..1000 test canvases, got 0"),
])
def test_report_refuses_what_does_not_apply(run_dir, data_root, capsys, arguments, message):
    assert main(["report", str(run_dir), *arguments, "--no-progress", "--data-root", str(data_root)]) == 2
    assert message in capsys.readouterr().err
