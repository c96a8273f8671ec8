"""Attention-RPN with the multi-relation detector: the depth-wise correlation on a hand fixture, each relation head's
contract, proposals that follow the support, the 2-way contrastive episodes, a tiny training run that learns and
resumes to the unbroken run's weights, the warm start, the K-shot evaluation's keys and ranges, and the loaded
detector's errors."""
import json

import pytest
import torch

from hallucinate.detection import NUM_BASE_CLASSES, benchmark_test_set, collate_canvases, load_glyphs
from hallucinate.detection.attention_config import AttentionRPNConfig
from hallucinate.detection.attention_evaluation import k_shot_ap
from hallucinate.detection.attention_rpn import (SUPPORT_WINDOW, AttentionRPN, GlobalRelation, LocalRelation,
                                                 MultiRelationHead, PatchRelation, depthwise_correlation,
                                                 load_attention_rpn, support_windows, warm_start)
from hallucinate.detection.attention_training import ContrastiveEpisodes
from hallucinate.detection.evaluation import k_shot_ap as tfa_k_shot_ap
from hallucinate.detection.model import build_detector
from hallucinate.pipeline import load_pipeline
from hallucinate.training import load_checkpoint, override
from hallucinate.training.checkpoint import CheckpointError, previous_path, save_checkpoint

PIPELINE = "pipelines/omniglot_detection_attention_rpn.py"
TINY = ["init_from=", "width=8", "relation_channels=8", "support_shots=2", "episodes_per_step=2", "lr=0.02",
        "warmup_steps=5", "val_canvases=4", "num_workers=0", "precision=fp32"]
CPU = torch.device("cpu")


def _run(out, data_root, *settings, resume: bool = False) -> dict:
    """What `hallucinate run PIPELINE --set ...` runs (the CLI's summary line needs this task's entry in cli.py)."""
    module = load_pipeline(PIPELINE)
    return module.run(override(module.CONFIG, list(settings)), out=out, resume=resume, data_root=data_root,
                      device="cpu", progress=False)


@pytest.fixture(scope="module")
def glyphs(data_root):
    return load_glyphs("train", data_root)


@pytest.fixture(scope="module")
def trained(data_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("attention_rpn_run")
    _run(out, data_root, *TINY, "steps=40", "log_every=10", "val_every=40", "checkpoint_every=20")
    return out


def test_depthwise_correlation_by_hand():
    x = torch.tensor([[[[1.0, 2.0, 0.0], [0.0, 1.0, 3.0], [2.0, 1.0, 1.0]],
                       [[0.0, 1.0, 1.0], [1.0, 0.0, 2.0], [1.0, 1.0, 0.0]]]])
    kernel = torch.tensor([[[[1.0, 0.0], [0.0, -1.0]], [[2.0, 1.0], [0.0, 0.0]]]])
    # channel 0: x[i, j] - x[i + 1, j + 1]; channel 1: 2 x[i, j] + x[i, j + 1]
    expected = torch.tensor([[[[0.0, -1.0], [-1.0, 0.0]], [[1.0, 3.0], [2.0, 2.0]]]])
    torch.testing.assert_close(depthwise_correlation(x, kernel), expected)
    # a 1x1 kernel reweights the channels: Attention-RPN's attention map
    weights = torch.tensor([[[[2.0]], [[-0.5]]]])
    torch.testing.assert_close(depthwise_correlation(x, weights), x * torch.tensor([2.0, -0.5]).view(1, 2, 1, 1))
    # one kernel per sample is each sample with its own kernel
    pair, kernels = torch.cat([x, x.flip(-1)]), torch.cat([kernel, weights.expand(1, 2, 2, 2)])
    torch.testing.assert_close(depthwise_correlation(pair, kernels),
                               torch.cat([depthwise_correlation(pair[i:i + 1], kernels[i:i + 1]) for i in range(2)]))
    with pytest.raises(ValueError, match="must be \\[1 or 1, 2, kh, kw\\], got \\(1, 3, 2, 2\\)"):
        depthwise_correlation(x, torch.zeros(1, 3, 2, 2))


def test_each_relation_head_scores_a_pair_and_the_sum_is_the_detectors():
    torch.manual_seed(0)
    query, support = torch.rand(5, 6, 7, 7), torch.rand(6, 7, 7)
    head = MultiRelationHead(6, 4).eval()
    for branch in (GlobalRelation(6, 4), LocalRelation(6)):
        assert branch(query, support).shape == (5, 2)
        torch.testing.assert_close(branch(query, support), branch(query, support.expand(5, 6, 7, 7)))
    logits, deltas = head(query, support)
    assert logits.shape == (5, 2) and deltas.shape == (5, 4)
    patch, patch_deltas = head.patch_relation(query, support)
    torch.testing.assert_close(logits, head.global_relation(query, support) + head.local_relation(query, support)
                               + patch)
    torch.testing.assert_close(deltas, patch_deltas)
    # a RoI's score depends on it and the support alone, not on the other RoIs of the batch
    alone, _ = head(query[2:3], support)
    torch.testing.assert_close(alone, logits[2:3])
    # the local relation is the depth-wise correlation of the two convolved maps: by hand, a sum of products
    local = head.local_relation
    by_hand = (torch.relu(local.conv(query)) * torch.relu(local.conv(support[None]))).sum(dim=(2, 3))
    torch.testing.assert_close(local(query, support), local.score(by_hand))
    assert isinstance(PatchRelation(6, 4)(query, support), tuple)
    with pytest.raises(ValueError, match="pairs query RoIs \\[N, C, r, r\\] with one support"):
        head(query, torch.rand(5, 7, 7))
    with pytest.raises(ValueError, match="or one per RoI"):
        head(query, torch.rand(3, 6, 7, 7))


def test_the_attention_rpn_proposes_by_the_support():
    torch.manual_seed(0)
    model = AttentionRPN(width=8, relation_channels=8).eval()
    for layer in (model.rpn.head.conv[0][0], model.rpn.head.cls_logits):  # torchvision's std 0.01 gives ~0 logits
        torch.nn.init.normal_(layer.weight, std=1.0)
    query = [torch.rand(1, 96, 96)]
    batch, maps = model.query_maps(query)
    first, second = torch.zeros(1, 8, 7, 7), torch.zeros(1, 8, 7, 7)
    first[:, :4], second[:, 4:] = 1.0, 1.0  # supports of disjoint channels: the RPN sees disjoint features

    def objectness(prototype):
        attention = depthwise_correlation(maps, prototype.mean(dim=(2, 3), keepdim=True))
        return model.rpn.head([attention])[0][0]

    torch.testing.assert_close(objectness(first), objectness(first.clone()))
    assert (objectness(first) - objectness(second)).abs().max() > 0.5 * objectness(first).abs().max()
    with torch.no_grad():
        proposals_first, _ = model.propose(batch, maps, first)
        proposals_second, _ = model.propose(batch, maps, second)
    assert proposals_first[0].shape == (100, 4)
    assert not torch.equal(proposals_first[0], proposals_second[0])


def test_support_windows_keep_the_box_at_the_canvas_scale():
    image = torch.zeros(1, 96, 96)
    image[0, 80:90, 2:20] = 1.0
    windows, boxes = support_windows([image], [torch.tensor([[2.0, 80.0, 20.0, 90.0]])])
    assert windows.shape == (1, 1, SUPPORT_WINDOW, SUPPORT_WINDOW)
    x1, y1, x2, y2 = boxes[0].long().tolist()
    assert (x2 - x1, y2 - y1) == (18, 10)
    assert windows[0, 0, y1:y2, x1:x2].sum() == 180 == windows.sum()  # the ink, whole, and nothing else
    with pytest.raises(ValueError, match="the support holds no box"):
        support_windows([image], [torch.zeros(0, 4)])


def test_episodes_pair_a_present_class_with_an_absent_one(glyphs):
    episodes = ContrastiveEpisodes(glyphs, size=6, seed=0, shots=2)
    for index in range(6):
        image, target, positive_windows, positive_boxes, negative_windows, negative_boxes = episodes[index]
        canvas = episodes.queries.canvas(index)
        present = set(canvas.characters[canvas.labelled].tolist())
        assert image.shape == (1, 96, 96) and (target["labels"] == 1).all() and len(target["boxes"]) >= 1
        positive = {int(c) for c, box in zip(canvas.characters, canvas.boxes)
                    if any(torch.equal(torch.from_numpy(box).float(), b) for b in target["boxes"])}
        assert len(positive) == 1 and positive <= present
        assert positive_windows.shape == negative_windows.shape == (2, 1, SUPPORT_WINDOW, SUPPORT_WINDOW)
        for windows, boxes in ((positive_windows, positive_boxes), (negative_windows, negative_boxes)):
            for window, box in zip(windows, boxes.long()):
                assert window[0, box[1]:box[3], box[0]:box[2]].amax() > 0  # ink inside each support box
    again = ContrastiveEpisodes(glyphs, size=6, seed=0, shots=2)[3]  # each episode from its own seed
    assert all(torch.equal(a["boxes"], b["boxes"]) if isinstance(a, dict) else torch.equal(a, b)
               for a, b in zip(again, episodes[3]))
    with pytest.raises(ValueError, match="support_shots must be 1..10"):
        ContrastiveEpisodes(glyphs, size=2, seed=0, shots=11)


def test_a_tiny_run_lowers_its_loss_and_writes_its_files(trained):
    state = load_checkpoint(trained / "checkpoint.pt")
    assert state["task"] == "detection_attention_rpn" and state["step"] == 40
    rows = [json.loads(line) for line in (trained / "metrics.jsonl").read_text().splitlines()]
    losses = [sum(v for k, v in row.items() if k.startswith("loss_")) for row in rows if "loss_classifier" in row]
    assert len(losses) == 4 and losses[-1] < 0.8 * losses[0], losses
    assert all(row["skipped_steps"] == 0 for row in rows if "loss_classifier" in row)
    summary = json.loads((trained / "metrics.json").read_text())
    assert 0 <= summary["val_base_ap50"] <= 100


def test_a_resumed_run_ends_as_an_unbroken_one(data_root, tmp_path):
    tiny = [*TINY, "steps=6", "log_every=3", "val_every=6", "checkpoint_every=3"]
    _run(tmp_path / "unbroken", data_root, *tiny)
    _run(tmp_path / "broken", data_root, *tiny)
    previous = previous_path(tmp_path / "broken" / "checkpoint.pt")
    assert load_checkpoint(previous)["step"] == 3
    previous.replace(tmp_path / "broken" / "checkpoint.pt")  # as if killed after step 3's checkpoint
    _run(tmp_path / "broken", data_root, *tiny, resume=True)
    unbroken, resumed = (load_checkpoint(tmp_path / name / "checkpoint.pt") for name in ("unbroken", "broken"))
    assert all(torch.equal(unbroken["model"][name], resumed["model"][name]) for name in unbroken["model"])

    def curve(state):
        return [(row["step"], row.get("loss_classifier"), row.get("val_base_ap50")) for row in state["metrics"]]

    assert curve(unbroken) == curve(resumed)  # the same weights at every step: the same losses, exactly


def test_the_warm_start_loads_the_base_detectors_backbone(tmp_path):
    torch.manual_seed(0)
    base = build_detector(num_classes=NUM_BASE_CLASSES, width=8)
    path = tmp_path / "base.pt"
    save_checkpoint(path, {"task": "detection", "config": {}, "model": base.state_dict()})
    config = AttentionRPNConfig(width=8, relation_channels=8, init_from=str(path), frozen_blocks=2)
    from hallucinate.detection.attention_rpn import build_attention_rpn

    model = build_attention_rpn(config)
    warm_start(model, load_checkpoint(path), frozen_blocks=2)
    for name, value in model.backbone.state_dict().items():
        torch.testing.assert_close(value, base.backbone.state_dict()[name], msg=name)
    trainable = {name.split(".")[0] for name, p in model.backbone.named_parameters() if p.requires_grad}
    assert trainable == {"2", "3"}
    with pytest.raises(CheckpointError, match="is not a base detector checkpoint"):
        warm_start(model, {"task": "segmentation", "model": {}}, frozen_blocks=2)
    with pytest.raises(CheckpointError, match="backbone does not fit this model \\(width 16\\)"):
        warm_start(build_attention_rpn(AttentionRPNConfig(width=16, init_from=str(path))), load_checkpoint(path),
                   frozen_blocks=0)


def test_the_k_shot_evaluation_gives_tfas_keys_in_range(trained, glyphs, data_root):
    detector = load_attention_rpn(load_checkpoint(trained / "checkpoint.pt"), trained / "checkpoint.pt")
    test_set = benchmark_test_set(load_glyphs("test", data_root), size=6)
    result = k_shot_ap(detector.model, k_shot=1, seeds=range(2), train_glyphs=glyphs, test_set=test_set,
                       device=CPU)
    from hallucinate.detection.config import DetectionConfig

    torch.manual_seed(0)
    tfa = tfa_k_shot_ap(build_detector(num_classes=NUM_BASE_CLASSES, width=8), DetectionConfig(
        finetune_steps_per_shot=2), k_shot=1, seeds=range(2), train_glyphs=glyphs, test_set=test_set, device=CPU)
    assert set(result) == set(tfa)
    assert result["k_shot"] == 1 and result["seeds"] == 2
    for name in ("nap50", "bap50", "map"):
        assert all(0 <= value <= 100 for value in result[f"{name}_per_seed"]) and result[f"{name}_ci95"] >= 0
        assert result[name] == pytest.approx(sum(result[f"{name}_per_seed"]) / 2)
    novel_only = k_shot_ap(detector.model, k_shot=1, seeds=range(2), train_glyphs=glyphs, test_set=test_set,
                           device=CPU, base=False)
    assert "bap50" not in novel_only and all(0 <= value <= 100 for value in novel_only["nap50_per_seed"])


def test_the_loaded_detector_adapts_to_a_support_and_refuses_bad_ones(trained, data_root):
    detector = load_attention_rpn(load_checkpoint(trained / "checkpoint.pt"), trained / "checkpoint.pt")
    images, targets = collate_canvases([benchmark_test_set(load_glyphs("test", data_root), size=4)[i]
                                        for i in range(4)])
    support = [{"boxes": t["boxes"][:1], "labels": torch.tensor([c])} for c, t in enumerate(targets[:2])]
    adapted = detector.adapt(images[:2], support)
    assert adapted.classes == 2 and detector.classes is None
    detections = adapted(images)
    assert [set(d) for d in detections] == [{"boxes", "labels", "scores"}] * 4
    assert all(set(d["labels"].tolist()) <= {0, 1} and len(d["boxes"]) <= 100 for d in detections)
    with pytest.raises(ValueError, match="call adapt\\(support_images, support_targets\\) first"):
        detector(images)
    with pytest.raises(ValueError, match="support labels must cover 0..2: classes \\[0, 1\\] have no box"):
        detector.adapt(images[:1], [{"boxes": targets[0]["boxes"][:1], "labels": torch.tensor([2])}])
    with pytest.raises(ValueError, match="the support is empty"):
        detector.adapt([], [])
    with pytest.raises(ValueError, match="the support targets hold no box"):
        detector.adapt(images[:1], [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}])
    with pytest.raises(ValueError, match="image 0 has shape \\(3, 96, 96\\): the detector takes 1-channel"):
        detector.adapt([torch.zeros(3, 96, 96)], support[:1])
    with pytest.raises(ValueError, match="image 0 has shape \\(3, 96, 96\\): the detector takes 1-channel"):
        adapted([torch.zeros(3, 96, 96)])
    with pytest.raises(ValueError, match="support labels must be 0..C-1"):
        detector.adapt(images[:1], [{"boxes": targets[0]["boxes"][:1], "labels": torch.tensor([-1])}])


def test_the_command_line_runs_evaluates_and_loads_an_attention_rpn_checkpoint(data_root, tmp_path, capsys):
    from hallucinate import load
    from hallucinate.cli import main
    from hallucinate.detection.attention_rpn import AttentionRPNDetector

    out = tmp_path / "run"
    settings = [x for item in [*TINY, "steps=2", "log_every=1", "val_every=2", "checkpoint_every=2"]
                for x in ("--set", item)]
    assert main(["run", PIPELINE, *settings, "--out", str(out), "--data-root", str(data_root), "--device", "cpu",
                 "--no-progress"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["steps"] == 2 and summary["out"] == str(out)
    assert isinstance(load(out / "checkpoint.pt"), AttentionRPNDetector)
    assert main(["eval", str(out / "checkpoint.pt"), "--k-shot", "1", "--seeds", "2", "--images", "3",
                 "--novel-only", "--data-root", str(data_root), "--no-progress"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["k_shot"] == 1 and 0 <= result["nap50"] <= 100 and "bap50" not in result
