"""The segmenter's maths on tiny fixtures with values computed by hand, its contract, its metric on hand cases, and
its bad-input errors; no data needed."""
import math

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from hallucinate.segmentation import PrototypeSegmenter, SegmentationConfig, build_segmenter
from hallucinate.segmentation.metric import (THRESHOLD, SegmentationResult, centres_of_mass, inked, iou_per_image,
                                             localised, predicted_masks)
from hallucinate.segmentation.model import alignment_loss, cosine_logits, feature_maps, masked_average_pool
from hallucinate.segmentation.training import training_losses


def test_masked_average_pool_averages_the_features_under_the_mask():
    features = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[0.0, 1.0], [0.0, 1.0]]]])  # [1, C=2, 2, 2]
    mask = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    pooled = masked_average_pool(features, mask)
    assert torch.allclose(pooled, torch.tensor([[(1 + 4) / 2, (0 + 1) / 2]]), atol=1e-4)


def test_masked_average_pool_upsamples_the_features_to_the_mask_first():
    # [1, 1, 1, 2] features (left 0, right 4) upsampled bilinearly to 1x4: 0, 1, 3, 4 (PyTorch, align_corners=False)
    features = torch.tensor([[[[0.0, 4.0]]]])
    mask = torch.tensor([[[0.0, 1.0, 1.0, 0.0]]])
    assert torch.allclose(masked_average_pool(features, mask), torch.tensor([[(1 + 3) / 2]]), atol=1e-4)
    empty = masked_average_pool(features, torch.zeros(1, 1, 4))
    assert torch.equal(empty, torch.zeros(1, 1))  # PANet's epsilon: nothing to pool pools to zeros, not NaN


def test_cosine_logits_by_hand():
    features = torch.tensor([[[[1.0, 1.0]], [[0.0, 1.0]]]])  # pixel 0: (1, 0), pixel 1: (1, 1)
    prototypes = torch.tensor([[[0.0, 2.0], [3.0, 0.0]]])  # background (0, 2), foreground (3, 0)
    logits = cosine_logits(features, prototypes, scale=20.0)
    expected = torch.tensor([[[[0.0, 20 / math.sqrt(2)]], [[20.0, 20 / math.sqrt(2)]]]])
    assert logits.shape == (1, 2, 1, 2)
    assert torch.allclose(logits, expected, atol=1e-4)


class FixedHallucinator(nn.Module):
    """Adds one synthetic feature per episode, its real feature + 1, at weight 0.5."""

    def forward(self, features, labels, n_per_class, rng=None):
        return (torch.cat([features, features + 1]), torch.cat([labels, labels]),
                torch.cat([features.new_ones(len(features)), features.new_full((len(features),), 0.5)]))


def test_prototypes_are_masked_pools_and_the_hallucinated_foreground_is_their_weighted_mean():
    identity = nn.Identity()
    model = PrototypeSegmenter(identity, hallucinator=FixedHallucinator(), n_synthetic=1)
    features = torch.tensor([[[[[2.0, 0.0]], [[0.0, 6.0]]]]])  # [E=1, K=1, C=2, 1, 2]
    masks = torch.tensor([[[[1.0, 0.0]]]])  # the reference's left pixel is its strokes
    model.set_hallucination(False)
    background, foreground = model.prototypes(features, masks)[0]
    assert torch.allclose(foreground, torch.tensor([2.0, 0.0]), atol=1e-4)
    assert torch.allclose(background, torch.tensor([0.0, 6.0]), atol=1e-4)
    model.set_hallucination(True)
    hallucinated = model.prototypes(features, masks)[0, 1]
    assert torch.allclose(hallucinated, (torch.tensor([2.0, 0.0]) + 0.5 * torch.tensor([3.0, 1.0])) / 1.5, atol=1e-4)


def test_k_shot_foreground_is_the_mean_over_shots():
    model = PrototypeSegmenter(nn.Identity())
    features = torch.tensor([[[[[2.0]], [[0.0]]], [[[0.0]], [[4.0]]]]])  # [E=1, K=2, C=2, 1, 1]
    foreground = model.prototypes(features, torch.ones(1, 2, 1, 1))[0, 1]
    assert torch.allclose(foreground, torch.tensor([1.0, 2.0]), atol=1e-4)


def test_feature_maps_keep_a_quarter_of_the_resolution_and_can_be_negative():
    backbone = feature_maps(width=8, pooled=2)
    maps = backbone(torch.rand(2, 3, 96, 96))
    assert maps.shape == (2, 8, 24, 24)
    assert backbone(torch.rand(1, 3, 32, 32)).shape == (1, 8, 8, 8)
    assert (maps < 0).any()  # no final ReLU


def _tiny(**settings) -> PrototypeSegmenter:
    torch.manual_seed(0)
    return build_segmenter(SegmentationConfig(width=8, hallucinator_hidden=16, noise_dim=4, **settings))


def _reference_masks(shots: int) -> torch.Tensor:
    masks = torch.zeros(shots, 32, 32, dtype=torch.bool)
    masks[:, 10:20, 12:14] = True
    return masks


def test_forward_segments_queries_of_another_size_than_the_references():
    model = _tiny().eval()
    with torch.no_grad():
        logits = model(torch.rand(2, 3, 32, 32), _reference_masks(2), torch.rand(3, 3, 96, 96))
    assert logits.shape == (3, 2, 96, 96)
    assert torch.isfinite(logits).all()


def test_transform_keeps_the_image_size():
    image = Image.fromarray(np.full((40, 70, 3), 255, dtype=np.uint8))
    tensor = PrototypeSegmenter.transform(image)
    assert tensor.shape == (3, 40, 70) and tensor.dtype == torch.float32 and tensor.max() == 1.0


def test_set_hallucination_needs_a_hallucinator():
    with pytest.raises(ValueError, match="no hallucinator"):
        _tiny().set_hallucination(True)
    model = _tiny(hallucinator="mlp")
    assert model.hallucinating
    assert not model.set_hallucination(False).hallucinating


def test_only_hallucinators_the_segmentation_loss_trains_are_accepted():
    with pytest.raises(ValueError, match="segmentation trains the hallucinators mlp"):
        _tiny(hallucinator="gan")


def test_an_empty_support_mask_is_refused():
    masks = _reference_masks(2)
    masks[1] = False
    with pytest.raises(ValueError, match=r"support mask\(s\) \[1\] are empty"):
        _tiny()(torch.rand(2, 3, 32, 32), masks, torch.rand(1, 3, 96, 96))


@pytest.mark.parametrize("shape", [(2, 16, 16), (1, 32, 32), (2, 1, 32, 32)])
def test_support_masks_of_the_wrong_shape_are_refused(shape):
    with pytest.raises(ValueError, match=r"support_masks must be \[S, h, w\] = \[2, 32, 32\]"):
        _tiny()(torch.rand(2, 3, 32, 32), torch.ones(shape), torch.rand(1, 3, 96, 96))


def test_grey_images_are_refused():
    with pytest.raises(ValueError, match="query_images must be"):
        _tiny()(torch.rand(1, 3, 32, 32), _reference_masks(1), torch.rand(1, 1, 96, 96))


def _batch(batch_size: int = 2, shots: int = 1) -> dict:
    generator = torch.Generator().manual_seed(0)
    query_mask = torch.zeros(batch_size, 96, 96, dtype=torch.bool)
    query_mask[:, 40:60, 30:33] = True
    return {"support": torch.randint(0, 256, (batch_size, shots, 3, 32, 32), generator=generator, dtype=torch.uint8),
            "support_mask": _reference_masks(shots).expand(batch_size, -1, -1, -1),
            "query": torch.randint(0, 256, (batch_size, 3, 96, 96), generator=generator, dtype=torch.uint8),
            "query_mask": query_mask}


def test_gradients_reach_backbone_refinement_and_hallucinator():
    config = SegmentationConfig(width=8, hallucinator="mlp", hallucinator_hidden=16, noise_dim=4,
                                alignment_weight=1.0)
    torch.manual_seed(0)
    model = build_segmenter(config)
    losses, logits = training_losses(config, model, _batch(), torch.device("cpu"), torch.Generator().manual_seed(0))
    assert set(losses) == {"segmentation", "alignment"} and logits.shape == (2, 2, 96, 96)
    sum(losses.values()).backward()
    for part in ("backbone", "refinement", "hallucinator"):
        grads = [p.grad for p in getattr(model, part).parameters()]
        assert all(g is not None for g in grads), part
        assert sum(g.abs().sum() for g in grads) > 0, part


def test_alignment_loss_is_low_when_the_query_is_its_own_reference():
    """A query identical to its reference and predicted exactly: the prototypes pooled from its prediction segment
    the reference exactly too."""
    features = torch.zeros(1, 2, 4, 4)
    features[0, 0, :2] = 1.0  # the top half is foreground, the bottom half background
    features[0, 1, 2:] = 1.0
    masks = torch.zeros(1, 1, 4, 4)
    masks[0, 0, :2] = 1.0
    scores = torch.stack([features[:, 1], features[:, 0]], dim=1) * 20  # background, foreground
    loss = alignment_loss(features, scores, features[:, None], masks, scale=20.0)
    assert loss < 1e-6


def test_metric_thresholds_foreground_probability_at_0_3():
    probability = torch.tensor([0.29, 0.31])
    logits = torch.stack([torch.zeros(2), torch.log(probability / (1 - probability))]).reshape(1, 2, 1, 2)
    assert THRESHOLD == 0.3
    assert predicted_masks(logits).tolist() == [[[False, True]]]


def test_iou_per_image_by_hand_and_an_empty_union_counts_as_one():
    truth = torch.tensor([[[1, 1, 0, 0]], [[0, 0, 0, 0]], [[1, 0, 0, 0]]], dtype=torch.bool)
    predicted = torch.tensor([[[0, 1, 1, 0]], [[0, 0, 0, 0]], [[0, 0, 0, 0]]], dtype=torch.bool)
    assert iou_per_image(predicted, truth).tolist() == pytest.approx([1 / 3, 1.0, 0.0])


def test_localisation_is_the_centre_of_mass_within_5_pixels():
    truth = torch.zeros(3, 20, 20, dtype=torch.bool)
    truth[:, 10, 10] = True
    predicted = torch.zeros(3, 20, 20, dtype=torch.bool)
    predicted[0, 10, 13:18] = True  # centre (10, 15): 5 pixels off
    predicted[1, 16, 10] = True  # 6 pixels off
    assert torch.allclose(centres_of_mass(predicted[:1]), torch.tensor([[10.0, 15.0]], dtype=torch.float64))
    assert localised(predicted, truth).tolist() == [True, False, False]  # an empty prediction is nowhere


def test_floors_and_result_summary():
    scenes = torch.zeros(2, 3, 2, 2, dtype=torch.uint8)
    scenes[:, 0, 0, :] = 200  # the top row is inked
    truth = torch.tensor([[[1, 0], [0, 0]], [[1, 1], [0, 0]]], dtype=torch.bool)
    inked_floor = iou_per_image(inked(scenes), truth).tolist()
    assert inked_floor == [0.5, 1.0]
    result = SegmentationResult((0.5, 1.0), (True, False), (0.0, 0.0), tuple(inked_floor), subset="test-one-shot",
                                clutter=4, same_drawer=True, k_shot=1, hallucinate=False)
    summary = result.as_dict()
    assert summary["iou"] == 75.0 and summary["localisation"] == 50.0 and summary["images"] == 2
    assert summary["ci95"] == pytest.approx(100 * 1.96 * np.std([0.5, 1.0], ddof=1) / math.sqrt(2), abs=1e-3)
    assert summary["floor_empty_iou"] == 0.0 and summary["floor_inked_iou"] == 75.0


def test_context_blocks_keep_the_feature_map_and_dilate_2_then_4():
    torch.manual_seed(0)
    plain, context = feature_maps(width=8, pooled=2), feature_maps(width=8, pooled=2, context=2)
    assert plain(torch.rand(1, 3, 96, 96)).shape == context(torch.rand(1, 3, 96, 96)).shape == (1, 8, 24, 24)
    convolutions = [block[0] for block in context[4:]]
    assert [(c.dilation, c.padding) for c in convolutions] == [((2, 2), (2, 2)), ((4, 4), (4, 4))]
    assert isinstance(context[-1][-1], nn.BatchNorm2d)  # no last ReLU: cosine similarities can be negative
    assert isinstance(plain[3][-1], nn.BatchNorm2d) and isinstance(context[3][-1], nn.ReLU)


def test_a_checkpoint_older_than_a_setting_resumes_with_its_default():
    from hallucinate.training.config import changed_settings
    saved = SegmentationConfig().as_dict()
    del saved["context_blocks"]
    assert SegmentationConfig.from_saved(saved) == SegmentationConfig()
    assert changed_settings(saved, SegmentationConfig()) == []
    assert changed_settings(saved, SegmentationConfig(context_blocks=2)) == ["context_blocks"]


def test_ink_input_makes_the_features_blind_to_hue():
    torch.manual_seed(0)
    model = build_segmenter(SegmentationConfig(width=8, ink_input=True)).eval()
    assert model.backbone[0][0].in_channels == 1
    scene = torch.zeros(1, 3, 96, 96)
    scene[0, :, 40:50, 30:60] = torch.tensor([0.9, 0.2, 0.4])[:, None, None]
    recoloured = scene[:, [2, 0, 1]]  # the same strokes, another hue of the same brightest channel
    assert torch.equal(model.embed(scene), model.embed(recoloured))
    plain = build_segmenter(SegmentationConfig(width=8)).eval()
    assert not torch.allclose(plain.embed(scene), plain.embed(recoloured))
