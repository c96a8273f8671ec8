import torch
from torch import nn

from hallucinate.hallucinators import GANHallucinator, anti_collapse, gradient_penalty, hallucinate, same_class_gap
from hallucinate.learners import PrototypicalNetworks
from hallucinate.model import FewShotClassifier


def _features(n_way=3, k_shot=2, dim=8):
    torch.manual_seed(0)
    return torch.randn(n_way * k_shot, dim), torch.arange(n_way).repeat_interleave(k_shot)


def test_shapes_labels_and_seeds_of_the_same_class():
    features, labels = _features()
    gan = GANHallucinator(feature_dim=8, noise_dim=4, hidden=16, critic_hidden=16)
    out, out_labels, weights = gan(features, labels, 5, torch.Generator().manual_seed(0))
    assert torch.equal(weights, torch.ones(6 + 15))  # built directly, without synthetic_mass: each weighs 1
    assert out.shape == (6 + 15, 8) and torch.equal(out[:6], features) and torch.equal(out_labels[:6], labels)
    assert out_labels[6:].tolist() == [0] * 5 + [1] * 5 + [2] * 5
    # G starts near the identity: each synthetic feature lies close to a real feature of its own class.
    distance = torch.cdist(out[6:], features)
    assert torch.equal(labels[distance.argmin(1)], out_labels[6:])


def test_same_rng_seed_same_synthetic_features():
    features, labels = _features()
    gan = GANHallucinator(feature_dim=8, noise_dim=4)
    a, _, _ = gan(features, labels, 3, torch.Generator().manual_seed(7))
    b, _, _ = gan(features, labels, 3, torch.Generator().manual_seed(7))
    c, _, _ = gan(features, labels, 3, torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_query_loss_gradient_reaches_the_generator():
    features, labels = _features()
    gan = GANHallucinator(feature_dim=8, noise_dim=4, hidden=16)
    support, support_labels, weights = gan(features, labels, 4)
    logits = PrototypicalNetworks()(support, support_labels, torch.randn(6, 8), weights)
    nn.functional.cross_entropy(logits, labels).backward()
    for name, parameter in gan.generator.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_gradient_penalty_of_a_linear_critic_is_its_weight_norm_minus_one_squared():
    class Linear(nn.Module):
        def forward(self, feature, condition):
            return feature @ torch.tensor([3.0, 4.0]) + condition.sum(1)

    real, fake, condition = torch.randn(5, 2), torch.randn(5, 2), torch.randn(5, 2)
    # grad_x D = (3, 4) everywhere, so the penalty is (5 - 1)^2 = 16 whatever the mixing points.
    assert torch.allclose(gradient_penalty(Linear(), real, fake, condition), torch.tensor(16.0))


def test_anti_collapse_is_zero_at_real_diversity_and_one_when_collapsed():
    fake_a = torch.zeros(4, 3)
    real_gap = torch.tensor(0.5)
    assert anti_collapse(fake_a, torch.full((4, 3), 0.5), real_gap) == 0
    assert anti_collapse(fake_a, torch.full((4, 3), 2.0), real_gap) == 0
    assert torch.allclose(anti_collapse(fake_a, torch.full((4, 3), 0.25), real_gap), torch.tensor(0.5))
    assert anti_collapse(fake_a, fake_a.clone(), real_gap) == 1


def test_same_class_gap_by_hand():
    # class 0: values 0 and 2 (gap 2); class 1: 1 and 1 (gap 0) -> mean over ordered pairs and dims = 1
    features = torch.tensor([[[0.0], [2.0]], [[1.0], [1.0]]])
    assert torch.allclose(same_class_gap(features), torch.tensor(1.0))


def test_switched_off_the_support_set_is_untouched():
    features, labels = _features()
    out, out_labels, weights = hallucinate(features, labels, 0, generator=None)
    assert out is features and out_labels is labels and torch.equal(weights, torch.ones(len(features)))
    model = FewShotClassifier(nn.Identity(), PrototypicalNetworks(),
                              GANHallucinator(feature_dim=8, noise_dim=4), n_synthetic=5)
    query = torch.randn(4, 8)
    model.set_hallucination(False)
    assert torch.equal(model(features, labels, query), PrototypicalNetworks()(features, labels, query))
    model.set_hallucination(True)
    assert not torch.equal(model(features, labels, query), PrototypicalNetworks()(features, labels, query))


def _training_step(**weights):
    torch.manual_seed(0)
    gan = GANHallucinator(feature_dim=8, noise_dim=4, hidden=16, critic_hidden=16, **weights)
    features, labels = _features()
    support = features.clone().requires_grad_(True)  # stands for the backbone's output
    query, query_labels = torch.randn(9, 8), torch.arange(3).repeat_interleave(3)
    step = gan.training_step(support, labels, query, query_labels, n_way=3, n_per_class=4,
                             rng=torch.Generator().manual_seed(0))
    return gan, support, step


def test_training_step_losses_train_the_generator_alone_and_the_critic_closure_the_critic():
    gan, support, step = _training_step()
    assert set(step.losses) == {"adversarial", "anti_collapse"}
    assert step.support.shape == (6 + 12, 8) and torch.equal(step.support[:6], support)
    assert step.support_labels[6:].tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert torch.equal(step.support_weights, torch.ones(18))
    # The adversarial terms train G only (the main optimizer leaves the critic's parameters alone): its seeds are
    # detached, so nothing reaches the backbone.
    sum(step.losses.values()).backward()
    assert support.grad is None
    assert gan.generator.net[0].weight.grad.abs().sum() > 0
    # The synthetic support rows do carry the backbone's gradient (through their seeds).
    gan.zero_grad()
    step.support[6:].sum().backward()
    assert support.grad is not None and support.grad.abs().sum() > 0
    # The critic's closure: its losses on the detached samples, which reach the critic alone.
    gan.zero_grad()
    assert [p for p in gan.critic_parameters()] == list(gan.critic.parameters())
    critic_losses = step.critic_losses()
    assert set(critic_losses) == {"critic", "gradient_penalty"}
    sum(critic_losses.values()).backward()
    assert all(p.grad is not None for p in gan.critic.parameters())
    assert all(p.grad is None for p in gan.generator.parameters())


def test_training_step_losses_come_weighted():
    _, _, plain = _training_step()
    _, _, weighted = _training_step(adversarial_weight=0.5, anti_collapse_weight=2.0, gradient_penalty_weight=3.0)
    assert torch.allclose(weighted.losses["adversarial"], 5 * plain.losses["adversarial"])  # default 0.1
    assert torch.allclose(weighted.losses["anti_collapse"], 2 * plain.losses["anti_collapse"])  # default 1
    plain_critic, weighted_critic = plain.critic_losses(), weighted.critic_losses()
    assert torch.allclose(weighted_critic["critic"], plain_critic["critic"])
    assert torch.allclose(weighted_critic["gradient_penalty"], 0.3 * plain_critic["gradient_penalty"])  # default 10
