"""The calibrated GAN: its generator starts at distribution calibration (compact covariances kept as buffers), keeps
the seed's own base class out of its nearest ones in training, and travels in a state dict; its training step's
losses, and a critic whose real samples are other examples of the seed's class."""
import pytest
import torch

from hallucinate.hallucinators import CalibratedGANHallucinator, CalibratedGenerator, per_sample_loss
from hallucinate.hallucinators.calibration import tukey
from hallucinate.model import build_classifier
from hallucinate.training import EpisodicConfig, train_episodic
from tests.conftest import NoiseSplit

D = 3


def _base(n_classes=4, per_class=40, seed=0):
    """Non-negative base-class features ``[C * n, D]`` (ReLU-like), each class with its own mean and spread."""
    rng = torch.Generator().manual_seed(seed)
    means = 1.0 + 9.0 * torch.rand(n_classes, D, generator=rng)
    mixing = 0.5 * torch.randn(n_classes, D, D, generator=rng)
    noise = torch.randn(n_classes, per_class, D, generator=rng)
    features = (means.unsqueeze(1) + noise @ mixing).clamp_min(0.01)
    return features.flatten(0, 1), torch.arange(n_classes).repeat_interleave(per_class)


def _tukey_statistics(features, labels, power=0.5):
    transformed = tukey(features.double(), power)
    classes = range(int(labels.max()) + 1)
    return (torch.stack([transformed[labels == c].mean(0) for c in classes]),
            torch.stack([transformed[labels == c].T.cov() for c in classes]))


def _generator(**settings) -> CalibratedGenerator:
    torch.manual_seed(0)
    return CalibratedGenerator(D, **{"k": 2, "alpha": 0.0, "power": 0.5, "rank": D, "hidden": 8} | settings)


def _samples(generator, seed, n=40000, exclude=None):
    noise = generator.sample_noise(n, seed, torch.Generator().manual_seed(1))
    excluded = None if exclude is None else torch.full((n,), exclude)
    with torch.no_grad():
        return generator(seed.expand(n, D), noise, excluded)


def test_at_its_zero_residual_it_samples_the_calibrated_gaussian_in_tukey_space():
    """alpha 0 and every principal direction kept: in Tukey space the samples have the calibrated mean
    (t(seed) + the k nearest base means) / (k + 1) and the average of those classes' covariances."""
    features, labels = _base()
    generator = _generator().fit(features, labels)
    means, covariances = _tukey_statistics(features, labels)
    seed = features[labels == 1][:1] * 1.05  # near base class 1
    transformed = tukey(seed.double(), 0.5)
    nearest = torch.cdist(transformed, means).topk(2, largest=False).indices[0]
    assert 1 in nearest.tolist()
    samples = tukey(_samples(generator, seed).double(), 0.5)
    expected_mean = (transformed[0] + means[nearest].sum(0)) / 3
    expected_covariance = covariances[nearest].mean(0)
    scale = expected_covariance.diagonal().sqrt()
    assert torch.allclose(samples.mean(0), expected_mean, atol=0.03 * scale.max().item())
    assert torch.allclose(samples.T.cov(), expected_covariance, atol=0.05 * expected_covariance.abs().max().item())


def test_with_fewer_directions_each_covariance_is_its_probabilistic_pca_form():
    """rank r < D: the top r principal directions at their variances, the rest at their mean variance; a sample's
    covariance is the average of the k nearest classes' forms plus alpha."""
    features, labels = _base()
    generator = _generator(rank=1, alpha=0.3).fit(features, labels)
    assert generator.base_directions.shape == (4, D, 1) and generator.base_residual_variance.shape == (4,)
    _, covariances = _tukey_statistics(features, labels)
    forms = generator.base_directions.double() @ generator.base_directions.double().transpose(1, 2) \
        + generator.base_residual_variance.double().view(4, 1, 1) * torch.eye(D, dtype=torch.float64)
    for form, covariance in zip(forms, covariances):
        values = torch.linalg.eigvalsh(covariance).flip(0)
        expected = torch.cat([values[:1], values[1:].mean().repeat(D - 1)])
        assert torch.allclose(torch.linalg.eigvalsh(form).flip(0), expected, atol=1e-4)
        assert torch.allclose(form.trace(), covariance.trace(), atol=1e-4)  # the variance is all kept
    seed = features[:1]
    nearest = generator.nearest(tukey(seed, 0.5))[0]
    samples = tukey(_samples(generator, seed).double(), 0.5)
    expected = forms[nearest].mean(0) + 0.3 * torch.eye(D, dtype=torch.float64)
    assert torch.allclose(samples.T.cov(), expected, atol=0.05 * expected.abs().max().item())


def test_a_class_with_fewer_examples_than_directions_keeps_its_whole_covariance():
    """3 examples a class span 2 directions: with rank 3 the third is zero and nothing is left for the rest."""
    features, labels = _base(per_class=3)
    generator = _generator(rank=D).fit(features, labels)
    _, covariances = _tukey_statistics(features, labels)
    forms = generator.base_directions.double() @ generator.base_directions.double().transpose(1, 2)
    assert generator.base_directions.shape == (4, D, D)
    assert torch.allclose(forms, covariances, atol=1e-5)
    assert torch.equal(generator.base_residual_variance, torch.zeros(4))


def test_statistics_left_out_of_the_state_dict_are_asked_for_again():
    features, labels = _base()
    kept = CalibratedGANHallucinator(feature_dim=D, hidden=8, critic_hidden=8).fit(features, labels)
    left_out = CalibratedGANHallucinator(feature_dim=D, hidden=8, critic_hidden=8, keep_statistics=False)
    left_out.fit(features, labels)
    assert "generator.base_means" in kept.state_dict()
    assert not any(name.startswith("generator.base_") for name in left_out.state_dict())
    fresh = CalibratedGANHallucinator(feature_dim=D, hidden=8, critic_hidden=8, keep_statistics=False)
    fresh.load_state_dict(left_out.state_dict())
    assert fresh.needs_base_statistics and not left_out.needs_base_statistics and not kept.needs_base_statistics
    fresh.before_training(features, labels)
    assert not fresh.needs_base_statistics and torch.equal(fresh.generator.base_means, left_out.generator.base_means)


def test_before_training_the_generator_is_the_calibrated_sample():
    features, labels = _base()
    generator = _generator(alpha=0.2, rank=2).fit(features, labels)
    seed = features[::40]
    noise = generator.sample_noise(len(seed), seed, torch.Generator().manual_seed(0))
    transformed, mean, deviation = generator.calibrated(seed, noise)
    assert torch.allclose(generator(seed, noise), tukey(mean + deviation, 2.0))
    assert torch.equal(transformed, tukey(seed, 0.5))


def test_exclude_keeps_the_seeds_own_class_out_of_its_nearest():
    features, labels = _base()
    generator = _generator(k=2).fit(features, labels)
    on_class_means = generator.base_means  # each seed exactly at its class's mean: its own class is nearest
    own = torch.arange(4)
    assert (generator.nearest(on_class_means)[:, 0] == own).all()
    kept_out = generator.nearest(on_class_means, exclude=own)
    assert not (kept_out == own.unsqueeze(1)).any()
    distances = torch.cdist(on_class_means, generator.base_means).fill_diagonal_(float("inf"))
    assert torch.equal(kept_out.sort(1).values, distances.topk(2, largest=False).indices.sort(1).values)
    # And the samples follow: the calibrated mean leaves the excluded class's mean out.
    seed = tukey(on_class_means[:1], 2.0)
    noise = generator.sample_noise(1, seed)
    _, mean, _ = generator.calibrated(seed, noise, torch.tensor([0]))
    others = kept_out[0]
    assert torch.allclose(mean[0], (on_class_means[0] + generator.base_means[others].sum(0)) / 3, atol=1e-5)


def test_seeds_repeated_m_times_get_the_nearest_classes_of_each_alone():
    features, labels = _base(n_classes=6)
    generator = _generator().fit(features, labels)
    seeds = tukey(features[[0, 50, 0, 0, 50, 120]], 0.5)
    exclude = torch.tensor([0, 1, 3, 0, 1, 3])  # the same seed with another excluded class is another query
    expected = torch.cat([generator.nearest(seed.unsqueeze(0), e.view(1)) for seed, e in zip(seeds, exclude)])
    assert torch.equal(generator.nearest(seeds, exclude), expected)
    assert torch.equal(generator.nearest(seeds), torch.cat([generator.nearest(seed.unsqueeze(0)) for seed in seeds]))


def test_a_state_dict_loads_into_a_freshly_built_generator_and_gives_the_same_samples():
    features, labels = _base(n_classes=5)
    hallucinator = CalibratedGANHallucinator(feature_dim=D, rank=2, hidden=8, critic_hidden=8).fit(features, labels)
    with torch.no_grad():  # a trained residual, not its zero start
        hallucinator.generator.residual[-1].weight.normal_(std=0.1)
    fresh = CalibratedGANHallucinator(feature_dim=D, rank=2, hidden=8, critic_hidden=8)
    assert fresh.generator.base_means.shape == (0, D)
    fresh.load_state_dict(hallucinator.state_dict())  # strict: every buffer resized to the saved 5 classes
    assert fresh.generator.base_directions.shape == (5, D, 2)
    seeds, seed_labels = features[::40], torch.arange(5)
    a = hallucinator(seeds, seed_labels, 6, torch.Generator().manual_seed(3))
    b = fresh(seeds, seed_labels, 6, torch.Generator().manual_seed(3))
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(a[0][5:], CalibratedGANHallucinator(feature_dim=D, rank=2, hidden=8).fit(
        features, labels)(seeds, seed_labels, 6, torch.Generator().manual_seed(3))[0][5:])  # the residual counts


def test_unfitted_it_says_to_fit_and_it_refuses_base_labels_that_are_not_0_to_c_minus_1():
    features, labels = _base()
    generator = _generator()
    with pytest.raises(RuntimeError, match="call fit"):
        generator(features[:2], generator.sample_noise(2, features))
    with pytest.raises(RuntimeError, match="call fit"):
        CalibratedGANHallucinator(feature_dim=D)(features[:2], torch.tensor([0, 1]), 3)
    with pytest.raises(ValueError, match="0..C-1"):
        generator.fit(features, labels + 1)  # 1..4
    with pytest.raises(ValueError, match="0..C-1"):
        generator.fit(features, torch.where(labels == 1, 3, labels))  # 0, 2, 3: class 1 missing
    with pytest.raises(ValueError, match="more than k=2 base classes"):
        generator.fit(features[:80], labels[:80])  # 2 classes
    with pytest.raises(ValueError, match="at least 2 examples"):
        generator.fit(features[39:], labels[39:])  # class 0 has one example left
    with pytest.raises(ValueError, match="dimensions"):
        generator.fit(features[:, :2], labels)


def test_a_rank_above_the_feature_dimension_keeps_every_direction():
    features, labels = _base()
    generator = _generator(rank=16).fit(features, labels)
    assert generator.rank == D and generator.base_directions.shape == (4, D, D)
    noise = generator.sample_noise(5, features)
    assert noise.shape == (5, 2 * D + D) and torch.isfinite(generator(features[:5], noise)).all()


def test_per_sample_loss_by_hand():
    # 2 classes, 2 synthetic features each; 2 queries, one per class. For j = 0 the prototypes are (0, 0) and (4, 0);
    # for j = 1, (0, 1) and (0, 3).
    synthetic = torch.tensor([[[0.0, 0.0], [0.0, 1.0]], [[4.0, 0.0], [0.0, 3.0]]])
    query, query_labels = torch.tensor([[1.0, 0.0], [0.0, 2.0]]), torch.tensor([0, 1])
    distances = {0: torch.tensor([[1.0, 9.0], [4.0, 20.0]]), 1: torch.tensor([[2.0, 10.0], [1.0, 1.0]])}
    expected = torch.stack([torch.nn.functional.cross_entropy(-distances[j], query_labels, reduction="none")
                            for j in (0, 1)]).mean()
    assert torch.allclose(per_sample_loss(synthetic, query, query_labels), expected)
    # Each synthetic feature on its own class's query: a confident, near-zero loss.
    assert per_sample_loss(10 * torch.eye(2).view(2, 1, 2), 10 * torch.eye(2), torch.tensor([0, 1])) < 1e-6


N_WAY, K_SHOT, Q_QUERY, M = 3, 2, 4, 5


def _episode_step(hallucinator, **options):
    features, labels = _base(n_classes=6)
    hallucinator.fit(features, labels)
    class_ids = torch.tensor([4, 0, 2])  # the episode's base classes
    support = torch.cat([features[labels == c][:K_SHOT] for c in class_ids]).requires_grad_(True)
    query = torch.cat([features[labels == c][K_SHOT:K_SHOT + Q_QUERY] for c in class_ids]).requires_grad_(True)
    support_labels = torch.arange(N_WAY).repeat_interleave(K_SHOT)
    query_labels = torch.arange(N_WAY).repeat_interleave(Q_QUERY)
    step = hallucinator.training_step(support, support_labels, query, query_labels, n_way=N_WAY, n_per_class=M,
                                      rng=torch.Generator().manual_seed(0), class_ids=class_ids, **options)
    return step, support, query, query_labels, class_ids


def _hallucinator(**settings):
    torch.manual_seed(0)
    return CalibratedGANHallucinator(feature_dim=D, rank=2, hidden=8, critic_hidden=8, **settings)


def test_training_step_support_losses_and_weights():
    hallucinator = _hallucinator(synthetic_mass=2.0)
    step, support, query, _, _ = _episode_step(hallucinator)
    assert set(step.losses) == {"per_sample", "adversarial"}
    assert step.support.shape == (N_WAY * (K_SHOT + M), D) and torch.equal(step.support[:N_WAY * K_SHOT], support)
    assert step.support_labels[N_WAY * K_SHOT:].tolist() == [c for c in range(N_WAY) for _ in range(M)]
    assert torch.equal(step.support_weights, torch.cat([torch.ones(N_WAY * K_SHOT), torch.full((N_WAY * M,), 2 / M)]))
    # The generator's losses train the generator (its residual) alone: its seeds and the queries are detached.
    sum(step.losses.values()).backward()
    assert support.grad is None and query.grad is None
    assert hallucinator.generator.residual[-1].weight.grad.abs().sum() > 0
    assert hallucinator.critic_parameters() == list(hallucinator.critic.parameters())
    assert hallucinator.needs_frozen_embedding


def test_training_step_losses_come_weighted():
    plain = _episode_step(_hallucinator())[0]
    weighted = _episode_step(_hallucinator(adversarial_weight=0.5, per_sample_weight=3.0,
                                           gradient_penalty_weight=1.0))[0]
    assert torch.allclose(weighted.losses["per_sample"], 3 * plain.losses["per_sample"])
    assert torch.allclose(weighted.losses["adversarial"], 5 * plain.losses["adversarial"])  # default 0.1
    assert torch.allclose(weighted.critic_losses()["gradient_penalty"],
                          plain.critic_losses()["gradient_penalty"] / 10)  # default 10


def test_training_keeps_each_seeds_own_base_class_out_of_its_nearest(monkeypatch):
    hallucinator = _hallucinator()
    calls = []
    nearest = hallucinator.generator.nearest
    monkeypatch.setattr(hallucinator.generator, "nearest",
                        lambda transformed, exclude=None: calls.append(exclude) or nearest(transformed, exclude))
    step, _, _, _, class_ids = _episode_step(hallucinator)
    (exclude,) = calls
    assert torch.equal(exclude, class_ids.repeat_interleave(M))  # each seed's episode class, as a base class
    with pytest.raises(ValueError, match="class_ids"):
        hallucinator.training_step(step.support[:6], step.support_labels[:6], step.support[:12],
                                   torch.arange(3).repeat_interleave(4), n_way=3, n_per_class=M)


def test_the_critics_real_samples_are_queries_of_the_seeds_class_not_the_seed(monkeypatch):
    hallucinator = _hallucinator()
    step, support, query, query_labels, _ = _episode_step(hallucinator)
    seen = []
    forward = hallucinator.critic.forward
    monkeypatch.setattr(hallucinator.critic, "forward",
                        lambda feature, condition: seen.append((feature, condition)) or forward(feature, condition))
    losses = step.critic_losses()
    assert set(losses) == {"critic", "gradient_penalty"} and all(torch.isfinite(v) for v in losses.values())
    (fake, fake_condition), (real, real_condition) = seen[:2]
    seed_labels = step.support_labels[N_WAY * K_SHOT:]
    assert torch.equal(fake, step.support[N_WAY * K_SHOT:].detach())
    assert not real.requires_grad and not fake.requires_grad
    for row, label, condition in zip(real, seed_labels, real_condition):
        own_queries = query.detach()[query_labels == label]
        assert (own_queries == row).all(1).any()  # a query of the seed's class
        assert not (support.detach() == row).all(1).any()  # never a support example (the seeds)
        assert (support.detach()[:N_WAY * K_SHOT][step.support_labels[:N_WAY * K_SHOT] == label]
                == condition).all(1).any()  # conditioned on its seed
    assert torch.equal(fake_condition, real_condition)


def test_a_one_stage_run_of_the_calibrated_gan_is_refused_naming_the_noise_gan(tmp_path):
    config = EpisodicConfig(hallucinator="gan", n_way=3, k_shot=1, q_query=2, num_workers=0,
                            hallucinator_hidden=8, critic_hidden=8)
    assert config.gan_generator == "calibrated" and not config.two_stage
    with pytest.raises(ValueError, match="train it in two stages .hallucinator_episodes > 0. or choose "
                                         "gan_generator=noise"):
        train_episodic(config, build_classifier(config), NoiseSplit(100), NoiseSplit(100), out_dir=tmp_path,
                       device=torch.device("cpu"), progress=False)
