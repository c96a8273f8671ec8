"""Relation networks' module computes in the backbone's precision: in bf16 under "bf16" (its scores handed back in
float32, its gradients reaching every weight), exactly as before under "fp32"; evaluation chooses by its own
precision, so a shipped checkpoint evaluated at "fp32" gives the logits it always gave."""
import math

import pytest
import torch

import hallucinate
from hallucinate.evaluation import evaluate
from hallucinate.learners import RelationNetworks, class_means
from hallucinate.model import build_classifier
from hallucinate.training import EpisodicConfig, train_episodic
from tests.conftest import Enough, NoiseSplit

CPU = torch.device("cpu")
FEATURE_SHAPE = (2, 16, 16)
N_WAY, K_SHOT, N_QUERY = 3, 2, 4
SHIPPED = "checkpoints/omniglot_relation_conv4.pt"


def _episode():
    rng = torch.Generator().manual_seed(0)
    support = torch.rand(N_WAY * K_SHOT, math.prod(FEATURE_SHAPE), generator=rng)
    query = torch.rand(N_QUERY, math.prod(FEATURE_SHAPE), generator=rng)
    return support, torch.arange(N_WAY).repeat_interleave(K_SHOT), query, torch.tensor([0, 1, 2, 0])


def _module_called_directly(learner: RelationNetworks, support, support_labels, query, n_way: int) -> torch.Tensor:
    """The logits as relation networks computed them before their module had a precision: the module called on each
    (class mean map, query map) pair in float32."""
    classes = class_means(support, support_labels, n_way).unflatten(1, learner.feature_shape)
    queries = query.unflatten(1, learner.feature_shape)
    pairs = torch.cat([classes.unsqueeze(0).expand(len(queries), -1, -1, -1, -1),
                       queries.unsqueeze(1).expand(-1, n_way, -1, -1, -1)], dim=2)
    return learner.relation(pairs.flatten(0, 1)).view(len(queries), n_way)


def _record_convolution_dtypes(learner: RelationNetworks) -> list[torch.dtype]:
    """The dtype each convolution of ``learner``'s module computes in (that of its output), call by call."""
    dtypes = []
    for layer in learner.relation.convs.modules():
        if isinstance(layer, torch.nn.Conv2d):
            layer.register_forward_hook(lambda layer, inputs, output: dtypes.append(output.dtype))
    return dtypes


def _learner(precision: str) -> RelationNetworks:
    torch.manual_seed(0)
    return RelationNetworks(FEATURE_SHAPE, precision=precision)


def test_under_bf16_the_module_convolves_in_bf16_and_the_scores_come_back_in_float32():
    learner = _learner("bf16").eval()
    dtypes = _record_convolution_dtypes(learner)
    support, labels, query, _ = _episode()
    scores = learner(support, labels, query)
    assert dtypes == [torch.bfloat16, torch.bfloat16]
    assert scores.dtype == torch.float32
    float32 = _module_called_directly(learner, support, labels, query, N_WAY)
    torch.testing.assert_close(scores, float32, atol=0.02, rtol=0)


def test_under_fp32_the_logits_are_the_module_called_directly_bit_for_bit():
    learner = _learner("fp32").eval()
    dtypes = _record_convolution_dtypes(learner)
    support, labels, query, _ = _episode()
    assert torch.equal(learner(support, labels, query), _module_called_directly(learner, support, labels, query,
                                                                                N_WAY))
    assert set(dtypes) == {torch.float32}


def test_under_bf16_gradients_reach_every_weight_of_the_module_in_float32():
    learner = _learner("bf16").train()
    support, labels, query, query_labels = _episode()
    learner.loss(learner(support, labels, query), query_labels).backward()
    for name, parameter in learner.named_parameters():
        assert parameter.grad is not None and parameter.grad.dtype == torch.float32, name
        assert parameter.grad.abs().sum() > 0, name


def test_a_precision_other_than_fp32_bf16_or_auto_is_refused():
    with pytest.raises(ValueError, match="precision must be 'auto', 'bf16' or 'fp32', got 'fp16'"):
        RelationNetworks(FEATURE_SHAPE, precision="fp16")


def test_build_classifier_gives_the_module_the_configs_precision():
    for precision in ("auto", "bf16", "fp32"):
        config = EpisodicConfig(learner="relation", backbone="conv4_maps", precision=precision)
        assert build_classifier(config).learner.precision == precision


def test_one_training_step_at_bf16_trains_the_module_in_bf16(tmp_path):
    config = EpisodicConfig(learner="relation", backbone="conv4_maps", n_way=3, k_shot=1, q_query=2, episodes=100,
                            log_every=1000, val_every=1000, checkpoint_every=1000, num_workers=0, precision="bf16")
    torch.manual_seed(0)
    model = build_classifier(config)
    dtypes = _record_convolution_dtypes(model.learner)
    before = {name: parameter.detach().clone() for name, parameter in model.learner.named_parameters()}
    one_episode = NoiseSplit(config.n_way * (config.k_shot + config.q_query))
    with pytest.raises(Enough):  # asked for a second episode: the first step is over
        train_episodic(config, model, one_episode, NoiseSplit(10**9), out_dir=tmp_path, device=CPU, progress=False)
    assert dtypes == [torch.bfloat16, torch.bfloat16]
    unchanged = [name for name, parameter in model.learner.named_parameters()
                 if name.endswith("weight") and torch.equal(parameter, before[name])]
    assert unchanged == []


def _evaluated_logits(model, precision: str, monkeypatch) -> list[tuple]:
    """Each episode of a short evaluation at ``precision``: its features, its labels and the logits it got."""
    episodes, classify = [], model.classify_features

    def recorded(support, support_labels, query, rng=None):
        logits = classify(support, support_labels, query, rng=rng)
        episodes.append((support, support_labels, query, logits))
        return logits

    monkeypatch.setattr(model, "classify_features", recorded)
    evaluate(model, NoiseSplit(10**9), n_way=5, k_shot=1, q_query=2, episodes=3, seed=0, device=CPU,
             precision=precision)
    monkeypatch.undo()
    return episodes


def test_a_shipped_checkpoint_evaluated_at_fp32_gives_the_logits_it_gave_before(monkeypatch):
    model = hallucinate.load(SHIPPED, device="cpu")
    assert model.learner.precision == "fp32"  # as model(...) embeds
    model.learner.precision = "bf16"  # evaluate sets its own precision, whatever the learner had
    dtypes = _record_convolution_dtypes(model.learner)
    episodes = _evaluated_logits(model, "fp32", monkeypatch)
    assert set(dtypes) == {torch.float32}
    with torch.no_grad():
        for support, support_labels, query, logits in episodes:
            assert torch.equal(logits, _module_called_directly(model.learner, support, support_labels, query, 5))
    assert model.learner.precision == "bf16"


def test_evaluation_at_bf16_runs_the_module_in_bf16_and_gives_it_back_its_precision(monkeypatch):
    model = hallucinate.load(SHIPPED, device="cpu")
    model.learner.precision = "fp32"
    dtypes = _record_convolution_dtypes(model.learner)
    episodes = _evaluated_logits(model, "bf16", monkeypatch)
    assert set(dtypes) == {torch.bfloat16}
    assert {logits.dtype for *_, logits in episodes} == {torch.float32}
    assert model.learner.precision == "fp32"
