"""`hallucinate report` on tiny segmentation runs, one without and one with the MLP hallucinator: the PNGs and the
report, whose IoU numbers are those `hallucinate eval` (and `evaluate`, for the pictured scenes) measure on the same
scenes."""
import json
from pathlib import Path

import pytest
import torch

from hallucinate import load
from hallucinate.cli import main
from hallucinate.segmentation import evaluate, evaluation_scenes, fixed_scenes, load_glyphs

from tests.conftest import sets

PIPELINE = "pipelines/cluttered_omniglot_segmentation.py"
TINY = ["steps=3", "batch_size=2", "width=8", "val_images=2", "val_every=3", "checkpoint_every=3", "log_every=3",
        "num_workers=0"]
HALLUCINATORS = {"none": [], "mlp": ["hallucinator=mlp", "hallucinator_hidden=16", "noise_dim=4"]}
LEVELS, IMAGES = ("4", "8"), "4"
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module", params=list(HALLUCINATORS))
def reported(request, data_root, tmp_path_factory) -> tuple[Path, str]:
    run_dir = tmp_path_factory.mktemp(f"segmentation_{request.param}")
    assert main(["run", PIPELINE, "--out", str(run_dir), "--data-root", str(data_root), "--no-progress",
                 *sets(*TINY, *HALLUCINATORS[request.param])]) == 0
    return run_dir, request.param


def _cli(capsys, *arguments: str) -> list[dict]:
    assert main([*arguments, "--no-progress"]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_report_writes_the_pictures_and_lists_the_ious_it_measured(reported, data_root, capsys):
    run_dir, hallucinator = reported
    [written] = _cli(capsys, "report", str(run_dir), "--images", IMAGES, "--clutter", *LEVELS, "--data-root",
                     str(data_root))
    assert written["files"] == ["iou_vs_clutter.png", "report.md", "scenes.png", "training.png"]
    for name in ("iou_vs_clutter", "scenes", "training"):
        picture = (run_dir / "report" / f"{name}.png").read_bytes()
        assert picture[:8] == PNG and len(picture) > 1000, name
    report = (run_dir / "report" / "report.md").read_text()
    for name in written["files"]:
        assert f"`{name}`" in report, name
    assert f"`hallucinate report {run_dir} --images {IMAGES} --clutter {' '.join(LEVELS)}`" in report

    evaluated = ["eval", str(run_dir / "checkpoint.pt"), "--clutter", *LEVELS, "--images", IMAGES, "--data-root",
                 str(data_root)]
    off = _cli(capsys, *evaluated, "--no-hallucinate")
    cells = lambda results: [f"{r['iou']:.2f} ± {r['ci95']:.2f}" for r in results]
    if hallucinator == "none":
        rows = [f"| {level} | {iou} |" for level, iou in zip(LEVELS, cells(off))]
    else:
        on = _cli(capsys, *evaluated)
        assert all(r["hallucinate"] for r in on)
        rows = [f"| {level} | {iou_off} | {iou_on} |" for level, iou_off, iou_on in zip(LEVELS, cells(off), cells(on))]
        assert "**Verdict:** hallucination" in report
    for row in rows:
        assert any(line.startswith(row) for line in report.splitlines()), (row, report)

    model = load(run_dir / "checkpoint.pt")  # the pictured scenes: the first four at the run's level, as evaluated
    shown = fixed_scenes(evaluation_scenes(load_glyphs("test-one-shot", data_root), clutter=model.config.clutter,
                                           size=4))
    result = evaluate(model, shown, hallucinate=model.hallucinating, device=torch.device("cpu"), seed=0)
    assert "IoU " + ", ".join(f"{100 * iou:.1f}%" for iou in result.ious) + "." in report


def test_report_refuses_an_unknown_level_before_measuring(reported, data_root, capsys):
    run_dir, _ = reported
    assert main(["report", str(run_dir), "--clutter", "4", "5", "--data-root", str(data_root)]) == 2
    assert "no clutter level 5; valid: 4, 8" in capsys.readouterr().err
