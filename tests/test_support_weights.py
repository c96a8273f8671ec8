"""Support weights: every learner honours them (unit weights are no weights; hand-computed weighted logits for the
compare family; a zero weight removes an example), and a hallucinator's synthetic examples get kappa / M each, so
that a class's synthetic examples take the share kappa / (kappa + K) of its weighted mean."""
import math

import pytest
import torch
from torch import nn

from hallucinate.hallucinators import MLPHallucinator, hallucinate, synthetic_weights
from hallucinate.learners import LEARNERS, MatchingNetworks, PrototypicalNetworks, RelationNetworks, SiameseNetworks
from hallucinate.learners import class_means
from hallucinate.model import FewShotClassifier
from hallucinate.training import EpisodicConfig
from tests.test_learners import FEATURE_SHAPE, N_QUERY, N_WAY, _episode, _learner


def _weights(n: int, seed: int = 1) -> torch.Tensor:
    return 0.1 + 1.9 * torch.rand(n, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", list(LEARNERS))
def test_unit_weights_give_the_logits_of_no_weights(name):
    learner = _learner(name)
    support, labels, query, _ = _episode()
    plain = learner(support, labels, query)
    assert torch.allclose(learner(support, labels, query, torch.ones(len(support))), plain, atol=1e-6)
    assert torch.allclose(learner(support, labels, query, torch.ones(len(support)), n_way=N_WAY), plain, atol=1e-6)


@pytest.mark.parametrize("name", list(LEARNERS))
def test_weights_other_than_one_change_the_logits(name):
    learner = _learner(name)
    support, labels, query, _ = _episode()
    weighted = learner(support, labels, query, _weights(len(support)))
    assert weighted.shape == (N_QUERY, N_WAY) and torch.isfinite(weighted).all()
    assert not torch.allclose(weighted, learner(support, labels, query), atol=1e-4)


@pytest.mark.parametrize("name", list(LEARNERS))
def test_weights_scaled_together_give_the_same_logits(name):
    """Only the weights relative to each other count: a weighted mean, normalised attention or loss."""
    learner = _learner(name)
    support, labels, query, _ = _episode()
    weights = _weights(len(support))
    assert torch.allclose(learner(support, labels, query, 3 * weights), learner(support, labels, query, weights),
                          atol=1e-5)


# Learners whose weighted loss or mean gives an example of weight 0 no part at all. (MAML's Conv-4 is left out: its
# batch statistics, taken over the whole support set, still see the example; matching's full context embedding
# too, which the hand-computed test below leaves out.)
ZERO_IS_REMOVAL = ["protonet", "siamese", "relation", "anil"]


@pytest.mark.parametrize("name", ZERO_IS_REMOVAL)
def test_an_example_of_weight_zero_is_as_if_removed(name):
    learner = _learner(name)
    support, labels, query, _ = _episode()
    extra = torch.cat([support, support[-1:] + 1.0]), torch.cat([labels, torch.tensor([0])])  # class 2's, as 0
    weights = torch.cat([torch.ones(len(support)), torch.zeros(1)])
    removed = learner(support, labels, query)
    assert torch.allclose(learner(*extra, query, weights), removed, atol=1e-5)
    assert not torch.allclose(learner(*extra, query), removed, atol=1e-3)  # at weight 1 it does count


def _clusters():
    """3 well-separated classes of 3 examples in 8-D, their queries, and an outlier: class 1's centre, labelled 0."""
    rng = torch.Generator().manual_seed(0)
    centres = 3 * torch.randn(3, 8, generator=rng)
    labels = torch.arange(3).repeat_interleave(3)
    support = centres[labels] + torch.randn(9, 8, generator=rng)
    query = centres.repeat_interleave(2, 0) + torch.randn(6, 8, generator=rng)
    outlier = centres[1:2] + 0.1 * torch.randn(1, 8, generator=rng)
    return support, labels, query, torch.cat([support, outlier]), torch.cat([labels, torch.tensor([0])])


@pytest.mark.parametrize("name", ["baseline", "baseline_pp", "logistic", "anil"])
def test_a_fitted_head_barely_sees_an_example_of_weight_near_zero(name):
    """The fine-tune family fits a head by SGD in minibatches whose order depends on the support set's size, so
    an example of weight ~0 is not exactly a removed one; its effect is a small fraction of its effect at weight 1."""
    torch.manual_seed(0)
    learner = LEARNERS.build(name, feature_shape=(8,), settings=EpisodicConfig(n_way=3, finetune_steps=100))
    support, labels, query, with_outlier, with_outlier_labels = _clusters()
    removed = learner(support, labels, query)
    weights = torch.ones(len(with_outlier))
    at_one = learner(with_outlier, with_outlier_labels, query, weights)
    weights[-1] = 1e-6
    near_zero = learner(with_outlier, with_outlier_labels, query, weights)
    effect = (at_one - removed).abs().max()
    assert effect > 0.5  # the outlier matters at weight 1
    assert (near_zero - removed).abs().max() < 0.1 * effect
    assert torch.equal(near_zero.argmax(1), removed.argmax(1))


def test_protonet_prototypes_are_weighted_class_means():
    support = torch.tensor([[0.0, 0.0], [4.0, 0.0], [0.0, 2.0], [0.0, 6.0]])
    labels = torch.tensor([0, 0, 1, 1])
    weights = torch.tensor([1.0, 3.0, 0.5, 1.5])
    query = torch.tensor([[1.0, 1.0]])
    prototypes = torch.tensor([[3.0, 0.0], [0.0, 5.0]])  # (0*1 + 4*3) / 4; (2*0.5 + 6*1.5) / 2
    expected = -((query - prototypes) ** 2).sum(1, keepdim=True).T  # [[-(4 + 1), -(1 + 16)]]
    assert torch.allclose(PrototypicalNetworks()(support, labels, query, weights), expected)
    assert torch.allclose(expected, torch.tensor([[-5.0, -17.0]]))
    assert torch.allclose(class_means(support, labels, 2, weights), prototypes)


def test_matching_attention_is_scaled_by_the_weights():
    support = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 3.0]])
    labels = torch.tensor([0, 1, 1])
    query = torch.tensor([[2.0, 0.0]])
    weights = torch.tensor([0.5, 2.0, 1.0])
    cosines = torch.tensor([1.0, 0.0, 1 / math.sqrt(2)])  # to (1,0), (0,2), (3,3)
    attention = weights * cosines.exp() / (weights * cosines.exp()).sum()
    expected = torch.stack([attention[0], attention[1] + attention[2]]).log()
    learner = MatchingNetworks(2, initial_scale=1.0)
    assert torch.allclose(learner(support, labels, query, weights), expected.unsqueeze(0))
    # Without its full context embedding, an example of weight 0 is one removed.
    removed = learner(support[:2], labels[:2], query)
    assert torch.allclose(learner(support, labels, query, torch.tensor([1.0, 1.0, 0.0])), removed, atol=1e-6)


def test_siamese_class_scores_are_weighted_means_of_the_pair_log_odds():
    learner = SiameseNetworks(2)
    with torch.no_grad():
        learner.distance.weight.copy_(torch.tensor([[-1.0, -2.0]]))
        learner.distance.bias.fill_(3.0)
    support = torch.tensor([[0.0, 0.0], [1.0, 1.0], [4.0, 0.0]])
    labels = torch.tensor([0, 0, 1])
    query = torch.tensor([[1.0, 0.0]])
    # Pair log-odds 2, 1 (class 0) and 0 (class 1); class 0 weighs them 1 : 3.
    weights = torch.tensor([1.0, 3.0, 0.7])
    assert torch.allclose(learner(support, labels, query, weights), torch.tensor([[(2 + 3) / 4, 0.0]]))


def test_relation_class_maps_are_weighted_means():
    learner = RelationNetworks((1, 4, 4)).eval()
    support = torch.arange(3 * 16, dtype=torch.float).view(3, 16)
    labels = torch.tensor([0, 0, 1])
    weights = torch.tensor([3.0, 1.0, 2.0])
    query = torch.rand(2, 16)
    means = torch.stack([(3 * support[0] + support[1]) / 4, support[2]]).view(2, 1, 4, 4)
    pairs = torch.cat([means.repeat(2, 1, 1, 1), query.view(2, 1, 4, 4).repeat_interleave(2, 0)], dim=1)
    expected = learner.relation(pairs).view(2, 2)
    assert torch.allclose(learner(support, labels, query, weights), expected)


def test_synthetic_weights_are_kappa_over_m_and_one_without_a_mass():
    like = torch.zeros(3)
    assert torch.equal(synthetic_weights(12, 4, 2.0, like), torch.full((12,), 0.5))
    assert torch.equal(synthetic_weights(6, 2, None, like), torch.ones(6))
    assert synthetic_weights(2, 2, 1.0, like.double()).dtype == torch.float64  # the dtype of `like`


class Ones(nn.Module):
    """A generator whose every synthetic feature is all ones."""

    def forward(self, seeds, noise):
        return torch.ones_like(seeds)

    def sample_noise(self, n, like, rng=None):
        return like.new_zeros(n, 1)


@pytest.mark.parametrize("k_shot", [1, 5])
@pytest.mark.parametrize("kappa", [0.5, 2.0])
def test_synthetic_examples_take_the_share_kappa_over_kappa_plus_k_of_a_class_mean(k_shot, kappa):
    n_way, m = 3, 4
    features, labels = torch.zeros(n_way * k_shot, 5), torch.arange(n_way).repeat_interleave(k_shot)
    out, out_labels, weights = hallucinate(features, labels, m, Ones(), torch.Generator().manual_seed(0),
                                           synthetic_mass=kappa)
    assert torch.equal(weights[:n_way * k_shot], torch.ones(n_way * k_shot))  # real examples keep weight 1
    assert torch.equal(weights[n_way * k_shot:], torch.full((n_way * m,), kappa / m))
    # Real features 0, synthetic 1: the weighted class mean is the synthetic examples' share.
    share = class_means(out, out_labels, n_way, weights)
    assert torch.allclose(share, torch.full((n_way, 5), kappa / (kappa + k_shot)))


def test_real_weights_given_are_kept_and_no_mass_weighs_each_synthetic_example_one():
    features, labels = torch.zeros(4, 2), torch.tensor([0, 0, 1, 1])
    given = torch.tensor([1.0, 2.0, 3.0, 4.0])
    _, _, weights = hallucinate(features, labels, 3, Ones(), weights=given, synthetic_mass=1.5)
    assert torch.equal(weights, torch.cat([given, torch.full((6,), 0.5)]))
    _, _, weights = hallucinate(features, labels, 3, Ones())
    assert torch.equal(weights, torch.ones(10))


def test_the_classifier_hands_the_hallucinators_weights_to_the_learner():
    torch.manual_seed(0)
    hallucinator = MLPHallucinator(feature_dim=8, noise_dim=4, hidden=16, synthetic_mass=0.5)
    with torch.no_grad():  # synthetic features far from their seeds, so their weight shows in the prototypes
        hallucinator.generator.net[-1].bias.fill_(3.0)
    model = FewShotClassifier(nn.Identity(), PrototypicalNetworks(), hallucinator, n_synthetic=4)
    support, labels, query = torch.randn(6, 8), torch.arange(3).repeat_interleave(2), torch.randn(5, 8)
    logits = model.classify_features(support, labels, query, torch.Generator().manual_seed(0))
    augmented, augmented_labels, weights = hallucinator(support, labels, 4, torch.Generator().manual_seed(0))
    assert torch.equal(weights[6:], torch.full((12,), 0.5 / 4))
    assert torch.allclose(logits, PrototypicalNetworks()(augmented, augmented_labels, query, weights))
    assert not torch.allclose(logits, PrototypicalNetworks()(augmented, augmented_labels, query))
