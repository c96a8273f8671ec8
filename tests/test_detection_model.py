import math

import pytest
import torch

from hallucinate.detection.metric import DetectionAP, average_precision, rpn_recall, summarize_seeds
from hallucinate.detection.model import (CosineBoxPredictor, build_detector, check_targets, freeze_all_but_predictor,
                                         propose, tfa_surgery, unfreeze_all)


def canvases(n: int = 2, boxes_per_canvas: int = 2, *, num_classes: int = 3, seed: int = 0):
    """Black 96x96 canvases with bright squares, one box each (xyxy, pixels)."""
    generator = torch.Generator().manual_seed(seed)
    images, targets = [], []
    for _ in range(n):
        image, boxes = torch.zeros(1, 96, 96), []
        for j in range(boxes_per_canvas):
            x, y, side = 6 + 40 * j, 8 + 30 * j, 24
            image[0, y:y + side, x:x + side] = 0.5 + 0.5 * torch.rand(side, side, generator=generator)
            boxes.append([x, y, x + side, y + side])
        images.append(image)
        targets.append({"boxes": torch.tensor(boxes, dtype=torch.float32),
                        "labels": torch.randint(1, num_classes + 1, (boxes_per_canvas,), generator=generator)})
    return images, targets


@pytest.fixture(scope="module")
def detector():
    torch.manual_seed(0)
    return build_detector(num_classes=3)


def small_detector(predictor: str = "fc"):
    torch.manual_seed(0)
    return build_detector(num_classes=2, width=8, representation_size=16, predictor=predictor)


def test_cosine_logits_by_hand():
    predictor = CosineBoxPredictor(2, 3, scale=20.0)
    with torch.no_grad():
        predictor.cls_score.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 4.0]]))
    x = torch.tensor([[3.0, 4.0], [0.0, -1.0]])
    with torch.no_grad():
        scores, deltas = predictor(x)
    eps = 1e-5
    norms_x, norms_w = (5.0, 1.0), (1.0, 2.0, 5.0)
    dots = ((3.0, 8.0, 25.0), (0.0, -2.0, -4.0))
    expected = torch.tensor([[20 * dots[i][k] / ((norms_x[i] + eps) * (norms_w[k] + eps)) for k in range(3)]
                             for i in range(2)])
    torch.testing.assert_close(scores, expected, rtol=1e-6, atol=1e-6)
    assert scores[0, 2].item() == pytest.approx(20 * 25 / (5 + eps) ** 2)  # same direction: just under 20
    assert deltas.shape == (2, 12)
    with torch.no_grad():
        torch.testing.assert_close(deltas, predictor.bbox_pred(x))


def test_transform_keeps_96_pixel_canvases(detector):
    images, _ = canvases(3)
    batch, _ = detector.transform(images)
    assert tuple(batch.tensors.shape) == (3, 1, 96, 96) and batch.image_sizes == [(96, 96)] * 3
    torch.testing.assert_close(batch.tensors, torch.stack(images))  # no resize, no padding, no normalisation
    assert tuple(detector.backbone(batch.tensors).shape) == (3, 64, 12, 12)  # stride 8


def test_train_mode_returns_the_four_losses_and_eval_mode_detections(detector):
    images, targets = canvases(2)
    detector.train()
    losses = detector(images, targets)
    assert set(losses) == {"loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg"}
    assert all(torch.isfinite(loss) for loss in losses.values())
    detector.eval()
    with torch.no_grad():
        detections = detector(images)
    assert len(detections) == 2
    for found in detections:
        assert set(found) == {"boxes", "labels", "scores"} and found["boxes"].shape[1:] == (4,)
        assert len(found["boxes"]) <= 100
    proposals = propose(detector, images)
    assert all(0 < len(boxes) <= 100 and (boxes >= 0).all() and (boxes <= 96).all() for boxes in proposals)


def test_bf16_autocast_forward_runs_and_keeps_boxes_in_float32(detector):
    images, targets = canvases(2)
    detector.train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        losses = detector(images, targets)
    assert all(torch.isfinite(loss) and loss.dtype == torch.float32 for loss in losses.values())
    detector.eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        detections = detector(images)
    assert all(found["boxes"].dtype == torch.float32 for found in detections)


def test_channels_last_backbone_computes_the_same_features():
    torch.manual_seed(0)
    plain = build_detector(num_classes=1).eval()
    torch.manual_seed(0)
    fast = build_detector(num_classes=1, channels_last=True).eval()
    x = torch.rand(2, 1, 96, 96)
    with torch.no_grad():
        torch.testing.assert_close(fast.backbone(x), plain.backbone(x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("predictor", ["fc", "cosine"])
def test_surgery_copies_base_rows_and_draws_novel_ones(predictor):
    base = small_detector()
    before = {key: value.clone() for key, value in base.state_dict().items()}
    tuned = tfa_surgery(base, num_novel=2, predictor=predictor, generator=torch.Generator().manual_seed(0))
    old, new = base.roi_heads.box_predictor, tuned.roi_heads.box_predictor
    assert new.cls_score.out_features == 5 and new.bbox_pred.out_features == 20  # background + 2 base + 2 novel
    assert torch.equal(new.cls_score.weight[:3], old.cls_score.weight)  # background row 0 and base rows 1, 2
    assert torch.equal(new.bbox_pred.weight[:12], old.bbox_pred.weight)  # 4 rows per class
    assert torch.equal(new.bbox_pred.bias[:12], old.bbox_pred.bias)
    assert (new.bbox_pred.bias[12:] == 0).all()
    if predictor == "fc":
        assert torch.equal(new.cls_score.bias[:3], old.cls_score.bias) and (new.cls_score.bias[3:] == 0).all()
    else:
        assert new.cls_score.bias is None
    novel = torch.cat([new.cls_score.weight[3:].flatten(), new.bbox_pred.weight[12:].flatten()])
    assert 0.005 < novel.std() < 0.015 and novel.abs().max() < 0.1
    shared = {key for key in before if not key.startswith("roi_heads.box_predictor")}
    assert all(torch.equal(tuned.state_dict()[key], before[key]) for key in shared)
    assert all(torch.equal(base.state_dict()[key], before[key]) for key in before)  # the base is untouched


@pytest.mark.parametrize("predictor", ["fc", "cosine"])
def test_tfa_freezing_trains_only_the_last_layer(predictor):
    detector = freeze_all_but_predictor(tfa_surgery(small_detector(), num_novel=1, predictor=predictor))
    trainable = [name for name, parameter in detector.named_parameters() if parameter.requires_grad]
    assert trainable and all(name.startswith("roi_heads.box_predictor.") for name in trainable)
    image, target = torch.zeros(1, 96, 96), {"boxes": torch.tensor([[20.0, 30.0, 50.0, 60.0]]),
                                             "labels": torch.tensor([3])}
    image[0, 30:60, 20:50] = 1.0
    before = {key: value.clone() for key, value in detector.state_dict().items()}
    optimizer = torch.optim.SGD([p for p in detector.parameters() if p.requires_grad], lr=0.5)
    detector.train()
    losses = detector([image], [target])
    optimizer.zero_grad()
    sum(losses.values()).backward()
    optimizer.step()
    after = detector.state_dict()
    changed = {key for key in before if not torch.equal(before[key], after[key])}
    assert changed == {key for key in before if key.startswith("roi_heads.box_predictor.")}


def test_unfreeze_all_makes_everything_trainable():
    detector = unfreeze_all(freeze_all_but_predictor(small_detector()))
    assert all(parameter.requires_grad for parameter in detector.parameters())


def test_build_detector_refuses_unknown_predictors():
    with pytest.raises(ValueError, match="fc, cosine"):
        build_detector(num_classes=2, predictor="linear")


@pytest.mark.parametrize("image, target, message", [
    (torch.zeros(3, 96, 96), None, "1-channel"),
    (torch.zeros(1, 96, 96), {"boxes": torch.tensor([[10.0, 10.0, 5.0, 30.0]]), "labels": torch.tensor([1])},
     "no area"),
    (torch.zeros(1, 96, 96), {"boxes": torch.tensor([[10.0, 10.0, 10.0, 30.0]]), "labels": torch.tensor([1])},
     "x2 <= x1"),
    (torch.zeros(1, 96, 96), {"boxes": torch.tensor([[80.0, 10.0, 100.0, 30.0]]), "labels": torch.tensor([1])},
     "outside the 96x96 image"),
    (torch.zeros(1, 96, 96), {"boxes": torch.tensor([[10.0, 10.0, 20.0, 30.0]]), "labels": torch.tensor([0])},
     "0 is the background"),
    (torch.zeros(1, 96, 96), {"boxes": torch.tensor([[10, 10, 20, 30]]), "labels": torch.tensor([1])},
     "float tensor"),
])
def test_check_targets_says_what_is_wrong(image, target, message):
    with pytest.raises(ValueError, match=message):
        check_targets([image], None if target is None else [target], num_classes=3)


def test_check_targets_accepts_an_image_without_objects():
    check_targets([torch.zeros(1, 96, 96)], [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}])


def detection(boxes, scores, labels):
    return {"boxes": torch.tensor(boxes, dtype=torch.float32), "scores": torch.tensor(scores),
            "labels": torch.tensor(labels)}


# 30x28 inside 30x30: IoU 840 / 900 = 0.933, matched at IoU thresholds 0.5..0.9, missed at 0.95
EXACT, NEAR = [10.0, 10.0, 40.0, 40.0], [50.0, 50.0, 80.0, 78.0]


def test_ap_on_a_hand_made_case():
    truth = [{"boxes": torch.tensor([EXACT, [50.0, 50.0, 80.0, 80.0]]), "labels": torch.tensor([1, 1])}]
    result = average_precision([detection([EXACT, NEAR], [0.9, 0.8], [1, 1])], truth, novel_labels=[],
                               base_labels=[1])
    assert result.base_ap50 == pytest.approx(100.0) and result.novel_ap50 is None
    # at 0.95 only the best-scored box matches: recall 0.5 at precision 1, 51 of COCO's 101 recall points
    assert result.map == pytest.approx(100 * (9 + 51 / 101) / 10, abs=1e-3)
    assert result.map == pytest.approx(95.0, abs=0.1)


def test_ap_of_a_missed_class_is_zero():
    truth = [{"boxes": torch.tensor([EXACT, [50.0, 50.0, 80.0, 80.0]]), "labels": torch.tensor([1, 1])},
             {"boxes": torch.tensor([EXACT]), "labels": torch.tensor([2])}]
    predictions = [detection([EXACT, NEAR], [0.9, 0.8], [1, 1]), detection([[60.0, 60.0, 90.0, 90.0]], [0.7], [2])]
    result = average_precision(predictions, truth, novel_labels=[2, 3], base_labels=[1])
    assert result.ap50_per_class == pytest.approx({1: 100.0, 2: 0.0})  # label 3 has no ground truth: not counted
    assert result.novel_ap50 == 0.0 and result.base_ap50 == pytest.approx(100.0)
    assert result.map == pytest.approx(100 * (9 + 51 / 101) / 10 / 2, abs=1e-3)
    with pytest.raises(ValueError, match="neither"):
        average_precision(predictions, truth, novel_labels=[3], base_labels=[1])


def test_summarize_seeds_gives_mean_and_95_percent_interval():
    results = [DetectionAP(novel_ap50=value, base_ap50=None, map=value / 2, ap50_per_class={})
               for value in (10.0, 20.0, 30.0)]
    summary = summarize_seeds(results)
    assert set(summary) == {"novel_ap50", "map"}
    assert summary["novel_ap50"]["mean"] == pytest.approx(20.0)
    assert summary["novel_ap50"]["ci95"] == pytest.approx(1.96 * 10.0 / math.sqrt(3))
    assert summary["map"]["per_seed"] == [5.0, 10.0, 15.0]


def test_rpn_recall_on_a_hand_case():
    truth = [torch.tensor([EXACT, [50.0, 50.0, 80.0, 80.0]]), torch.tensor([[0.0, 0.0, 20.0, 20.0]])]
    proposals = [torch.tensor([EXACT, [60.0, 60.0, 90.0, 90.0]]),  # the second overlaps its box at IoU 0.29
                 torch.tensor([[50.0, 50.0, 60.0, 60.0], [0.0, 0.0, 20.0, 18.0]])]  # IoU 0.9, but second
    assert rpn_recall(proposals, truth) == pytest.approx(200 / 3)
    assert rpn_recall(proposals, truth, top=1) == pytest.approx(100 / 3)
    with pytest.raises(ValueError, match="at least one ground-truth box"):
        rpn_recall([torch.zeros(0, 4)], [torch.zeros(0, 4)])
