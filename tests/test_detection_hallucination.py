"""Hallucinated RoI features in TFA's fine-tuning: the calibration hallucinator's synthetic features (labels, count,
weights), the weighted classification loss by hand, fine-tuning without a hallucinator bit-identical to the code
before it, with one changed and reproducible, the RoI bank's precomputed rows and the shared bank giving what the
code before them gave, and the switches' errors."""
import dataclasses
import math

import pytest
import torch
from torchvision.models.detection.roi_heads import fastrcnn_loss

from hallucinate.detection import DetectionConfig, KShotCanvases, load_glyphs
from hallucinate.detection.canvases import benchmark_test_set, collate_canvases
from hallucinate.detection.detector import FewShotDetector
from hallucinate.detection.evaluation import k_shot_ap, k_shot_arms, paired_gains
from hallucinate.detection.hallucination import RoIHallucinator, base_roi_features, roi_hallucinator
from hallucinate.detection.model import build_detector, freeze_all_but_predictor, tfa_surgery
from hallucinate.detection.tfa import (_sample, adapt, finetune_last_layer, k_shot_bank, roi_bank,
                                       weighted_classification_loss)
from hallucinate.hallucinators import DistributionCalibration
from hallucinate.training import load_checkpoint

CPU = torch.device("cpu")
STATISTICS_CANVASES = 300  # enough for every one of the 100 base classes to have RoIs, even on an untrained detector
HALLUCINATING = DetectionConfig(hallucinator="calibration", n_synthetic=4, synthetic_mass=2.0,
                                calibration_canvases=STATISTICS_CANVASES, calibration_alpha=0.01,
                                finetune_steps_per_shot=6, finetune_batch_size=8)


@pytest.fixture(scope="module")
def glyphs(data_root):
    return load_glyphs("train", data_root)


@pytest.fixture(scope="module")
def base():
    torch.manual_seed(0)
    return build_detector(num_classes=100, width=8, representation_size=32)


@pytest.fixture(scope="module")
def hallucinator(base, glyphs):
    return roi_hallucinator(base, HALLUCINATING, glyphs=glyphs, device=CPU)


@pytest.fixture(scope="module")
def bank(base, glyphs):
    """The last-layer fine-tuning bank of 10 base and 20 novel canvases of a 1-shot set."""
    canvases = torch.utils.data.Subset(KShotCanvases(glyphs, k_shot=1, seed=0), range(90, 120))
    return roi_bank(freeze_all_but_predictor(tfa_surgery(base, num_novel=20)), canvases, device=CPU)


def _widened(base, seed: int = 0):
    return freeze_all_but_predictor(tfa_surgery(base, num_novel=20, generator=torch.Generator().manual_seed(seed)))


def _fitted(feature_dim: int = 6, classes: int = 4, per_class: int = 30) -> RoIHallucinator:
    generator = torch.Generator().manual_seed(0)
    features = torch.rand(classes * per_class, feature_dim, generator=generator) * 3
    labels = torch.arange(1, classes + 1).repeat_interleave(per_class)  # detector labels: 1..C_base
    calibration = DistributionCalibration(feature_dim=feature_dim, k=2, alpha=0.01, tukey=0.5)
    return RoIHallucinator(calibration.fit(features, labels), base_classes=classes)


def test_the_hallucinator_makes_n_per_class_features_of_each_seed_class_weighing_the_mass():
    hallucinator = _fitted()
    seeds = torch.rand(5, 6) * 3
    seed_labels = torch.tensor([7, 5, 7, 7, 5])
    features, labels, weights = hallucinator(seeds, seed_labels, n_per_class=3, synthetic_mass=1.5,
                                             rng=torch.Generator().manual_seed(1))
    assert features.shape == (6, 6) and labels.tolist() == [5, 5, 5, 7, 7, 7]
    torch.testing.assert_close(weights, torch.full((6,), 0.5))  # 1.5 in all for each class, 3 features each
    assert (features >= 0).all(), "box-head features are a ReLU's: no negative coordinate"
    assert not any(torch.allclose(feature, seed) for feature in features for seed in seeds), "copies of seeds"
    again = hallucinator(seeds, seed_labels, n_per_class=3, synthetic_mass=1.5, rng=torch.Generator().manual_seed(1))
    assert torch.equal(again[0], features)
    other = hallucinator(seeds, seed_labels, n_per_class=3, synthetic_mass=1.5, rng=torch.Generator().manual_seed(2))
    assert not torch.equal(other[0], features)
    empty = hallucinator(seeds[:0], seed_labels[:0], n_per_class=3, synthetic_mass=1.5)
    assert [len(x) for x in empty] == [0, 0, 0]


def test_the_hallucinator_fits_on_every_base_class_of_the_base_detector(base, glyphs, hallucinator, data_root):
    features, labels = base_roi_features(base, glyphs, canvases=20, device=CPU)
    assert features.shape[1] == 32 and (features >= 0).all() and ((labels >= 1) & (labels <= 100)).all()
    assert hallucinator.base_classes == 100
    assert hallucinator.calibration.generator.means.shape == (100, 32)
    with pytest.raises(ValueError, match="base statistics come from the train drawers"):
        base_roi_features(base, load_glyphs("test", data_root), canvases=2, device=CPU)
    with pytest.raises(ValueError, match="left base labels .* without a foreground RoI: raise calibration_canvases"):
        roi_hallucinator(base, dataclasses.replace(HALLUCINATING, calibration_canvases=3), glyphs=glyphs, device=CPU)


def test_the_weighted_loss_by_hand():
    scores = torch.tensor([[2.0, 0.0, -1.0], [0.5, 1.5, 0.0], [0.0, 0.0, 3.0]])
    labels = torch.tensor([0, 1, 1])
    weights = torch.tensor([1.0, 1.0, 0.25])

    def ce(row, label):
        return math.log(sum(math.exp(s) for s in scores[row].tolist())) - scores[row, label].item()

    expected = (ce(0, 0) + ce(1, 1) + 0.25 * ce(2, 1)) / 2.25
    assert weighted_classification_loss(scores, labels, weights).item() == pytest.approx(expected, rel=1e-6)
    torch.testing.assert_close(weighted_classification_loss(scores, labels, torch.ones(3)),
                               torch.nn.functional.cross_entropy(scores, labels))


def _old_sample(detector, bank, canvases):
    """`_sample` before the bank held its rows: a nonzero per canvas per step."""
    per_canvas = [torch.nonzero(bank.canvas == index).flatten() for index in canvases.tolist()]
    chosen_fg, chosen_bg = detector.roi_heads.fg_bg_sampler([bank.labels[rows] for rows in per_canvas])
    return torch.cat([rows[(fg | bg).bool()] for rows, fg, bg in zip(per_canvas, chosen_fg, chosen_bg)])


def _old_finetune_last_layer(detector, bank, config, *, steps, seed):
    """`finetune_last_layer` as it was before hallucination joined it."""
    predictor = detector.roi_heads.box_predictor
    optimizer = torch.optim.SGD(predictor.parameters(), lr=config.finetune_lr, momentum=config.finetune_momentum,
                                weight_decay=config.finetune_weight_decay)
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    order = torch.empty(0, dtype=torch.long)
    for _ in range(steps):
        if len(order) < config.finetune_batch_size:
            order = torch.cat([order, torch.randperm(int(bank.canvas.max()) + 1, generator=generator)])
        canvases, order = order[:config.finetune_batch_size], order[config.finetune_batch_size:]
        rows = _old_sample(detector, bank, canvases)
        scores, deltas = predictor(bank.features[rows])
        classification, box = fastrcnn_loss(scores, deltas, [bank.labels[rows]], [bank.regression_targets[rows]])
        optimizer.zero_grad(set_to_none=True)
        (classification + box).backward()
        optimizer.step()


def test_the_banks_rows_give_the_samples_of_a_nonzero_per_canvas(bank, base):
    detector = _widened(base)
    assert bank.canvases == 30
    for index, rows in enumerate(bank.rows):
        assert torch.equal(rows, torch.nonzero(bank.canvas == index).flatten())
    canvases = torch.tensor([3, 17, 0, 29, 11])
    torch.manual_seed(5)
    expected = _old_sample(detector, bank, canvases)
    torch.manual_seed(5)
    assert torch.equal(_sample(detector, bank, canvases), expected)


def test_without_a_hallucinator_fine_tuning_is_the_code_before_it(bank, base):
    config = DetectionConfig(finetune_batch_size=8)
    old, new = _widened(base), _widened(base)
    _old_finetune_last_layer(old, bank, config, steps=9, seed=3)
    finetune_last_layer(new, bank, config, steps=9, seed=3)
    for name, value in old.roi_heads.box_predictor.state_dict().items():
        assert torch.equal(new.roi_heads.box_predictor.state_dict()[name], value), name


def test_hallucination_changes_the_last_layer_reproducibly(bank, base, hallucinator):
    runs = {}
    for name, config, given, seed in (("off", dataclasses.replace(HALLUCINATING, hallucinator="none"), None, 3),
                                      ("on", HALLUCINATING, hallucinator, 3), ("again", HALLUCINATING, hallucinator, 3),
                                      ("other", HALLUCINATING, hallucinator, 4)):
        detector = _widened(base)
        history = finetune_last_layer(detector, bank, config, steps=9, seed=seed, hallucinator=given)
        runs[name] = (detector.roi_heads.box_predictor.state_dict(), history)
    off, on, again, other = (runs[name][0] for name in ("off", "on", "again", "other"))
    assert all(torch.equal(on[name], again[name]) for name in on), "the same seed must give the same weights"
    assert runs["on"][1] == runs["again"][1]
    classifier = "cls_score.weight"
    novel = slice(101, 121)
    assert not torch.allclose(on[classifier][novel], off[classifier][novel]), "synthetic RoIs changed nothing"
    assert not torch.equal(on[classifier], other[classifier])
    # the synthetic RoIs have no box: box regression learns from the real RoIs alone, the same ones as without them
    assert torch.equal(on["bbox_pred.weight"], off["bbox_pred.weight"])


def test_a_shared_bank_gives_each_arm_what_it_gets_alone(base, glyphs, hallucinator):
    k_shot_set = KShotCanvases(glyphs, k_shot=1, seed=1)
    shared = k_shot_bank(base, k_shot_set, HALLUCINATING, device=CPU)
    own = roi_bank(_widened(base, seed=1), k_shot_set, device=CPU)  # what adapt computed before the bank was shared
    for field in ("features", "labels", "regression_targets", "canvas"):
        assert torch.equal(getattr(shared, field), getattr(own, field)), field
    for config, given in ((dataclasses.replace(HALLUCINATING, hallucinator="none"), None),
                          (dataclasses.replace(HALLUCINATING, hallucinator="none", predictor="fc"), None),
                          (HALLUCINATING, hallucinator)):
        alone, _ = adapt(base, k_shot_set, config, seed=1, device=CPU, hallucinator=given)
        with_bank, _ = adapt(base, k_shot_set, config, seed=1, device=CPU, bank=shared, hallucinator=given)
        for name, value in alone.roi_heads.box_predictor.state_dict().items():
            assert torch.equal(with_bank.roi_heads.box_predictor.state_dict()[name], value), (config.predictor, name)


def test_arms_measured_together_score_as_each_alone_and_their_paired_gain(base, glyphs, hallucinator, data_root):
    test_set = benchmark_test_set(load_glyphs("test", data_root), size=6)
    off = dataclasses.replace(HALLUCINATING, hallucinator="none")
    together = k_shot_arms(base, {"off": off, "on": HALLUCINATING}, k_shot=1, seeds=range(2), train_glyphs=glyphs,
                           test_set=test_set, device=CPU, hallucinator=hallucinator)
    alone = k_shot_ap(base, HALLUCINATING, k_shot=1, seeds=range(2), train_glyphs=glyphs, test_set=test_set,
                      device=CPU, hallucinator=hallucinator)
    assert together["on"] == alone and together["on"]["n_synthetic"] == 4
    assert together["off"]["hallucinator"] == "none" and "n_synthetic" not in together["off"]
    gains = paired_gains(together["on"], together["off"])
    for name in ("nap50", "bap50", "map"):
        differences = [a - b for a, b in zip(together["on"][f"{name}_per_seed"], together["off"][f"{name}_per_seed"])]
        assert gains[f"{name}_per_seed"] == differences
        assert gains[name] == pytest.approx(sum(differences) / 2)
    with pytest.raises(ValueError, match="paired gains need the same K-shot sets"):
        paired_gains(together["on"], {**together["off"], "k_shot": 2})


def test_the_switches_say_what_is_wrong(base, glyphs):
    detector = FewShotDetector(base, DetectionConfig())
    assert not detector.hallucinating
    with pytest.raises(ValueError, match="config names no hallucinator \\(hallucinator='none'\\)"):
        detector.set_hallucination(True)
    assert not detector.set_hallucination(False).hallucinating
    hallucinating = FewShotDetector(base, HALLUCINATING)
    assert hallucinating.hallucinating and not hallucinating.set_hallucination(False).hallucinating
    assert hallucinating.set_hallucination(True).hallucinating
    k_shot_set = KShotCanvases(glyphs, k_shot=1, seed=0)
    with pytest.raises(ValueError, match="config.hallucinator is 'calibration' but no hallucinator was given"):
        adapt(base, k_shot_set, HALLUCINATING, seed=0, device=CPU)
    with pytest.raises(ValueError, match="config.hallucinator is 'none' but a hallucinator was given"):
        adapt(base, k_shot_set, DetectionConfig(), seed=0, device=CPU, hallucinator=_fitted())
    with pytest.raises(ValueError, match="hallucinated RoI features join last-layer fine-tuning only"):
        DetectionConfig(hallucinator="calibration", finetune="all")
    with pytest.raises(ValueError, match="hallucinator must be one of none, calibration, got 'gan'"):
        DetectionConfig(hallucinator="gan")
    with pytest.raises(ValueError, match="n_synthetic must be >= 1 and synthetic_mass > 0"):
        DetectionConfig(n_synthetic=0)


def test_an_old_checkpoints_config_loads_without_hallucination():
    saved = load_checkpoint("checkpoints/omniglot_detection_tfa_conv4.pt")["config"]
    assert "hallucinator" not in saved
    config = DetectionConfig.from_saved(saved)
    assert config.hallucinator == "none" and config.width == saved["width"]


def test_a_hallucinating_detector_adapts_to_new_classes_and_keeps_its_statistics(base, data_root):
    model = FewShotDetector(base, HALLUCINATING).eval()
    images, targets = collate_canvases([benchmark_test_set(load_glyphs("test", data_root), size=2)[i]
                                        for i in range(2)])
    support = [{"boxes": t["boxes"][:1], "labels": torch.tensor([c])} for c, t in enumerate(targets)]
    adapted = model.adapt(images, support, data_root=data_root)
    fitted = model.roi_hallucinator(data_root=data_root)
    assert model.roi_hallucinator(data_root=data_root) is fitted, "the statistics are computed once per detector"
    assert adapted.classes == 2 and adapted.detector.roi_heads.box_predictor.cls_score.weight.shape[0] == 103
    assert all(set(d["labels"].tolist()) <= {0, 1} for d in adapted(images))
    plain = model.set_hallucination(False).adapt(images, support, data_root=data_root)
    assert plain.config.hallucinator == "none"
    assert not torch.equal(plain.detector.roi_heads.box_predictor.cls_score.weight,
                           adapted.detector.roi_heads.box_predictor.cls_score.weight)
