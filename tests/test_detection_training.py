"""Detection's loops: the base training schedule, `hallucinate run` on the TFA pipeline and resuming it, TFA's
fine-tuning from the RoI bank (the loss torchvision's `RoIHeads` takes, only the last layer changing), and a short
real base training run that finds base characters far above chance."""
import json
from collections import OrderedDict

import pytest
import torch
from PIL import Image

from hallucinate import load
from hallucinate.cli import main
from hallucinate.detection import BASE_LABELS, DetectionConfig, KShotCanvases, load_glyphs
from hallucinate.detection.canvases import base_test_set, benchmark_test_set, collate_canvases
from hallucinate.detection.detector import FewShotDetector
from hallucinate.detection.evaluation import (dataset_rpn_recall, detect, detect_from_features, detection_ap,
                                              proposal_features)
from hallucinate.detection.model import build_detector, freeze_all_but_predictor, tfa_surgery
from hallucinate.detection.tfa import _sample, adapt, roi_bank
from hallucinate.detection.training import learning_rate_factor
from hallucinate.training import load_checkpoint
from hallucinate.training.checkpoint import previous_path

PIPELINE = "pipelines/omniglot_detection_tfa.py"
# A short run that learns: 1000 steps of the box classifier, then 500 of the detector at a constant rate (the
# detector's bAP50 dips to 0 while its RPN starts finding characters, then climbs: 24 on validation at step 400).
SHORT_STEPS = 500
SHORT = ["pretrain_steps=1000", f"steps={SHORT_STEPS}", "batch_size=8", "width=32", "lr=0.02", "lr_decay_at=1.0",
         "warmup_steps=50", "val_canvases=64", "val_every=250", "checkpoint_every=50", "log_every=25",
         "num_workers=1"]


def sets(*settings: str) -> list[str]:
    return [x for item in settings for x in ("--set", item)]


def _run(out, data_root, *settings: str, resume: bool = False) -> int:
    return main(["run", PIPELINE, "--out", str(out), "--data-root", str(data_root), "--no-progress",
                 *sets(*settings), *(["--resume"] if resume else [])])


@pytest.fixture(scope="module")
def glyphs(data_root):
    return load_glyphs("train", data_root)


@pytest.fixture(scope="module")
def trained(data_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("detection_run")
    assert _run(out, data_root, *SHORT) == 0
    return out


def test_the_schedule_warms_up_then_falls_tenfold():
    config = DetectionConfig(steps=100, warmup_steps=10, lr_decay_at=0.8)
    assert learning_rate_factor(config, 0) == pytest.approx(0.001)
    assert learning_rate_factor(config, 5) == pytest.approx(0.001 + 0.999 * 0.5)
    assert learning_rate_factor(config, 10) == learning_rate_factor(config, 79) == 1.0
    assert learning_rate_factor(config, 80) == learning_rate_factor(config, 99) == pytest.approx(0.1)
    with pytest.raises(ValueError, match="lr_decay_at must be a fraction of the run in \\(0, 1\\], got 1.5"):
        DetectionConfig(lr_decay_at=1.5)
    with pytest.raises(ValueError, match="finetune must be one of last_layer, all, got 'head'"):
        DetectionConfig(finetune="head")


def test_the_roi_bank_gives_the_loss_torchvision_takes(glyphs):
    """With the same random stream, sampling RoIs from the bank and `fastrcnn_loss` give what the detector's own
    `RoIHeads` computes in training on the same canvases."""
    from torchvision.models.detection.roi_heads import fastrcnn_loss

    torch.manual_seed(0)
    detector = freeze_all_but_predictor(tfa_surgery(build_detector(num_classes=100, width=8), num_novel=20))
    canvases = KShotCanvases(glyphs, k_shot=1, seed=0)
    subset = torch.utils.data.Subset(canvases, range(6))
    bank = roi_bank(detector, subset, device=torch.device("cpu"))
    assert bank.canvases == 6 and len(bank.features) == len(bank.labels) == len(bank.regression_targets)

    images, targets = collate_canvases([subset[i] for i in range(6)])
    batch, targets = detector.transform(images, targets)
    with torch.no_grad():
        maps = OrderedDict([("0", detector.backbone(batch.tensors))])
        proposals, _ = detector.rpn(batch, maps)  # eval mode: the same proposal counts as training here
    detector.roi_heads.train()
    torch.manual_seed(7)
    _, expected = detector.roi_heads(maps, proposals, batch.image_sizes, targets)

    torch.manual_seed(7)
    rows = _sample(detector, bank, torch.arange(6))
    scores, deltas = detector.roi_heads.box_predictor(bank.features[rows])
    classification, box = fastrcnn_loss(scores, deltas, [bank.labels[rows]], [bank.regression_targets[rows]])
    torch.testing.assert_close(classification, expected["loss_classifier"])
    torch.testing.assert_close(box, expected["loss_box_reg"])


def test_tfa_fine_tuning_changes_only_the_last_layer(glyphs):
    torch.manual_seed(0)
    base = build_detector(num_classes=100, width=8)
    before = {key: value.clone() for key, value in base.state_dict().items()}
    config = DetectionConfig(finetune_steps_per_shot=5, finetune_batch_size=8)
    detector, history = adapt(base, KShotCanvases(glyphs, k_shot=1, seed=0), config, seed=0,
                              device=torch.device("cpu"))
    assert not detector.training and history[-1]["step"] == 5
    for key, value in base.state_dict().items():
        assert torch.equal(value, before[key]), f"adapt changed the base detector's {key}"
    after = detector.state_dict()
    changed = {key for key, value in before.items()
               if key in after and after[key].shape == value.shape and not torch.equal(after[key], value)}
    assert changed == set(), f"frozen weights moved: {sorted(changed)}"
    predictor = detector.roi_heads.box_predictor
    assert predictor.cls_score.weight.shape == (121, config.representation_size)
    rows = before["roi_heads.box_predictor.cls_score.weight"]
    assert not torch.allclose(predictor.cls_score.weight[:101] / predictor.cls_score.weight[:101].norm(dim=1,
                              keepdim=True), rows / rows.norm(dim=1, keepdim=True)), "the last layer did not train"


def test_run_writes_the_run_files_and_a_detection_checkpoint(trained):
    state = load_checkpoint(trained / "checkpoint.pt")
    assert state["task"] == "detection" and state["step"] == SHORT_STEPS
    summary = json.loads((trained / "metrics.json").read_text())
    rows = [json.loads(line) for line in (trained / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows if "val_base_ap50" in row] == [250, SHORT_STEPS]
    assert json.loads((trained / "pretrain.json").read_text())[-1]["pretrain_step"] == 1000
    assert summary["val_base_ap50"] == rows[-1]["val_base_ap50"]
    assert all(row["skipped_steps"] == 0 for row in rows if "loss_classifier" in row)


def test_a_resumed_run_ends_as_an_unbroken_one(data_root, tmp_path):
    """Stopped after its step-3 checkpoint and resumed, the run ends with the unbroken run's weights and losses."""
    tiny = ["pretrain_steps=3", "steps=6", "batch_size=2", "width=8", "warmup_steps=2", "val_canvases=4", "val_every=3",
            "checkpoint_every=3", "log_every=3", "num_workers=0"]
    assert _run(tmp_path / "unbroken", data_root, *tiny) == 0
    assert _run(tmp_path / "broken", data_root, *tiny) == 0
    previous = previous_path(tmp_path / "broken" / "checkpoint.pt")
    assert load_checkpoint(previous)["step"] == 3
    previous.replace(tmp_path / "broken" / "checkpoint.pt")  # as if killed after step 3's checkpoint
    assert _run(tmp_path / "broken", data_root, *tiny, resume=True) == 0
    unbroken, resumed = (load_checkpoint(tmp_path / name / "checkpoint.pt") for name in ("unbroken", "broken"))
    assert all(torch.equal(unbroken["model"][name], resumed["model"][name]) for name in unbroken["model"])

    def curve(state):
        return [(row["step"], row.get("loss_classifier"), row.get("val_base_ap50")) for row in state["metrics"]]

    assert curve(unbroken) == curve(resumed)  # the same weights at every step: the same losses, exactly


def test_a_short_run_finds_base_characters_far_above_chance(trained, data_root):
    """Base AP50 on the base test canvases (new drawers) and the RPN's recall, far above an untrained detector's."""
    test = base_test_set(load_glyphs("test", data_root), size=100)
    state = load_checkpoint(trained / "checkpoint.pt")
    config = DetectionConfig.from_saved(state["config"])
    detector = build_detector(num_classes=100, width=config.width)
    detector.load_state_dict(state["model"])
    cpu = torch.device("cpu")
    trained_ap = detection_ap(detector, test, novel_labels=(), base_labels=BASE_LABELS, device=cpu).base_ap50
    torch.manual_seed(0)
    untrained = build_detector(num_classes=100, width=config.width)
    chance_ap = detection_ap(untrained, test, novel_labels=(), base_labels=BASE_LABELS, device=cpu).base_ap50
    assert chance_ap < 1 and trained_ap > 15, (trained_ap, chance_ap)
    assert dataset_rpn_recall(detector, test, device=cpu) > 80


def test_detections_from_cached_features_are_the_detectors_own(glyphs, data_root):
    torch.manual_seed(0)
    base = build_detector(num_classes=100, width=8)
    test = base_test_set(load_glyphs("test", data_root), size=12)
    detector, _ = adapt(base, KShotCanvases(glyphs, k_shot=1, seed=0), DetectionConfig(finetune_steps_per_shot=5),
                        seed=0, device=torch.device("cpu"))
    detector.roi_heads.score_thresh = 0.0  # an untrained detector scores nothing above torchvision's 0.05
    expected, _ = detect(detector, test, device=torch.device("cpu"))
    cached = detect_from_features(detector, proposal_features(base, test, device=torch.device("cpu")))
    assert sum(len(d["boxes"]) for d in expected) > 0
    for mine, theirs in zip(cached, expected):
        for key in ("boxes", "labels", "scores"):
            torch.testing.assert_close(mine[key], theirs[key], msg=key)


def test_load_gives_a_detector_that_adapts_to_new_classes(trained, data_root):
    model = load(trained / "checkpoint.pt")
    assert isinstance(model, FewShotDetector) and not model.training
    test_glyphs = load_glyphs("test", data_root)
    images, targets = collate_canvases([benchmark_test_set(test_glyphs, size=4)[i] for i in range(4)])
    base_detections = model(images)
    assert all(((0 <= d["labels"]) & (d["labels"] < 100)).all() for d in base_detections)
    # two new classes: the first two canvases' first boxes, relabelled 0 and 1
    support = [{"boxes": t["boxes"][:1], "labels": torch.tensor([c])} for c, t in enumerate(targets[:2])]
    adapted = model.adapt(images[:2], support)
    detections = adapted(images)
    assert [set(d) for d in detections] == [{"boxes", "labels", "scores"}] * 4
    assert all(set(d["labels"].tolist()) <= {0, 1} for d in detections)
    assert model.classes is None  # adapt leaves the base detector as it was
    image = model.transform(Image.fromarray((images[0][0] * 255).byte().numpy()))
    assert image.shape == (1, 96, 96) and torch.allclose(image, images[0], atol=1 / 255)
    with pytest.raises(ValueError, match="support labels must cover 0..2: classes \\[0, 1\\] have no box"):
        model.adapt(images[:1], [{"boxes": targets[0]["boxes"][:1], "labels": torch.tensor([2])}])
    with pytest.raises(ValueError, match="support labels must be 0..C-1, one per new class; got \\[\\[-1\\]\\]"):
        model.adapt(images[:1], [{"boxes": targets[0]["boxes"][:1], "labels": torch.tensor([-1])}])
    with pytest.raises(ValueError, match="image 0 has shape \\(3, 96, 96\\): the detector takes 1-channel"):
        model.adapt([torch.zeros(3, 96, 96)], support[:1])
    with pytest.raises(ValueError, match="box\\(es\\) \\[0\\] have no area"):
        model.adapt(images[:1], [{"boxes": torch.tensor([[10.0, 10.0, 5.0, 20.0]]), "labels": torch.tensor([0])}])


def test_eval_prints_the_k_shot_protocol_over_seeds(trained, data_root, capsys):
    assert main(["eval", str(trained / "checkpoint.pt"), "--data-root", str(data_root), "--k-shot", "1",
                 "--seeds", "2", "--images", "40", "--no-progress"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["k_shot"] == 1 and result["seeds"] == 2 and result["images"] == 40
    for name in ("nap50", "bap50", "map"):
        assert len(result[f"{name}_per_seed"]) == 2 and result[f"{name}_ci95"] >= 0
        assert result[name] == pytest.approx(sum(result[f"{name}_per_seed"]) / 2)
    assert main(["eval", str(trained / "checkpoint.pt"), "--data-root", str(data_root), "--k-shot", "4",
                 "--seeds", "2", "--images", "40"]) == 2
    assert "no 4-shot set; valid: 1, 2, 3, 5, 10" in capsys.readouterr().err
