"""The learner contract, for every registered learner, and hand-computed logits for the compare family."""
import math

import pytest
import torch

from hallucinate.learners import LEARNERS, MatchingNetworks, RelationNetworks, SiameseNetworks, episode_loss
from hallucinate.training import EpisodicConfig

FEATURE_SHAPE = (2, 16, 16)  # a map the relation module can pool twice, an "image" MAML's Conv-4 can take
N_WAY, K_SHOT, N_QUERY = 3, 2, 4
FIT_ONLY_HEAD = {"baseline", "baseline_pp", "logistic"}  # fit a new head on frozen support features: no gradient to them


def _episode(seed: int = 0):
    rng = torch.Generator().manual_seed(seed)
    dim = math.prod(FEATURE_SHAPE)
    support = torch.rand(N_WAY * K_SHOT, dim, generator=rng)
    query = torch.rand(N_QUERY, dim, generator=rng)
    return support, torch.arange(N_WAY).repeat_interleave(K_SHOT), query, torch.tensor([0, 1, 2, 0])


def _learner(name: str):
    torch.manual_seed(0)
    config = EpisodicConfig(n_way=N_WAY, matching_fce=True, finetune_steps=5, maml_inner_steps=2)
    return LEARNERS.build(name, config, feature_shape=FEATURE_SHAPE)


@pytest.mark.parametrize("name", list(LEARNERS))
def test_logits_have_one_row_per_query_and_one_column_per_class(name):
    support, labels, query, _ = _episode()
    assert _learner(name)(support, labels, query).shape == (N_QUERY, N_WAY)


@pytest.mark.parametrize("name", list(LEARNERS))
def test_forward_is_pure_and_the_same_without_grad(name):
    learner = _learner(name).eval()
    support, labels, query, _ = _episode()
    first = learner(support, labels, query)
    with torch.no_grad():
        again = learner(support, labels, query)
    assert not again.requires_grad
    assert torch.allclose(first, again, atol=1e-6)
    assert torch.allclose(learner(support, labels, query), first, atol=1e-6)


@pytest.mark.parametrize("name", list(LEARNERS))
def test_the_number_of_ways_passed_gives_the_logits_read_from_the_labels(name):
    support, labels, query, _ = _episode()
    learner = _learner(name)
    assert torch.equal(learner(support, labels, query, n_way=N_WAY), learner(support, labels, query))


@pytest.mark.parametrize("name", list(LEARNERS))
def test_gradients_reach_every_trainable_part(name):
    learner = _learner(name).train()
    support, labels, query, query_labels = _episode()
    support.requires_grad_(True)
    query.requires_grad_(True)
    episode_loss(learner, learner(support, labels, query), query_labels).backward()
    for parameter_name, parameter in learner.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, parameter_name
    assert query.grad.abs().sum() > 0
    if name not in FIT_ONLY_HEAD:
        assert support.grad.abs().sum() > 0


def test_matching_logits_are_log_attention_over_cosine_similarities():
    support = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 3.0]])
    labels = torch.tensor([0, 1, 1])
    query = torch.tensor([[2.0, 0.0]])
    cosines = torch.tensor([1.0, 0.0, 1 / math.sqrt(2)])  # to (1,0), (0,2), (3,3)
    attention = cosines.exp() / cosines.exp().sum()
    expected = torch.stack([attention[0], attention[1] + attention[2]]).log()
    assert torch.allclose(MatchingNetworks(2, initial_scale=1.0)(support, labels, query), expected.unsqueeze(0))


def test_siamese_scores_are_the_weighted_l1_log_odds_of_each_class():
    learner = SiameseNetworks(2)
    with torch.no_grad():
        learner.distance.weight.copy_(torch.tensor([[-1.0, -2.0]]))
        learner.distance.bias.fill_(3.0)
    support = torch.tensor([[0.0, 0.0], [1.0, 1.0], [4.0, 0.0]])
    labels = torch.tensor([0, 0, 1])
    query = torch.tensor([[1.0, 0.0]])
    # |q - s|: (1,0) -> 3-1 = 2; (0,1) -> 3-2 = 1; (3,0) -> 3-3 = 0; class 0 is the mean of its two pairs
    assert torch.allclose(learner(support, labels, query), torch.tensor([[1.5, 0.0]]))
    loss = learner.loss(torch.tensor([[1.5, 0.0]]), torch.tensor([0]))
    # BCE with the positive weighted by N - 1 = 1: (-log sigmoid(1.5) - log(1 - sigmoid(0))) / 2
    expected = (-torch.sigmoid(torch.tensor(1.5)).log() - torch.tensor(0.5).log()) / 2
    assert torch.allclose(loss, expected)


def test_relation_scores_each_class_mean_map_beside_each_query_map():
    learner = RelationNetworks((1, 4, 4)).eval()
    support = torch.arange(3 * 16, dtype=torch.float).view(3, 16)
    labels = torch.tensor([0, 0, 1])
    query = torch.rand(2, 16)
    means = torch.stack([(support[0] + support[1]) / 2, support[2]]).view(2, 1, 4, 4)
    pairs = torch.cat([means.repeat(2, 1, 1, 1), query.view(2, 1, 4, 4).repeat_interleave(2, 0)], dim=1)
    expected = learner.relation(pairs).view(2, 2)
    assert torch.allclose(learner(support, labels, query), expected)
    assert torch.allclose(learner.loss(torch.tensor([[0.5, 0.0]]), torch.tensor([0])), torch.tensor(0.125))


def test_relation_networks_refuse_flat_features():
    with pytest.raises(ValueError, match="feature maps"):
        RelationNetworks((64,))


def test_a_builder_receives_its_own_settings_and_a_config_lacking_one_is_refused():
    from types import SimpleNamespace

    from hallucinate.hallucinators import HALLUCINATORS
    from hallucinate.learners import LEARNERS

    # a task's own config, not EpisodicConfig: only the settings the component names are read
    head = LEARNERS.build("baseline_pp", SimpleNamespace(finetune_steps=7, finetune_lr=0.5), feature_shape=(4,))
    assert (head.passes, head.lr) == (7, 0.5)
    with pytest.raises(TypeError, match=r"'relation' needs the settings \['relation_hidden'\]"):
        LEARNERS.build("relation", SimpleNamespace(), feature_shape=(64, 5, 5))
    mlp = HALLUCINATORS.build("mlp", SimpleNamespace(noise_dim=3, hallucinator_hidden=8, shot_aware_weights=True,
                                                     synthetic_mass=0.5), feature_dim=4)
    assert mlp.synthetic_mass == 0.5
