"""`hallucinate report`, `eval --hallucinator calibration`, short real runs of every trainable hallucinator, and
starting a run from another run's backbone (`init_from`)."""
import json
import math

import pytest
import torch

from hallucinate import load
from hallucinate.cli import main
from hallucinate.model import build_classifier
from hallucinate.pipeline import load_backbone
from hallucinate.training import CheckpointError, EpisodicConfig, load_checkpoint

from tests.conftest import TINY, sets


def test_report_writes_markdown_and_pictures(tiny_gan_checkpoint, data_root, cache, capsys):
    run_dir = tiny_gan_checkpoint.parent
    assert main(["report", str(run_dir), "--episodes", "5", "--data-root", str(data_root), "--cache-dir", str(cache),
                 "--no-progress"]) == 0
    assert json.loads(capsys.readouterr().out)["files"] == ["accuracy_vs_m.png", "projection.png", "report.md",
                                                            "training.png"]
    report = (run_dir / "report" / "report.md").read_text()
    for heading in ("hallucination off | hallucination on | on - off (paired)", "**Verdict:**", "Fréchet distance",
                    "| gan (calibrated) |", "| copy of the seed |", "| real (B) |", "## Accuracy against M",
                    "stage 2 trained the hallucinator for 20 episodes of 5-way 1-shot on the frozen stage-1 embedding"):
        assert heading in report, heading
    for png in ("training", "accuracy_vs_m", "projection"):
        assert (run_dir / "report" / f"{png}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_of_a_folder_without_a_run_says_so(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "no checkpoint.pt in" in capsys.readouterr().err


def test_eval_with_distribution_calibration_fitted_on_the_train_split(tiny_gan_checkpoint, data_root, cache, capsys):
    def run(*extra):
        assert main(["eval", str(tiny_gan_checkpoint), "--episodes", "20", "--data-root", str(data_root),
                     "--cache-dir", str(cache), "--no-progress", *extra]) == 0
        return json.loads(capsys.readouterr().out)

    calibrated, off = run("--hallucinator", "calibration"), run("--no-hallucinate")
    assert calibrated["hallucinate"] is True and off["hallucinate"] is False
    assert calibrated["accuracy"] != off["accuracy"]  # same episodes, other support sets
    assert run("--hallucinator", "calibration", "--n-synthetic", "0")["accuracy"] == off["accuracy"]


# The calibrated GAN (the GAN pipeline's default) trains in stage 2 of a two-stage run: tiny_gan_checkpoint's run.
# The others train jointly with the backbone, in one stage (hallucinator_episodes=0).
TRAINABLE = {"gan-calibrated": None, "gan-noise": ["hallucinator=gan", "gan_generator=noise"],
             "mlp": ["hallucinator=mlp"], "analogy": ["hallucinator=analogy"]}


@pytest.mark.parametrize("hallucinator", TRAINABLE)
def test_short_run_of_each_trainable_hallucinator_stays_finite(hallucinator, omniglot, data_root, cache, tmp_path,
                                                               request):
    if TRAINABLE[hallucinator] is None:
        out = request.getfixturevalue("tiny_gan_checkpoint").parent
    else:
        out = tmp_path / hallucinator
        args = ["run", "pipelines/omniglot_protonet_gan.py", "--out", str(out), "--data-root", str(data_root),
                "--cache-dir", str(cache), "--no-progress"]
        assert main(args + sets(*TINY, "episodes=20", "hallucinator_episodes=0", *TRAINABLE[hallucinator])) == 0
    state = load_checkpoint(out / "checkpoint.pt")
    rows = state["metrics"]
    losses = [value for row in rows for key, value in row.items() if key not in ("episode", "lr")]
    assert len(rows) >= 3 and all(math.isfinite(value) for value in losses)
    trained = {"gan-calibrated": {"per_sample", "adversarial", "critic", "gradient_penalty"},
               "gan-noise": {"adversarial", "anti_collapse", "critic", "gradient_penalty"},
               "mlp": set(), "analogy": {"analogy"}}[hallucinator]
    assert {key for row in rows for key in row} >= trained | {"classification"}  # each of its losses is logged
    assert (out / "stage1").is_dir() == (hallucinator == "gan-calibrated")
    if hallucinator == "analogy":  # 20 episodes banked 5 x (1 + 2) pairs each; the one validation refilled all 512
        assert state["model"]["hallucinator.generator.banked"] == 20 * 15 + 512
    model = load(out / "checkpoint.pt")
    support, labels = torch.rand(10, 64), torch.arange(5).repeat_interleave(2)
    assert torch.isfinite(model.classify_features(support, labels, torch.rand(7, 64))).all()


def test_calibration_cannot_be_trained(data_root, cache, tmp_path, capsys):
    assert main(["run", "pipelines/omniglot_protonet.py", "--set", "hallucinator=calibration", "--out",
                 str(tmp_path / "run"), "--data-root", str(data_root), "--cache-dir", str(cache)]) == 2
    assert "training-free" in capsys.readouterr().err


def test_init_from_loads_the_backbone_and_refuses_one_that_does_not_fit(tiny_gan_checkpoint):
    model = build_classifier(EpisodicConfig())
    load_backbone(model, tiny_gan_checkpoint)
    saved = load_checkpoint(tiny_gan_checkpoint)["best_model"]
    for name, tensor in model.backbone.state_dict().items():
        assert torch.equal(tensor, saved[f"backbone.{name}"]), name
    cifar = build_classifier(EpisodicConfig(dataset="cifar_fs", image_size=32))
    with pytest.raises(CheckpointError, match="its backbone does not fit"):
        load_backbone(cifar, tiny_gan_checkpoint)
