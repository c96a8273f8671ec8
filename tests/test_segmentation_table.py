"""benchmarks/segmentation_table.py on two tiny checkpoints trained here, one with the MLP hallucinator, and one that
does not exist: the JSON's structure, every measurement of a cell on the same scenes (on and off, plain and
hallucinating, paired), and the floors as the metric module computes them."""
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from hallucinate.cli import main
from hallucinate.segmentation import evaluation_scenes, load_glyphs
from hallucinate.segmentation.metric import inked, iou_per_image

from tests.conftest import sets

ROOT = Path(__file__).resolve().parents[1]
PIPELINE = "pipelines/cluttered_omniglot_segmentation.py"
TINY = ["steps=3", "batch_size=2", "width=8", "val_images=2", "val_every=3", "checkpoint_every=3", "log_every=3",
        "num_workers=0"]
MLP = ["hallucinator=mlp", "hallucinator_hidden=16", "noise_dim=4"]
LEVELS, IMAGES = (4, 8), 6


def run_table(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "benchmarks/segmentation_table.py", *arguments], cwd=ROOT,
                          capture_output=True, text=True)


@pytest.fixture(scope="module")
def table(data_root, tmp_path_factory) -> tuple[dict, str, Path]:
    folder = tmp_path_factory.mktemp("segmentation_table")
    for name, settings in (("plain", TINY), ("mlp", TINY + MLP)):
        assert main(["run", PIPELINE, "--out", str(folder / name), "--data-root", str(data_root), "--no-progress",
                     *sets(*settings)]) == 0
    out = folder / "table.json"
    done = run_table(str(folder / "plain" / "checkpoint.pt"), str(folder / "mlp" / "checkpoint.pt"),
                     str(folder / "absent.pt"), "--clutter", *map(str, LEVELS), "--images", str(IMAGES),
                     "--data-root", str(data_root), "--device", "cpu", "--out", str(out))
    assert done.returncode == 0, done.stderr
    return json.loads(out.read_text()), done.stdout, folder


def test_the_json_has_a_cell_per_subset_reference_and_level_and_names_the_missing_checkpoint(table):
    result, stdout, folder = table
    assert result["missing"] == [str(folder / "absent.pt")]
    assert f"missing: {folder / 'absent.pt'}" in stdout
    assert set(result["checkpoints"]) == {"plain", "mlp"}
    assert result["images"] == IMAGES and result["scenes_per_s"] > 0 and result["wall_time_s"] > 0
    cells = {(c["subset"], c["same_drawer"], c["clutter"]): c for c in result["cells"]}
    assert sorted(cells) == sorted((subset, same, level) for subset in ("test-one-shot", "test-train")
                                   for same in (True, False) for level in LEVELS)
    for (subset, same_drawer, level), cell in cells.items():
        assert set(cell["results"]["plain"]) == {"off"}
        assert set(cell["results"]["mlp"]) == {"off", "on", "on_minus_off"}
        assert cell["results"]["mlp"]["on"]["hallucinate"] and not cell["results"]["mlp"]["off"]["hallucinate"]
        assert set(cell["hallucinating_minus_plain"]) == {"mlp on - plain"}
        assert cell["results"]["plain"]["off"]["images"] == IMAGES
        verified = subset == "test-one-shot" and same_drawer and level == 4
        assert cell["published"] == ({"Siamese-U-Net": 97.1, "MaskNet": 95.8} if verified else
                                     {"Siamese-U-Net": None, "MaskNet": None})
    row, = [line for line in stdout.splitlines() if line.startswith("| test-one-shot | same drawer | 4 |")]
    assert row.endswith("| 97.1 | 95.8 |")


@pytest.fixture(scope="module")
def scenes(data_root):
    """``scenes(subset, level, same_drawer)``: the cell's scenes, made here, one by one."""
    glyphs = {subset: load_glyphs(subset, data_root) for subset in ("test-one-shot", "test-train")}

    def make(subset: str, level: int, same_drawer: bool) -> list[dict]:
        dataset = evaluation_scenes(glyphs[subset], clutter=level, size=IMAGES, same_drawer=same_drawer)
        return [dataset[i] for i in range(IMAGES)]

    return make


def test_every_measurement_of_a_cell_is_on_the_same_scenes_and_the_gains_are_paired(table, scenes):
    result, _, _ = table
    for cell in result["cells"]:
        made = scenes(cell["subset"], cell["clutter"], cell["same_drawer"])
        digest = hashlib.md5()
        for key in ("query", "query_mask", "support", "support_mask"):
            digest.update(torch.stack([scene[key] for scene in made]).numpy().tobytes())
        measurements = [cell["results"]["plain"]["off"], cell["results"]["mlp"]["off"], cell["results"]["mlp"]["on"]]
        assert {m["scenes_md5"] for m in measurements} == {cell["scenes_md5"]} == {digest.hexdigest()}
        mlp = cell["results"]["mlp"]
        # the mean of the paired differences is the difference of the means (each rounded to 3 decimals)
        assert mlp["on_minus_off"][0] == pytest.approx(mlp["on"]["iou"] - mlp["off"]["iou"], abs=2e-3)
        against_plain = cell["hallucinating_minus_plain"]["mlp on - plain"]
        assert against_plain[0] == pytest.approx(mlp["on"]["iou"] - cell["results"]["plain"]["off"]["iou"], abs=2e-3)
        assert all(gain[1] >= 0 for gain in (mlp["on_minus_off"], against_plain))


def test_the_floors_are_the_metric_modules(table, scenes):
    result, _, _ = table
    for cell in result["cells"]:
        made = scenes(cell["subset"], cell["clutter"], cell["same_drawer"])
        truth = torch.stack([scene["query_mask"] for scene in made])
        inked_floor = iou_per_image(inked(torch.stack([scene["query"] for scene in made])), truth).mean()
        empty_floor = iou_per_image(torch.zeros_like(truth), truth).mean()
        assert cell["floor_inked_iou"] == pytest.approx(round(100 * float(inked_floor), 3), abs=1e-9)
        assert cell["floor_empty_iou"] == pytest.approx(round(100 * float(empty_floor), 3), abs=1e-9) == 0.0
        assert all(m["floor_inked_iou"] == cell["floor_inked_iou"] for r in cell["results"].values()
                   for m in r.values() if isinstance(m, dict))


def test_no_checkpoint_at_all_is_an_error_that_names_them(tmp_path):
    done = run_table(str(tmp_path / "a.pt"), str(tmp_path / "b.pt"), "--out", str(tmp_path / "table.json"))
    assert done.returncode == 2
    assert f"none of the checkpoints exists: {tmp_path / 'a.pt'}, {tmp_path / 'b.pt'}" in done.stderr
    assert not (tmp_path / "table.json").exists()


def test_baseline_gains_pair_plain_checkpoints_and_a_model_against_itself_gains_nothing(table, data_root, tmp_path):
    _, _, folder = table
    twin = tmp_path / "cluttered_omniglot_segmentation_twin.pt"
    twin.write_bytes((folder / "plain" / "checkpoint.pt").read_bytes())
    out = tmp_path / "baseline.json"
    done = run_table(str(folder / "plain" / "checkpoint.pt"), str(twin), "--baseline", "plain", "--clutter", "4",
                     "--images", str(IMAGES), "--subsets", "test-one-shot", "--same-drawer", "true",
                     "--data-root", str(data_root), "--device", "cpu", "--out", str(out))
    assert done.returncode == 0, done.stderr
    cell, = json.loads(out.read_text())["cells"]
    assert cell["plain_minus_baseline"] == {"twin - plain": [0.0, 0.0]}
    header, = [line for line in done.stdout.splitlines() if line.startswith("| subset |")]
    assert "| twin − plain |" in header
    refused = run_table(str(folder / "plain" / "checkpoint.pt"), str(folder / "mlp" / "checkpoint.pt"),
                        "--baseline", "mlp", "--clutter", "4", "--images", str(IMAGES), "--data-root",
                        str(data_root), "--device", "cpu", "--out", str(tmp_path / "refused.json"))
    assert refused.returncode == 2
    assert "--baseline must name a plain checkpoint of this run (plain), got 'mlp'" in refused.stderr
