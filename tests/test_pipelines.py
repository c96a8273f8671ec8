"""Every pipeline file imports, its config builds a classifier, and that classifier classifies an episode of its
data set's shape: a pipeline a user runs must not fail on its first line."""
import re
from pathlib import Path

import pytest
import torch

from hallucinate.data import DATASETS
from hallucinate.model import build_classifier
from hallucinate.pipeline import load_pipeline

# Classification pipelines; each other task's pipelines are tested with that task (tests/test_segmentation*.py).
PIPELINES = sorted(path for path in Path("pipelines").glob("*.py")
                   if getattr(load_pipeline(path).CONFIG, "task", "classification") == "classification")
# Learners that are test-time heads, not trained: logistic regression is fitted on each episode's support features
# of a trained checkpoint (`hallucinate eval --learner logistic`, the benchmarks), so it has no pipeline of its own.
TEST_TIME_HEADS = {"logistic"}


def test_there_is_a_pipeline_for_every_learner_on_both_data_sets():
    from hallucinate.learners import LEARNERS

    assert TEST_TIME_HEADS <= set(LEARNERS)  # an exemption for a learner that no longer exists is a stale one
    configs = [load_pipeline(path).CONFIG for path in PIPELINES]
    for dataset in ("omniglot", "cifar_fs"):
        missing = set(LEARNERS) - TEST_TIME_HEADS - {config.learner for config in configs if config.dataset == dataset}
        assert not missing, f"no {dataset} pipeline for {sorted(missing)}"


def test_no_pipeline_trains_a_test_time_head():
    trained = {load_pipeline(path).CONFIG.learner for path in PIPELINES}
    assert not trained & TEST_TIME_HEADS


TWO_STAGE = [path for path in PIPELINES if load_pipeline(path).CONFIG.two_stage]


def test_the_gan_pipelines_train_in_two_stages():
    assert [path.stem for path in TWO_STAGE] == sorted(path.stem for path in PIPELINES if path.stem.endswith("_gan"))


@pytest.mark.parametrize("path", TWO_STAGE, ids=[path.stem for path in TWO_STAGE])
def test_stage_1_of_a_two_stage_pipeline_is_the_plain_pipelines_run_it_names(path):
    """OUT/stage1 of a two-stage pipeline is exactly the run of the plain pipeline its docstring names (so a finished
    run of that pipeline can stand for it through init_from)."""
    module = load_pipeline(path)
    named = re.search(r"Stage 1 is (pipelines/\w+\.py)", " ".join(module.__doc__.split()))
    assert named, f"{path}'s docstring does not say which plain pipeline its stage 1 is ('Stage 1 is pipelines/...')"
    stage1 = module.CONFIG.stage1()
    assert stage1 == load_pipeline(named.group(1)).CONFIG
    assert not stage1.two_stage and stage1.hallucinator == "none"


@pytest.mark.parametrize("path", PIPELINES, ids=[path.stem for path in PIPELINES])
def test_pipeline_builds_a_classifier_that_classifies_an_episode(path):
    config = load_pipeline(path).CONFIG
    torch.manual_seed(0)
    model = build_classifier(config).eval()
    if model.hallucinator is not None and model.hallucinator.needs_frozen_embedding:
        # The calibrated GAN's base-class statistics come from the frozen embedding at the start of stage 2; here,
        # from random features of the backbone's width (non-negative, like ReLU features).
        base = torch.rand(4 * 5, model.hallucinator.generator.feature_dim)
        model.hallucinator.before_training(base, torch.arange(4).repeat_interleave(5))
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
