"""Baseline / Baseline++: the cosine classifier, the fine-tune learner's fit, and pre-training on the base classes."""
import dataclasses
import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from hallucinate import load
from hallucinate.cli import main
from hallucinate.evaluation import evaluate
from hallucinate.learners import LEARNERS, CosineClassifier, FineTuneClassifier
from hallucinate.model import build_classifier
from hallucinate.pipeline import load_pipeline
from hallucinate.training import EpisodicConfig, load_checkpoint
from hallucinate.training.pretrain import pretrain_backbone

CPU = torch.device("cpu")


def test_cosine_logits_match_hand_computed_values():
    head = CosineClassifier(2, 3)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]]))
    x = torch.tensor([[3.0, 4.0], [0.0, -1.0]])
    # |(3, 4)| = 5: cosines 3/5, 8/10, 7/(5 sqrt 2); (0, -1): 0, -1, -1/sqrt 2. Scale 2 for up to 200 classes.
    expected = 2 * torch.tensor([[0.6, 0.8, 7 / (5 * math.sqrt(2))], [0.0, -1.0, -1 / math.sqrt(2)]])
    assert torch.allclose(head(x), expected)
    assert CosineClassifier(2, 200).scale == 2 and CosineClassifier(2, 201).scale == 10


def _chen_reference(kind, support, labels, query, passes, *, rows=4, weights=None):
    """CloserLookFewShot's fine-tuning loop, with autograd and torch.optim.SGD, drawing the same initialisation and
    orders as `FineTuneClassifier`; ``weights`` scale each example's cross-entropy (over their mean), in mini-batches
    of ``rows``."""
    n_way, dim = int(labels.max()) + 1, support.shape[1]
    generator = torch.Generator().manual_seed(0)
    bound = 1 / math.sqrt(dim)
    initial = torch.empty(n_way, dim + (kind == "linear")).uniform_(-bound, bound, generator=generator)
    orders = torch.rand(passes, len(support), generator=generator).argsort(1)
    head = nn.Linear(dim, n_way) if kind == "linear" else CosineClassifier(dim, n_way)
    with torch.no_grad():
        head.weight.copy_(initial[:, :dim])
        if kind == "linear":
            head.bias.copy_(initial[:, -1])
    optimizer = torch.optim.SGD(head.parameters(), lr=0.01, momentum=0.9, dampening=0.9, weight_decay=1e-3)
    relative = torch.ones(len(support)) if weights is None else weights / weights.mean()
    for order in orders:
        for batch in order.split(rows):
            optimizer.zero_grad()
            losses = nn.functional.cross_entropy(head(support[batch]), labels[batch], reduction="none")
            (losses * relative[batch]).mean().backward()
            optimizer.step()
    return head(query).detach()


@pytest.mark.parametrize("kind", ["linear", "cosine"])
@pytest.mark.parametrize("passes", [0, 1, 30])
def test_fit_is_chens_sgd_loop(kind, passes):
    generator = torch.Generator().manual_seed(1)
    support, query = torch.randn(10, 6, generator=generator), torch.randn(7, 6, generator=generator)
    labels = torch.arange(5).repeat_interleave(2)  # 10 rows: batches of 4, 4, 2 in every pass
    logits = FineTuneClassifier(kind, passes=passes)(support, labels, query)
    assert torch.allclose(logits, _chen_reference(kind, support, labels, query, passes), atol=1e-5)


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_light_synthetic_rows_enlarge_the_mini_batches_not_the_step_count(kind):
    """10 real rows of weight 1 and 40 synthetic ones of 0.25: 20 units of weight, so mini-batches of 4 units are
    10 rows, 5 steps a pass (the 10 real rows alone take 3), not 13. Unit weights are the unweighted recipe."""
    generator = torch.Generator().manual_seed(2)
    support, query = torch.randn(50, 6, generator=generator), torch.randn(7, 6, generator=generator)
    labels = torch.arange(5).repeat(10)
    weights = torch.cat([torch.ones(10), torch.full((40,), 0.25)])
    logits = FineTuneClassifier(kind, passes=3)(support, labels, query, weights)
    expected = _chen_reference(kind, support, labels, query, 3, rows=10, weights=weights)
    assert torch.allclose(logits, expected, atol=1e-5)
    unweighted = FineTuneClassifier(kind, passes=3)(support, labels, query)
    assert torch.equal(FineTuneClassifier(kind, passes=3)(support, labels, query, torch.ones(50)), unweighted)


@pytest.mark.parametrize("kind", ["linear", "cosine"])
@pytest.mark.parametrize("k_shot", [1, 5])
def test_fitted_heads_classify_separable_features_perfectly(kind, k_shot):
    generator = torch.Generator().manual_seed(0)
    corners = torch.tensor([[4.0, 0.0], [0.0, 4.0], [-3.0, -3.0]])
    support = corners.repeat_interleave(k_shot, 0) + 0.3 * torch.randn(3 * k_shot, 2, generator=generator)
    query = corners.repeat_interleave(10, 0) + 0.3 * torch.randn(30, 2, generator=generator)
    logits = FineTuneClassifier(kind)(support, torch.arange(3).repeat_interleave(k_shot), query)
    assert logits.shape == (30, 3)
    assert torch.equal(logits.argmax(1), torch.arange(3).repeat_interleave(10))


@pytest.mark.parametrize("name", ["baseline", "baseline_pp"])
def test_same_inputs_give_the_same_logits_in_any_grad_mode(name):
    learner = LEARNERS.build(name, EpisodicConfig(finetune_steps=20), feature_shape=(16,))
    support, query = torch.randn(10, 16), torch.randn(8, 16, requires_grad=True)
    labels = torch.arange(5).repeat(2)  # classes interleaved; hallucinated rows would just be more of them
    rng_before = torch.get_rng_state()
    first = learner(support, labels, query)
    with torch.no_grad():
        second = learner(support, labels, query)
    assert torch.equal(first, second) and torch.equal(torch.get_rng_state(), rng_before)
    assert not second.requires_grad
    first.sum().backward()  # the query keeps its gradient path to the backbone
    assert query.grad is not None and query.grad.abs().sum() > 0


class SyntheticSplit(torch.utils.data.Dataset):
    """A stand-in for `StoreSplit`: 28 x 28 uint8 images, each class a fixed random pattern plus noise."""

    def __init__(self, name: str, n_classes: int, per_class: int, seed: int):
        rng = np.random.default_rng(seed)
        patterns = rng.integers(0, 256, (n_classes, 28, 28, 1))
        noise = rng.integers(-40, 41, (n_classes, per_class, 28, 28, 1))
        self.images = np.clip(patterns[:, None] + noise, 0, 255).astype(np.uint8).reshape(-1, 28, 28, 1)
        self.labels = np.arange(n_classes).repeat(per_class)
        self.name = name

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        return self.images[index], int(self.labels[index])

    def __getitems__(self, indices):
        return [self[i] for i in indices]


TINY_PRETRAIN = dict(dataset="omniglot", backbone="conv4", hallucinator="none", pretrain_batch_size=32,
                     val_n_way=5, val_k_shot=1, val_episodes=4, num_workers=0, finetune_steps=10)


def _pretrain(config, out, *, resume=False):
    torch.manual_seed(config.seed)
    model = build_classifier(config)
    summary = pretrain_backbone(config, model, SyntheticSplit("train", 8, 20, seed=1),
                                SyntheticSplit("val", 5, 16, seed=2), out_dir=out, device=CPU, resume=resume,
                                progress=False)
    return model, summary


@pytest.mark.parametrize("learner", ["baseline", "baseline_pp"])
def test_one_pretraining_step_reaches_backbone_and_head(learner, tmp_path):
    config = EpisodicConfig(learner=learner, pretrain_epochs=1, **TINY_PRETRAIN | {"pretrain_batch_size": 160})
    model, _ = _pretrain(config, tmp_path)  # 160 images, one batch: one Adam step
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    moments = state["optimizer"]["state"]
    head_tensors = 1 if learner == "baseline_pp" else 2  # the cosine head has a weight, the linear one a bias too
    assert len(moments) == len(list(model.backbone.parameters())) + head_tensors
    for index, moment in moments.items():
        assert moment["step"] == 1 and moment["exp_avg"].abs().sum() > 0, index
    head = state["pretrain"]["head"]
    assert head["weight"].shape == (8, model.backbone.out_dim) and state["pretrain"]["complete"]


def test_pretraining_validates_without_hallucinating(tmp_path):
    config = EpisodicConfig(learner="baseline", pretrain_epochs=1, **TINY_PRETRAIN | {"hallucinator": "gan"})
    torch.manual_seed(config.seed)
    model = build_classifier(config)
    calls = []
    model.hallucinator.register_forward_hook(lambda *_: calls.append(1))
    pretrain_backbone(config, model, SyntheticSplit("train", 8, 20, seed=1), SyntheticSplit("val", 5, 16, seed=2),
                      out_dir=tmp_path, device=CPU, progress=False)
    assert not calls and model.hallucinating  # the untrained generator stays out, and the setting is restored


def test_resumed_pretraining_matches_an_unbroken_run(tmp_path):
    config = EpisodicConfig(learner="baseline_pp", pretrain_epochs=2, **TINY_PRETRAIN)
    _pretrain(config, tmp_path / "straight")
    _pretrain(dataclasses.replace(config, pretrain_epochs=1), tmp_path / "resumed")
    assert load_checkpoint(tmp_path / "resumed" / "checkpoint.pt")["pretrain"]["next_epoch"] == 1
    _, summary = _pretrain(config, tmp_path / "resumed", resume=True)

    straight, resumed = (load_checkpoint(tmp_path / run / "checkpoint.pt") for run in ("straight", "resumed"))
    for part in ("model", "best_model"):
        for name, tensor in straight[part].items():
            assert torch.equal(tensor, resumed[part][name]), (part, name)
    for name, tensor in straight["pretrain"]["head"].items():
        assert torch.equal(tensor, resumed["pretrain"]["head"][name]), name
    assert resumed["pretrain"] == {**resumed["pretrain"], "next_epoch": 2, "complete": True}
    drop_speed = [{k: v for k, v in row.items() if k != "images_per_s"} for row in straight["metrics"]]
    assert drop_speed == [{k: v for k, v in row.items() if k != "images_per_s"} for row in resumed["metrics"]]
    assert [row["pretrain_epoch"] for row in summary["history"]] == [1, 2]
    lines = (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["pretrain_epoch"] for line in lines] == [1, 2]
    assert json.loads((tmp_path / "resumed" / "metrics.json").read_text())["best_episode"] == summary["best_episode"]

    assert main(["export", str(tmp_path / "resumed" / "checkpoint.pt"), str(tmp_path / "exported.pt")]) == 0
    exported = load(tmp_path / "exported.pt")
    assert isinstance(exported.learner, FineTuneClassifier) and exported.learner.head == "cosine"


class FirstClasses(torch.utils.data.Dataset):
    """The images of the first ``n_classes`` classes of a store split, as a split."""

    def __init__(self, split, n_classes: int):
        self.split, self.name = split, split.name
        self.indices = np.flatnonzero(split.labels < n_classes)
        self.labels = split.labels[self.indices]

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, index):
        return self.__getitems__([index])[0]

    def __getitems__(self, indices):
        return self.split.__getitems__([int(self.indices[i]) for i in indices])


@pytest.mark.parametrize("pipeline", ["pipelines/omniglot_baseline.py", "pipelines/omniglot_baseline_pp.py"])
def test_short_pretraining_classifies_unseen_omniglot_characters(pipeline, omniglot, tmp_path):
    """One epoch over 250 of the 4112 base classes (5000 images; over 200 classes, so the cosine head's scale is 10
    as with all of them), then 5-way 1-shot test episodes of unseen characters: chance is 20%. (77% and 73% when
    written.)"""
    config = dataclasses.replace(load_pipeline(pipeline).CONFIG, pretrain_epochs=1, val_n_way=5, val_episodes=5,
                                 num_workers=0)
    torch.manual_seed(config.seed)
    pretrain_backbone(config, build_classifier(config), FirstClasses(omniglot.split("train"), 250),
                      omniglot.split("val"), out_dir=tmp_path, device=CPU, progress=False)
    result = evaluate(load(tmp_path / "checkpoint.pt"), omniglot.split("test"), n_way=5, k_shot=1, episodes=100,
                      seed=1, device=CPU, precision=config.precision)
    assert result.accuracy >= 60, result.as_dict()

