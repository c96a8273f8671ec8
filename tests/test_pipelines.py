"""Every pipeline file imports, its config builds a classifier, and that classifier classifies an episode of its
data set's shape: a pipeline a user runs must not fail on its first line."""
from pathlib import Path

import pytest
import torch

from hallucinate.data import DATASETS
from hallucinate.model import build_classifier
from hallucinate.pipeline import load_pipeline

PIPELINES = sorted(Path("pipelines").glob("*.py"))


def test_there_is_a_pipeline_for_every_learner_on_both_data_sets():
    from hallucinate.learners import LEARNERS

    configs = [load_pipeline(path).CONFIG for path in PIPELINES]
    for dataset in ("omniglot", "cifar_fs"):
        missing = set(LEARNERS) - {config.learner for config in configs if config.dataset == dataset}
        assert not missing, f"no {dataset} pipeline for {sorted(missing)}"


@pytest.mark.parametrize("path", PIPELINES, ids=[path.stem for path in PIPELINES])
def test_pipeline_builds_a_classifier_that_classifies_an_episode(path):
    config = load_pipeline(path).CONFIG
    torch.manual_seed(0)
    model = build_classifier(config).eval()
    n_way, k_shot = config.val_n_way, config.val_k_shot
    if getattr(model.learner, "n_way", n_way) != n_way:
        pytest.fail(f"{path}: validates {n_way}-way but its learner has a {model.learner.n_way}-way head")
    channels = DATASETS[config.dataset].CHANNELS
    images = torch.rand(n_way * (k_shot + 2), channels, config.image_size, config.image_size)
    labels = torch.arange(n_way).repeat_interleave(k_shot)
    with torch.no_grad():
        logits = model(images[:n_way * k_shot], labels, images[n_way * k_shot:])
    assert logits.shape == (2 * n_way, n_way)
    assert torch.isfinite(logits).all()
