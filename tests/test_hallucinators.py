"""The hallucinator contract, over every registered hallucinator, and each one's own mechanics."""
import pytest
import torch

from hallucinate.hallucinators import (HALLUCINATORS, AnalogyHallucinator, CalibratedGANHallucinator,
                                       DistributionCalibration, GANHallucinator, analogy_loss, hallucinate,
                                       sample_seeds)
from hallucinate.hallucinators.calibration import tukey
from hallucinate.training import EpisodicConfig

DIM = 6
# Every registered hallucinator with its default settings, and the GAN's other generator (the noise GAN).
VARIANTS = [(name, {}) for name in sorted(HALLUCINATORS)] + [("gan", {"gan_generator": "noise"})]
VARIANT_IDS = [name + "".join(f"-{v}" for v in settings.values()) for name, settings in VARIANTS]
# Those whose synthetic features start at their seed (calibration and the calibrated GAN pull it to base classes).
AROUND_SEED = [(v, i) for v, i in zip(VARIANTS, VARIANT_IDS) if i in ("analogy", "gan-noise", "mlp")]


def _ready(name: str, **settings):
    """A hallucinator as it is after training (or, for calibration, after fitting on base classes)."""
    torch.manual_seed(0)
    config = EpisodicConfig(hallucinator_hidden=16, noise_dim=4, **settings)
    hallucinator = HALLUCINATORS.build(name, config, feature_dim=DIM)
    base = torch.rand(4, 10, DIM)  # 4 base classes, 10 examples each; non-negative like ReLU features
    base_labels = torch.arange(4).repeat_interleave(10)
    if isinstance(hallucinator, DistributionCalibration):
        hallucinator.fit(base.flatten(0, 1), base_labels)
    if hallucinator.needs_frozen_embedding:  # the calibrated GAN: base statistics, as the training loop gives them
        hallucinator.before_training(base.flatten(0, 1), base_labels)
    if isinstance(hallucinator, AnalogyHallucinator):  # a training step banks the episode's within-class pairs
        support, query = base[:, :5].flatten(0, 1), base[:, 5:].flatten(0, 1)
        labels = torch.arange(4).repeat_interleave(5)
        hallucinator.training_step(support, labels, query, labels, n_way=4, n_per_class=2,
                                   rng=torch.Generator().manual_seed(0))
        assert int(hallucinator.generator.banked) == 4 * 10  # every example's pair with the next (cyclic)
    return hallucinator


def _support(n_way=3, k_shot=2):
    torch.manual_seed(1)
    return torch.rand(n_way * k_shot, DIM), torch.arange(n_way).repeat_interleave(k_shot)


@pytest.mark.parametrize(("name", "settings"), VARIANTS, ids=VARIANT_IDS)
def test_shapes_labels_weights_and_real_features_kept(name, settings):
    features, labels = _support()
    out, out_labels, weights = _ready(name, **settings)(features, labels, 4, torch.Generator().manual_seed(0))
    assert out.shape == (6 + 12, DIM) and torch.equal(out[:6], features) and torch.equal(out_labels[:6], labels)
    assert out_labels[6:].tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert torch.isfinite(out).all()
    # Shot-aware weights (the default, synthetic_mass 1): real examples weigh 1, a class's 4 synthetic ones 1 in all.
    assert torch.equal(weights, torch.tensor([1.0] * 6 + [1 / 4] * 12))


@pytest.mark.parametrize(("name", "settings"), VARIANTS, ids=VARIANT_IDS)
def test_without_shot_aware_weights_every_example_weighs_one(name, settings):
    features, labels = _support()
    hallucinator = _ready(name, shot_aware_weights=False, synthetic_mass=3.0, **settings)
    assert hallucinator.synthetic_mass is None
    _, _, weights = hallucinator(features, labels, 4, torch.Generator().manual_seed(0))
    assert torch.equal(weights, torch.ones(18))


@pytest.mark.parametrize(("name", "settings"), VARIANTS, ids=VARIANT_IDS)
def test_same_rng_seed_same_synthetic_features(name, settings):
    features, labels = _support()
    hallucinator = _ready(name, **settings)
    a, _, _ = hallucinator(features, labels, 3, torch.Generator().manual_seed(7))
    b, _, _ = hallucinator(features, labels, 3, torch.Generator().manual_seed(7))
    c, _, _ = hallucinator(features, labels, 3, torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_gan_settings_build_the_chosen_generator():
    assert isinstance(_ready("gan"), CalibratedGANHallucinator)  # the default
    noise = _ready("gan", gan_generator="noise")
    assert isinstance(noise, GANHallucinator) and not isinstance(noise, CalibratedGANHallucinator)
    with pytest.raises(ValueError, match="calibrated, noise"):
        HALLUCINATORS.build("gan", feature_dim=DIM, settings=EpisodicConfig(gan_generator="gaussian"))


@pytest.mark.parametrize(("name", "settings"), [v for v, _ in AROUND_SEED], ids=[i for _, i in AROUND_SEED])
def test_synthetic_features_stay_nearer_their_seed_class_than_others(name, settings):
    """Well-separated classes: what a learned hallucinator adds to a class, untrained, lies nearest that class's
    real mean. (Calibration and the calibrated GAN are left out by design: they pull each seed toward its nearest
    *base* classes.)"""
    labels = torch.arange(3).repeat_interleave(2)
    features = 10 * torch.eye(3, DIM)[labels] + 0.1 * torch.rand(6, DIM)
    out, out_labels, _ = _ready(name, **settings)(features, labels, 5, torch.Generator().manual_seed(0))
    means = torch.stack([features[labels == c].mean(0) for c in range(3)])
    assert torch.equal(torch.cdist(out[6:], means).argmin(1), out_labels[6:])


def test_calibrated_mean_and_covariance_by_hand():
    # Two base classes in 2-D, fitted with tukey=1 (no transform) so the statistics are plain.
    base = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0], [2.0, 2.0],  # class 0: mean (1, 1), cov diag(4/3)
                         [10.0, 10.0], [10.0, 12.0], [12.0, 10.0], [12.0, 12.0]])  # class 1: mean (11, 11)
    labels = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    hallucinator = DistributionCalibration(feature_dim=2, k=1, alpha=0.5, tukey=1.0).fit(base, labels)
    mean, covariance = hallucinator.generator.calibrate(torch.tensor([[3.0, 1.0]]))
    assert torch.allclose(mean, torch.tensor([[2.0, 1.0]]))  # (nearest base mean (1, 1) + seed (3, 1)) / 2
    assert torch.allclose(covariance, torch.tensor([[[4 / 3 + 0.5, 0.0], [0.0, 4 / 3 + 0.5]]]))
    # Samples carry those moments.
    seed = torch.tensor([[3.0, 1.0]])
    noise = torch.randn(20000, 2, generator=torch.Generator().manual_seed(0))
    samples = hallucinator.generator(seed.expand(20000, 2), noise)
    assert torch.allclose(samples.mean(0), torch.tensor([2.0, 1.0]), atol=0.05)
    assert torch.allclose(samples.T.cov(), covariance[0], atol=0.06)


def test_calibration_with_tukey_transform_and_k_nearest():
    base = torch.tensor([[1.0, 1.0], [1.0, 9.0], [16.0, 16.0], [16.0, 36.0], [100.0, 100.0], [100.0, 144.0]])
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    hallucinator = DistributionCalibration(feature_dim=2, k=2, alpha=0.0, tukey=0.5).fit(base, labels)
    # Square roots: class means (1, 2), (4, 5), (10, 11); the seed (4, 4) -> (2, 2) is nearest classes 0 and 1.
    mean, covariance = hallucinator.generator.calibrate(torch.tensor([[4.0, 4.0]]))
    assert torch.allclose(mean, torch.tensor([[(1 + 4 + 2) / 3, (2 + 5 + 2) / 3]]))
    # Transformed, class 0 is (1, 1), (1, 3) and class 1 is (4, 4), (4, 6): both have covariance [[0, 0], [0, 2]].
    assert torch.allclose(covariance[0], torch.tensor([[0.0, 0.0], [0.0, 2.0]]))
    assert torch.equal(tukey(torch.tensor([-4.0, 9.0]), 0.5), torch.tensor([-2.0, 3.0]))


def test_unfitted_calibration_and_empty_analogy_bank_say_what_to_do():
    features, labels = _support()
    with pytest.raises(RuntimeError, match="fit"):
        DistributionCalibration(feature_dim=DIM)(features, labels, 2)
    with pytest.raises(RuntimeError, match="train it first"):
        AnalogyHallucinator(feature_dim=DIM)(features, labels, 2)
    with pytest.raises(ValueError, match="at least 2 examples"):
        DistributionCalibration(feature_dim=DIM, k=1).fit(features[:3], torch.tensor([0, 1, 1]))


def test_analogy_starts_as_the_vector_analogy_and_its_loss_is_zero_on_exact_analogies():
    hallucinator = AnalogyHallucinator(feature_dim=2, hidden=8)
    torch.nn.init.zeros_(hallucinator.generator.net[-1].weight)
    seed, pair = torch.tensor([[5.0, 5.0]]), torch.tensor([[0.0, 0.0, 1.0, 2.0]])
    assert torch.equal(hallucinator.generator(seed, pair), torch.tensor([[6.0, 7.0]]))
    # Every class varies by the same offset (1, 2): each pair's analogy is exact, the loss is 0.
    grouped = torch.tensor([[[0.0, 0.0], [1.0, 2.0], [2.0, 4.0]], [[5.0, 0.0], [6.0, 2.0], [7.0, 4.0]]])
    # Cyclic pairs include (last, first) with offset (-2, -4); its best analogy is the other class's (-2, -4).
    assert analogy_loss(hallucinator.generator, grouped) == 0


def test_analogy_bank_is_a_ring_buffer_carried_by_the_state_dict():
    hallucinator = AnalogyHallucinator(feature_dim=2, hidden=8, bank_size=4)
    hallucinator.generator.remember(torch.arange(24.0).reshape(6, 4))
    assert int(hallucinator.generator.banked) == 6
    assert hallucinator.generator.bank[:, 0].tolist() == [16.0, 20.0, 8.0, 12.0]  # rows 4, 5 overwrote 0, 1
    copy = torch.nn.ModuleDict({"hallucinator": AnalogyHallucinator(feature_dim=2, hidden=8, bank_size=4)})
    copy.load_state_dict({f"hallucinator.{name}": value for name, value in hallucinator.state_dict().items()})
    assert torch.equal(copy.hallucinator.generator.bank, hallucinator.generator.bank)
    # The host's copy of the count (draws and writes read it without a sync) comes back with the buffer.
    assert copy.hallucinator.generator.banked_count == 6
    copy.hallucinator.generator.remember(torch.full((1, 4), -1.0))
    assert copy.hallucinator.generator.bank[:, 0].tolist() == [16.0, 20.0, -1.0, 12.0]
    assert int(copy.hallucinator.generator.banked) == copy.hallucinator.generator.banked_count == 7


def test_calibration_statistics_are_not_checkpointed():
    assert list(DistributionCalibration(feature_dim=DIM).state_dict()) == []


def test_seeds_drawn_with_the_number_of_classes_given_are_those_read_from_the_labels():
    _, labels = _support()
    given = sample_seeds(labels, 4, torch.Generator().manual_seed(0), n_way=3)
    assert torch.equal(given, sample_seeds(labels, 4, torch.Generator().manual_seed(0)))


def test_functional_face_with_no_synthetic_examples_returns_the_inputs():
    features, labels = _support()
    out, out_labels, weights = hallucinate(features, labels, 0, generator=None)
    assert out is features and out_labels is labels and torch.equal(weights, torch.ones(len(features)))
    given = torch.rand(len(features))
    assert hallucinate(features, labels, 0, generator=None, weights=given)[2] is given


def test_calibration_samples_from_a_singular_covariance():
    """A feature that is always zero (a dead ReLU) gives a singular covariance when alpha is 0; sampling still works."""
    features = torch.rand(40, 4, generator=torch.Generator().manual_seed(0))
    features[:, 3] = 0
    calibration = DistributionCalibration(feature_dim=4, k=1, alpha=0.0, tukey=1.0)
    calibration.fit(features, torch.arange(4).repeat_interleave(10))
    seeds = torch.rand(3, 4, generator=torch.Generator().manual_seed(1))
    out, _, _ = calibration(seeds, torch.arange(3), 5, torch.Generator().manual_seed(0))
    # No variance along feature 3: every sample sits at the calibrated mean there, (base mean 0 + seed) / 2.
    assert torch.isfinite(out).all() and torch.allclose(out[3:, 3], (seeds[:, 3] / 2).repeat_interleave(5), atol=1e-5)
