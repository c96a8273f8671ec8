"""The logistic-regression head: fitted on each episode's support features (through a transform that support and
query share), deterministic, honouring support weights."""
import pytest
import torch

from hallucinate.learners import LEARNERS, LogisticRegression
from hallucinate.learners.logistic import TRANSFORMS, transform_features
from hallucinate.training import EpisodicConfig


def _separable(n_way=4, k_shot=3, n_query=5, dim=10, seed=0):
    """Non-negative (ReLU-like) features: each class's mass on its own two coordinates, plus noise."""
    rng = torch.Generator().manual_seed(seed)
    centres = torch.zeros(n_way, dim)
    for c in range(n_way):
        centres[c, 2 * c:2 * c + 2] = 3.0
    support_labels = torch.arange(n_way).repeat_interleave(k_shot)
    query_labels = torch.arange(n_way).repeat_interleave(n_query)
    noise = lambda n: 0.3 * torch.rand(n, dim, generator=rng)  # noqa: E731
    return (centres[support_labels] + noise(len(support_labels)), support_labels,
            centres[query_labels] + noise(len(query_labels)), query_labels)


@pytest.mark.parametrize("transform", TRANSFORMS)
def test_separable_classes_are_classified_correctly_with_each_transform(transform):
    support, labels, query, query_labels = _separable()
    logits = LogisticRegression(transform=transform)(support, labels, query)
    assert logits.shape == (len(query), 4)
    assert torch.equal(logits.argmax(1), query_labels)


def test_the_same_inputs_give_the_same_logits():
    support, labels, query, _ = _separable()
    head = LogisticRegression()
    first = head(support, labels, query)
    assert torch.equal(head(support, labels, query), first)
    assert torch.equal(LogisticRegression()(support.clone(), labels.clone(), query.clone()), first)
    assert torch.equal(head(support, labels, query, n_way=4), first)  # the number of ways given or read


def test_each_transform_by_hand():
    x = torch.tensor([[4.0, -9.0, 0.0], [0.0, 3.0, 4.0]])
    assert torch.equal(transform_features(x, "none", 0.5), x)
    assert torch.equal(transform_features(x, "tukey", 0.5), torch.tensor([[2.0, -3.0, 0.0], [0.0, 3 ** 0.5, 2.0]]))
    assert torch.allclose(transform_features(x, "l2", 0.5), x / x.norm(dim=1, keepdim=True))
    assert torch.allclose(transform_features(x, "tukey_l2", 0.5),
                          torch.tensor([[2.0, -3.0, 0.0], [0.0, 3 ** 0.5, 2.0]]) / torch.tensor([[13 ** 0.5], [7 ** 0.5]]))
    assert torch.allclose(transform_features(x, "tukey", 2.0), x.sign() * x ** 2)


def test_the_transform_is_applied_to_support_and_query_alike():
    """Scaling every feature by one factor is undone by L2 normalisation (support and query both): the same
    logits. Without a transform the scale changes them."""
    support, labels, query, _ = _separable()
    for transform, same in (("l2", True), ("tukey_l2", True), ("none", False)):
        head = LogisticRegression(transform=transform)
        plain, scaled = head(support, labels, query), head(5 * support, labels, 5 * query)
        assert torch.allclose(plain, scaled, atol=1e-3) == same, transform


def test_a_bad_transform_names_the_valid_ones():
    with pytest.raises(ValueError, match="unknown feature transform 'pca'; valid transforms: none, tukey, l2, tukey_l2"):
        LogisticRegression(transform="pca")
    with pytest.raises(ValueError, match="valid transforms: none, tukey, l2, tukey_l2"):
        transform_features(torch.ones(1, 2), "sqrt", 0.5)
    with pytest.raises(ValueError, match="unknown feature transform"):
        LEARNERS.build("logistic", feature_shape=(4,), settings=EpisodicConfig(logistic_transform="tukey-l2"))


@pytest.mark.parametrize("settings", [dict(power=0.0), dict(l2=-1.0), dict(scale=0.0), dict(steps=0)])
def test_bad_settings_are_refused(settings):
    with pytest.raises(ValueError, match="logistic regression needs"):
        LogisticRegression(**settings)


def test_support_weights_decide_between_two_conflicting_examples():
    """One example of each class, the query exactly between them: the heavier example's class wins, and swapping
    the weights swaps the prediction."""
    support = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    labels = torch.tensor([0, 1])
    extra = torch.tensor([[1.0, 1.0]])  # on the boundary, labelled 0 or 1 by the weights' choice
    head = LogisticRegression(transform="none")
    both = torch.cat([support, extra, extra]), torch.tensor([0, 1, 0, 1])
    query = torch.tensor([[1.0, 1.0]])
    towards_0 = head(*both, query, torch.tensor([1.0, 1.0, 3.0, 0.5]))
    towards_1 = head(*both, query, torch.tensor([1.0, 1.0, 0.5, 3.0]))
    assert towards_0.argmax(1).item() == 0 and towards_1.argmax(1).item() == 1
    assert torch.allclose(head(*both, query), head(*both, query, torch.ones(4)), atol=1e-5)


def test_the_builder_takes_the_runs_settings():
    head = LEARNERS.build("logistic", feature_shape=(64,), settings=EpisodicConfig(logistic_transform="l2",
                                                                           logistic_power=0.7, logistic_l2=0.01))
    assert (head.transform, head.power, head.l2) == ("l2", 0.7, 0.01)
    default = LEARNERS.build("logistic", feature_shape=(64,), settings=EpisodicConfig())
    assert (default.transform, default.power) == ("tukey_l2", 0.5)


def test_the_fit_runs_in_float32_on_detached_support_features():
    support, labels, query, _ = _separable()
    support.requires_grad_(True)
    query = query.double().requires_grad_(True)
    logits = LogisticRegression()(support, labels, query)
    assert logits.dtype == torch.float32
    logits.sum().backward()
    assert support.grad is None and query.grad.abs().sum() > 0
