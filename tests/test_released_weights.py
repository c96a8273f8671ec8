"""Every file in checkpoints/ is documented in checkpoints/README.md with the command that makes it, loads, and is
what its name says."""
import itertools
import re
from pathlib import Path

import pytest

import hallucinate

CHECKPOINTS = Path(__file__).resolve().parents[1] / "checkpoints"
SIZE_LIMIT = 5 * 2**20


def documented_files() -> tuple[set[str], set[str]]:
    """The file names in the first column of checkpoints/README.md's table, with {a,b} patterns expanded: those
    shipped, and those whose row says they are not."""
    shipped, not_shipped = set(), set()
    for line in (CHECKPOINTS / "README.md").read_text().splitlines():
        if not line.startswith("| `"):
            continue
        first_column = line.split(" | ")[0]
        for pattern in re.findall(r"`([^`]+\.pt)`", first_column):
            parts = re.split(r"\{([^}]*)\}", pattern)  # literal, choices, literal, choices, ...
            choices = [[part] if i % 2 == 0 else part.split(",") for i, part in enumerate(parts)]
            names = {"".join(combination) for combination in itertools.product(*choices)}
            (not_shipped if "not shipped" in first_column else shipped).update(names)
    return shipped, not_shipped


def test_every_released_file_is_documented_and_every_documented_file_is_released():
    released = {path.name for path in CHECKPOINTS.glob("*.pt")}
    shipped, not_shipped = documented_files()
    assert released, "no released weights found"
    assert released == shipped
    assert not released & not_shipped


@pytest.mark.parametrize("path", sorted(CHECKPOINTS.glob("*.pt")), ids=lambda path: path.name)
def test_released_file_loads_and_matches_its_name(path, data_root, cache):
    """(A checkpoint whose hallucinator's base statistics were left out reads the train split to recompute them.)"""
    assert path.stat().st_size < SIZE_LIMIT
    model = hallucinate.load(path, data_root=data_root, cache_dir=cache)
    config = model.config
    if getattr(config, "task", None) == "segmentation":
        assert path.name.startswith("cluttered_omniglot_segmentation_")
        assert (f"_{config.hallucinator}_" in path.name) == (config.hallucinator != "none")
        assert ("_ink_" in path.name) == config.ink_input
        return
    if getattr(config, "task", None) == "detection":
        from hallucinate.detection.detector import FewShotDetector

        assert path.name.startswith("omniglot_detection_") and isinstance(model, FewShotDetector)
        return
    if path.name.startswith("multidomain_"):  # trained across domains: the settings it was trained with, kept
        from hallucinate.training import load_checkpoint

        assert f"_{load_checkpoint(path)['multidomain']['trainer']}_" in path.name
    else:
        dataset = {"omniglot": "omniglot", "cifarfs": "cifar_fs"}[path.name.split("_")[0]]
        assert config.dataset == dataset
    assert f"_{config.learner}_" in path.name
    hallucinator = config.hallucinator
    if hallucinator == "none":
        assert not any(f"_{h}_" in path.name for h in ("gan", "mlp", "analogy"))
    else:
        assert f"_{hallucinator}_" in path.name
