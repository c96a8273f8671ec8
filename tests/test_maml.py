"""MAML and ANIL: the inner loop against hand-made gradient steps, first- against second-order outer gradients,
gradients reaching every parameter, no memory growth over episodes, the no-grad evaluation path, and a short real
ANIL run on Omniglot that must beat chance by a wide margin."""
import gc
import warnings

import pytest
import torch
from torch import nn

from hallucinate.learners import LEARNERS, MAML
from hallucinate import load
from hallucinate.cli import main
from hallucinate.evaluation import evaluate
from hallucinate.model import build_classifier
from hallucinate.training import EpisodicConfig


def _linear(weight, bias) -> nn.Linear:
    layer = nn.Linear(weight.shape[1], weight.shape[0])
    with torch.no_grad():
        layer.weight.copy_(weight)
        layer.bias.copy_(bias)
    return layer


W = torch.tensor([[0.5, -1.0, 0.25], [-0.3, 0.8, 0.1]])
B = torch.tensor([0.1, -0.2])
SUPPORT = torch.tensor([[1.0, 0.0, 2.0], [0.5, 1.5, -1.0], [-1.0, 2.0, 0.0], [2.0, -0.5, 1.0]])
SUPPORT_LABELS = torch.tensor([0, 1, 1, 0])
QUERY = torch.tensor([[0.3, -0.7, 1.2], [1.0, 1.0, 1.0], [-2.0, 0.5, 0.3]])
QUERY_LABELS = torch.tensor([1, 0, 1])
LR = 0.4


def _manual_step(weight, bias, *, create_graph: bool):
    """One SGD step on the support set's cross-entropy, written out without MAML."""
    loss = nn.functional.cross_entropy(SUPPORT @ weight.T + bias, SUPPORT_LABELS)
    grad_w, grad_b = torch.autograd.grad(loss, (weight, bias), create_graph=create_graph)
    return weight - LR * grad_w, bias - LR * grad_b


def _outer_grads(learner: MAML):
    learner.zero_grad(set_to_none=True)
    nn.functional.cross_entropy(learner(SUPPORT, SUPPORT_LABELS, QUERY), QUERY_LABELS).backward()
    return learner.network.weight.grad.clone(), learner.network.bias.grad.clone()


def test_one_inner_step_is_a_plain_gradient_step_on_the_support_set():
    weight, bias = W.clone().requires_grad_(), B.clone().requires_grad_()
    adapted_w, adapted_b = _manual_step(weight, bias, create_graph=False)
    # by hand too: d CE / d logits = softmax - one_hot, averaged over the support set
    error = (torch.softmax(SUPPORT @ W.T + B, 1) - nn.functional.one_hot(SUPPORT_LABELS, 2)) / len(SUPPORT)
    assert torch.allclose(adapted_w, W - LR * error.T @ SUPPORT, atol=1e-6)
    assert torch.allclose(adapted_b, B - LR * error.sum(0), atol=1e-6)

    learner = MAML(_linear(W, B), inner_steps=1, inner_lr=LR, first_order=False)
    logits = learner(SUPPORT, SUPPORT_LABELS, QUERY)
    assert torch.allclose(logits, QUERY @ adapted_w.T + adapted_b, atol=1e-6)
    assert torch.equal(learner.network.weight.detach(), W) and torch.equal(learner.network.bias.detach(), B)
    assert torch.allclose(learner(SUPPORT, SUPPORT_LABELS, QUERY), logits)  # pure: the same again

    two_steps = MAML(_linear(W, B), inner_steps=2, inner_lr=LR, first_order=False)(SUPPORT, SUPPORT_LABELS, QUERY)
    assert not torch.allclose(two_steps, logits)


def test_second_order_differentiates_through_the_inner_step_and_first_order_does_not():
    second = _outer_grads(MAML(_linear(W, B), inner_steps=1, inner_lr=LR, first_order=False))
    first = _outer_grads(MAML(_linear(W, B), inner_steps=1, inner_lr=LR, first_order=True))

    # second order: autograd through the hand-made step, Hessian term included
    weight, bias = W.clone().requires_grad_(), B.clone().requires_grad_()
    adapted_w, adapted_b = _manual_step(weight, bias, create_graph=True)
    expected = torch.autograd.grad(nn.functional.cross_entropy(QUERY @ adapted_w.T + adapted_b, QUERY_LABELS),
                                   (weight, bias))
    assert all(torch.allclose(g, e, atol=1e-6) for g, e in zip(second, expected))

    # first order: the gradient of the query loss at the adapted weights
    adapted_w, adapted_b = (t.detach().requires_grad_() for t in _manual_step(
        W.clone().requires_grad_(), B.clone().requires_grad_(), create_graph=False))
    expected = torch.autograd.grad(nn.functional.cross_entropy(QUERY @ adapted_w.T + adapted_b, QUERY_LABELS),
                                   (adapted_w, adapted_b))
    assert all(torch.allclose(g, e, atol=1e-6) for g, e in zip(first, expected))
    assert not torch.allclose(first[0], second[0], atol=1e-4)


def _fake_episode(n_way=5, k_shot=1, q_query=2, seed=0):
    generator = torch.Generator().manual_seed(seed)
    support = torch.rand(n_way * k_shot, 1, 28, 28, generator=generator)
    query = torch.rand(n_way * q_query, 1, 28, 28, generator=generator)
    return (support, torch.arange(n_way).repeat_interleave(k_shot), query,
            torch.arange(n_way).repeat_interleave(q_query))


def _config(learner, backbone, **changes) -> EpisodicConfig:
    return EpisodicConfig(dataset="omniglot", learner=learner, backbone=backbone, n_way=5, k_shot=1, **changes)


@pytest.mark.parametrize("learner, backbone, first_order", [
    ("maml", "pixels", False), ("maml", "pixels", True), ("anil", "conv4", False), ("anil", "conv4", True)])
def test_gradients_reach_every_trainable_parameter(learner, backbone, first_order):
    torch.manual_seed(0)
    model = build_classifier(_config(learner, backbone, maml_first_order=first_order, channels_last=False))
    assert isinstance(model.learner, MAML)
    support, support_labels, query, query_labels = _fake_episode()
    logits = model(support, support_labels, query)
    assert logits.shape == (10, 5)
    nn.functional.cross_entropy(logits, query_labels).backward()
    parameters = dict(model.named_parameters())
    assert any(name.startswith("learner.network.") for name in parameters)
    if learner == "maml":
        assert not any(isinstance(m, nn.BatchNorm2d) and m.track_running_stats for m in model.modules())
    else:
        assert any(name.startswith("backbone.") for name in parameters)
    for name, parameter in parameters.items():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def _live_tensors() -> tuple[int, int]:
    gc.collect()
    with warnings.catch_warnings():  # isinstance on torch.distributed's deprecated aliases warns
        warnings.simplefilter("ignore", FutureWarning)
        tensors = [obj for obj in gc.get_objects() if torch.is_tensor(obj)]
    storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in tensors if t.device.type == "cpu"}
    return len(tensors), sum(storages.values())


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def test_memory_does_not_grow_across_training_episodes():
    torch.manual_seed(0)
    model = build_classifier(_config("maml", "pixels", channels_last=False))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    support, support_labels, query, query_labels = _fake_episode(q_query=1)
    measured = {}
    for step in range(1, 31):
        loss = nn.functional.cross_entropy(model(support, support_labels, query), query_labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        del loss
        if step in (10, 30):
            measured[step] = (*_live_tensors(), _rss_bytes())
    (count_10, bytes_10, rss_10), (count_30, bytes_30, rss_30) = measured[10], measured[30]
    assert count_30 == count_10, measured
    assert bytes_30 == bytes_10, measured
    # one leaked episode graph of this network would hold several MiB; twenty of them, far more than this
    assert rss_30 - rss_10 < 32 * 2**20, measured
    assert all(p.grad_fn is None and p.is_leaf for p in model.parameters())


@pytest.mark.parametrize("learner, backbone", [("maml", "pixels"), ("anil", "conv4")])
def test_no_grad_evaluation_adapts_the_same_way_and_leaves_no_graph(learner, backbone):
    torch.manual_seed(0)
    model = build_classifier(_config(learner, backbone, maml_inner_steps=2, channels_last=False)).eval()
    support, support_labels, query, _ = _fake_episode()
    with_grad = model(support, support_labels, query)
    with torch.no_grad():
        without_grad = model(support, support_labels, query)
    assert with_grad.requires_grad
    assert not without_grad.requires_grad and without_grad.grad_fn is None
    assert torch.allclose(without_grad, with_grad.detach(), atol=1e-5)
    assert all(p.grad is None for p in model.parameters())
    with torch.inference_mode(), pytest.raises(RuntimeError, match="no_grad"):
        model(support, support_labels, query)


def test_a_5_way_network_rejects_other_episodes():
    learner = LEARNERS.build("anil", feature_shape=(3,), settings=_config("anil", "conv4"))
    features = torch.randn(6, 3)
    with pytest.raises(ValueError, match=r"5 outputs.*3 classes"):
        learner(features, torch.tensor([0, 1, 2, 0, 1, 2]), features)
    with pytest.raises(ValueError, match=r"5 outputs.*6 classes"):
        learner(features, torch.tensor([0, 1, 2, 3, 4, 5]), features)
    with torch.no_grad(), pytest.raises(ValueError, match=r"5 outputs.*3 classes"):
        learner(features, torch.tensor([0, 1, 2, 0, 1, 2]), features)
    with pytest.raises(ValueError, match="image-shaped"):
        LEARNERS.build("maml", feature_shape=(64,), settings=_config("maml", "pixels"))


def test_a_short_anil_run_classifies_unseen_characters_far_above_chance(omniglot, data_root, cache, tmp_path):
    # 400 episodes of 5-way 1-shot 5-query (the pipeline's 15 queries cost 2.5x more per episode); validation once,
    # at the end, so the checkpoint's best weights are the last ones
    sets = ["episodes=400", "q_query=5", "val_every=1000", "val_episodes=5", "log_every=100",
            "checkpoint_every=1000", "num_workers=0"]
    assert main(["run", "pipelines/omniglot_anil.py", "--out", str(tmp_path), "--data-root", str(data_root),
                 "--cache-dir", str(cache), "--no-progress", *[x for item in sets for x in ("--set", item)]]) == 0
    model = load(tmp_path / "checkpoint.pt")
    assert isinstance(model.learner, MAML) and model.hallucinator is None
    result = evaluate(model, omniglot.split("test"), n_way=5, k_shot=1, episodes=100, seed=1,
                      device=torch.device("cpu"))
    assert result.accuracy >= 60, result.as_dict()  # chance: 20%
