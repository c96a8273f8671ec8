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
    out, out_labels = gan(features, labels, 5, torch.Generator().manual_seed(0))
    assert out.shape == (6 + 15, 8) and torch.equal(out[:6], features) and torch.equal(out_labels[:6], labels)
    assert out_labels[6:].tolist() == [0] * 5 + [1] * 5 + [2] * 5
    # G starts near the identity: each synthetic feature lies close to a real feature of its own class.
    distance = torch.cdist(out[6:], features)
    assert torch.equal(labels[distance.argmin(1)], out_labels[6:])


def test_same_rng_seed_same_synthetic_features():
    features, labels = _features()
    gan = GANHallucinator(feature_dim=8, noise_dim=4)
    a, _ = gan(features, labels, 3, torch.Generator().manual_seed(7))
    b, _ = gan(features, labels, 3, torch.Generator().manual_seed(7))
    c, _ = gan(features, labels, 3, torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_query_loss_gradient_reaches_the_generator():
    features, labels = _features()
    gan = GANHallucinator(feature_dim=8, noise_dim=4, hidden=16)
    support, support_labels = gan(features, labels, 4)
    logits = PrototypicalNetworks()(support, support_labels, torch.randn(6, 8))
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
    assert hallucinate(features, labels, 0, generator=None) == (features, labels)
    model = FewShotClassifier(nn.Identity(), PrototypicalNetworks(),
                              GANHallucinator(feature_dim=8, noise_dim=4), n_synthetic=5)
    query = torch.randn(4, 8)
    model.set_hallucination(False)
    assert torch.equal(model(features, labels, query), PrototypicalNetworks()(features, labels, query))
    model.set_hallucination(True)
    assert not torch.equal(model(features, labels, query), PrototypicalNetworks()(features, labels, query))
