"""The multi-domain trainers: one lft and one mldg step against the same computation written out by hand on a tiny
model, step 2's gradient reaching the feature-wise layers alone, the settings' checks, a resumed run ending on the
weights of an unbroken one, and a short multi-domain run classifying a left-out domain well above chance."""
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from hallucinate.backbones.feature_wise import add_feature_wise
from hallucinate.data import DATASETS, omniglot as omniglot_module, open_store
from hallucinate.domains.config import MultiDomainConfig
from hallucinate.domains.training import (ConcatSplit, EpisodeObjective, EpisodePairs, domain_pair, lft_step,
                                          open_domain, plain_step, run_multidomain, train_multidomain)
from hallucinate.episode import Episode
from hallucinate.evaluation import evaluate
from hallucinate.learners import PrototypicalNetworks
from hallucinate.model import FewShotClassifier, build_classifier
from hallucinate.training import load_checkpoint, override

# ---------------------------------------------------------------------------------------------------------- tiny model


class ArraySplit:
    """An in-memory split of uint8 images ``[N, H, W, 1]``."""

    name = "train"

    def __init__(self, images: np.ndarray, labels: list[int]):
        self.images, self.labels = images, np.asarray(labels)
        self.classes = [str(c) for c in sorted(set(labels))]

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        return self.images[index], int(self.labels[index])

    def __getitems__(self, indices):
        return [self[i] for i in indices]


def _tiny_split(seed: int, per_class: int) -> ArraySplit:
    images = np.random.default_rng(seed).integers(0, 256, (2 * per_class, 2, 2, 1), dtype=np.uint8)
    return ArraySplit(images, [c for c in range(2) for _ in range(per_class)])


def _tiny_model() -> FewShotClassifier:
    """One 2x2 convolution of a 2x2 image (a linear layer to 2 features; no bias, which batch norm would cancel and
    whose zero gradient Adam's first step would turn into noise), batch norm, ProtoNet."""
    torch.manual_seed(0)
    backbone = nn.Sequential(nn.Conv2d(1, 2, 2, bias=False), nn.BatchNorm2d(2), nn.Flatten())
    return FewShotClassifier(backbone, PrototypicalNetworks())


TINY = dict(domains="d0,d1", val_domain="d2", n_way=2, k_shot=1, q_query=2, episodes=1, val_every=1, val_episodes=2,
            val_n_way=2, val_k_shot=1, checkpoint_every=1, log_every=1, num_workers=0, precision="fp32",
            channels_last=False, seed=3, lr=1e-3, fwt_lr=1e-2, inner_lr=0.5, mldg_beta=0.7)


def _tiny_run(trainer: str, tmp_path):
    config = MultiDomainConfig(trainer=trainer, **TINY)
    splits = {"d0": _tiny_split(0, 3), "d1": _tiny_split(1, 3)}
    model = _tiny_model()
    initial = {name: p.detach().clone() for name, p in model.named_parameters()}
    train_multidomain(config, model, splits, _tiny_split(2, 16), out_dir=tmp_path, device=torch.device("cpu"),
                      progress=False)
    seen, unseen = EpisodePairs(list(splits.values()), n_way=2, k_shot=1, q_query=2, episodes=1, seed=3,
                                      with_unseen=True, names=list(splits))[0]
    return config, initial, seen, unseen, load_checkpoint(tmp_path / "checkpoint.pt")


def _features(p: dict, images: torch.Tensor, *, statistics=None, noise=None) -> torch.Tensor:
    """The tiny backbone written out: x W^T, batch norm (the batch's statistics, or ``statistics``), then the
    feature-wise transformation ``noise`` = (eps, eps', theta_gamma, theta_beta) when given."""
    z = images.flatten(1) @ p["backbone.0.weight"].flatten(1).T
    mean, var = (z.mean(0), z.var(0, unbiased=False)) if statistics is None else statistics
    y = (z - mean) / torch.sqrt(var + 1e-5) * p["backbone.1.weight"] + p["backbone.1.bias"]
    if noise is not None:
        eps_gamma, eps_beta, theta_gamma, theta_beta = noise
        y = (1 + eps_gamma * nn.functional.softplus(theta_gamma, beta=100)) * y \
            + eps_beta * nn.functional.softplus(theta_beta, beta=100)
    return y


def _loss(features: torch.Tensor, episode: Episode) -> torch.Tensor:
    """ProtoNet's 2-way 1-shot loss: the support features are the prototypes."""
    prototypes, query = features[:2], features[2:]
    logits = -((query[:, None] - prototypes[None]) ** 2).sum(-1)
    return nn.functional.cross_entropy(logits, episode.query_labels)


def _images(episode: Episode) -> torch.Tensor:
    return torch.cat([episode.support, episode.query])


def _assert_adam_first_step(new: torch.Tensor, p: torch.Tensor, grad: torch.Tensor, lr: float, what: str,
                            weight_decay: float = 0.0) -> None:
    """``new`` is ``p`` after Adam's first step on ``grad``: ``p - lr * g / (|g| + 1e-8)``, where the gradient is
    not zero. (ProtoNet's distances do not change when every feature shifts alike, so batch norm's bias has a zero
    gradient, which float rounding makes +-1e-9 and Adam's first step turns into +-lr/10.)"""
    grad = grad + weight_decay * p
    m, v = 0.1 * grad / (1 - 0.9), 0.001 * grad ** 2 / (1 - 0.999)
    given = grad.abs() > 1e-5
    _assert_close(new[given], (p - lr * m / (v.sqrt() + 1e-8))[given], what)


def _assert_close(actual, expected, what: str):
    assert torch.allclose(actual, expected, rtol=1e-4, atol=1e-6), (what, actual, expected)


def test_one_lft_step_is_the_two_steps_written_out_by_hand(tmp_path):
    config, theta, seen, unseen, state = _tiny_run("lft", tmp_path)
    names = list(theta)
    theta = {name: p.requires_grad_() for name, p in theta.items()}
    phi = [torch.full((2,), 0.3, requires_grad=True), torch.full((2,), 0.5, requires_grad=True)]
    noise = torch.Generator().manual_seed(config.seed + 1)  # the layer's draw: the scale's noise, then the shift's
    eps = [torch.randn((1, 2, 1, 1), generator=noise).flatten() for _ in range(2)]

    # Step 1: the pseudo-seen loss with the layer on; its gradient, kept in the graph.
    seen_z = _images(seen).flatten(1) @ theta["backbone.0.weight"].flatten(1).T
    seen_loss = _loss(_features(theta, _images(seen), noise=(*eps, *phi)), seen)
    g = torch.autograd.grad(seen_loss, [theta[n] for n in names], create_graph=True)
    # Step 2: the pseudo-unseen loss at theta - inner_lr * g, the layer off, batch norm on its running statistics
    # (momentum 0.1 from mean 0 and variance 1: updated once, by step 1).
    running = (0.1 * seen_z.mean(0).detach(), 0.9 + 0.1 * seen_z.var(0, unbiased=True).detach())
    fast = {n: theta[n] - config.inner_lr * gn for n, gn in zip(names, g)}
    unseen_loss = _loss(_features(fast, _images(unseen), statistics=running), unseen)
    phi_grads = torch.autograd.grad(unseen_loss, phi)

    # Adam's first step: theta by step 1's gradient, phi (weight decay 1e-8) by step 2's.
    for i, (name, grad) in enumerate(zip(names, g)):
        _assert_close(state["optimizer"]["state"][i]["exp_avg"], 0.1 * grad.detach(), f"exp_avg {name}")
        _assert_adam_first_step(state["model"][name], theta[name].detach(), grad.detach(), config.lr, name)
    assert g[0].abs().min() > 1e-3 and g[1].abs().min() > 1e-3  # the linear layer's and batch norm's weights
    _assert_close(state["model"]["backbone.1.running_mean"], running[0], "running mean")
    for i, (key, p, grad) in enumerate(zip(("layers.0.theta_gamma", "layers.0.theta_beta"), phi, phi_grads)):
        assert grad.abs().min() > 0, key
        _assert_close(state["fwt"]["optimizer"]["state"][i]["exp_avg"], 0.1 * (grad + 1e-8 * p.detach()), key)
        _assert_adam_first_step(state["fwt"]["layers"][key], p.detach(), grad, config.fwt_lr, key, 1e-8)


def test_one_mldg_step_is_its_objective_written_out_by_hand(tmp_path):
    config, theta, seen, unseen, state = _tiny_run("mldg", tmp_path)
    names = list(theta)
    theta = {name: p.requires_grad_() for name, p in theta.items()}
    f = _loss(_features(theta, _images(seen)), seen)
    grads = torch.autograd.grad(f, [theta[n] for n in names], create_graph=True)
    fast = {n: theta[n] - config.inner_lr * gn for n, gn in zip(names, grads)}
    g = _loss(_features(fast, _images(unseen)), unseen)  # batch norm on the batch's statistics, as in training
    total = torch.autograd.grad(f + config.mldg_beta * g, [theta[n] for n in names], retain_graph=True)
    plain = torch.autograd.grad(f + config.mldg_beta * _loss(_features(theta, _images(unseen)), unseen),
                                [theta[n] for n in names])
    assert not torch.allclose(total[0], plain[0], rtol=1e-2)  # the virtual step matters at inner_lr 0.5
    assert state["fwt"] is None
    for i, (name, grad) in enumerate(zip(names, total)):
        _assert_close(state["optimizer"]["state"][i]["exp_avg"], 0.1 * grad, f"exp_avg {name}")
        _assert_adam_first_step(state["model"][name], theta[name].detach(), grad, config.lr, name)


@pytest.mark.parametrize("learner", ["protonet", "relation"])
def test_step_2s_gradient_reaches_the_feature_wise_layers_and_no_other_parameter(learner):
    config = MultiDomainConfig(domains="a,b", val_domain="c", learner=learner, precision="fp32",
                               backbone="conv4_maps" if learner == "relation" else "conv4")
    torch.manual_seed(0)
    model = build_classifier(config)
    named = list(model.named_parameters())
    noise = torch.Generator().manual_seed(0)
    layers = add_feature_wise(model.backbone, generator=noise)
    objective = EpisodeObjective(model, hallucinating=False, n_synthetic=0, device=torch.device("cpu"),
                                 precision="fp32", memory_format=torch.channels_last)
    labels = torch.arange(3)

    def episode():
        return Episode(torch.rand(3, 1, 28, 28), labels, torch.rand(6, 1, 28, 28), labels.repeat_interleave(2), labels)

    seen, unseen = episode(), episode()
    model.train()
    plain_step(objective, named, seen, n_way=3, rng=None)  # step 1's gradient alone, on the same draw of noise
    step1 = [p.grad.clone() for _, p in named]
    assert all(p.grad is None for p in layers.parameters())
    noise.manual_seed(0)
    for _, p in named:
        p.grad = None
    lft_step(objective, named, layers, seen, unseen, inner_lr=1e-3, n_way=3, rng=None)
    assert len(named) > 16 if learner == "relation" else len(named) == 16  # the relation module's weights too
    for (name, p), expected in zip(named, step1):
        assert torch.allclose(p.grad, expected, rtol=1e-4, atol=1e-7), name
    for layer in layers.layers:
        assert layer.theta_gamma.grad.abs().sum() > 0 and layer.theta_beta.grad.abs().sum() > 0
    assert model.training and layers.enabled  # step 2's eval mode and switched-off layers are undone


# ------------------------------------------------------------------------------------------------------------ settings


def test_the_settings_are_checked_when_the_config_is_built():
    with pytest.raises(ValueError, match="unknown trainer 'lfft'; valid: aggregate, fwt_fixed, lft, mldg"):
        MultiDomainConfig(trainer="lfft")
    with pytest.raises(ValueError, match="needs at least 2 training domains"):
        MultiDomainConfig(trainer="mldg", domains="omniglot")
    MultiDomainConfig(trainer="aggregate", domains="omniglot")  # one domain is plain single-domain training
    with pytest.raises(ValueError, match="more than once"):
        MultiDomainConfig(domains="omniglot,hershey,omniglot")
    with pytest.raises(ValueError, match="comma-separated"):
        MultiDomainConfig(domains="omniglot,,hershey")
    with pytest.raises(ValueError, match="test_domain 'hershey' is left out of training, but domains names it"):
        MultiDomainConfig(domains="omniglot,hershey", test_domain="hershey")
    with pytest.raises(ValueError, match="val_domain 'hershey' is the tested domain"):
        MultiDomainConfig(domains="omniglot,noto_glyphs", val_domain="hershey", test_domain="hershey")
    with pytest.raises(ValueError, match="meta_batch must be 1"):
        MultiDomainConfig(meta_batch=2, episodes=10, val_every=10, checkpoint_every=10, log_every=10)
    with pytest.raises(ValueError, match="learner 'baseline_pp'"):
        MultiDomainConfig(learner="baseline_pp")


def test_set_overrides_the_domains_and_the_trainer():
    config = override(MultiDomainConfig(), ["domains=omniglot,hershey", "trainer=mldg", "val_domain=noto_glyphs",
                                            "test_domain=cifar_fs_gray", "inner_lr=0.01"])
    assert config.training_domains == ("omniglot", "hershey") and config.trainer == "mldg"
    assert config.inner_lr == 0.01 and config.classifier_config().as_dict().keys() <= config.as_dict().keys()
    assert "domains" not in config.classifier_config().as_dict()


def test_a_domain_of_another_image_shape_is_refused(monkeypatch):
    monkeypatch.setitem(DATASETS, "rgb_domain", SimpleNamespace(CHANNELS=3))
    with pytest.raises(ValueError, match="domain 'rgb_domain' has 3-channel images; the classifier takes 1-channel"):
        open_domain("rgb_domain", MultiDomainConfig(domains="omniglot,rgb_domain"))


def test_concatenated_splits_offset_each_splits_labels():
    a, b = _tiny_split(0, 3), _tiny_split(1, 4)
    both = ConcatSplit([a, b])
    assert len(both) == 14 and list(both.labels) == [0] * 3 + [1] * 3 + [2] * 4 + [3] * 4
    items = both.__getitems__([7, 0, 13, 5])
    assert [label for _, label in items] == [2, 0, 3, 1]
    assert np.array_equal(items[0][0], b.images[1]) and np.array_equal(items[2][0], b.images[7])


# ------------------------------------------------------------------------------------------------------------ real runs


def _fake_domain(style: int, *, classes=(12, 6, 6), per_class=16):
    """A data set of 28x28 "characters": each class three bars at fixed places, drawn shifted by up to 2 pixels, at
    a random intensity, over background noise whose strength and whose bars' thickness depend on ``style``."""
    def read_classes(root, image_size=28):
        rng = np.random.default_rng([style, 2020])
        thick = 1 + style % 3
        for split, count in zip(("train", "val", "test"), classes):
            for c in range(count):
                glyph = np.zeros((image_size, image_size))
                for _ in range(3):
                    r, q = rng.integers(4, 18, 2)
                    glyph[r:r + thick, q:q + 8] = 1 if rng.random() < 0.5 else 0
                    glyph[r:r + 8, q:q + thick] = glyph[r:r + 8, q:q + thick] if rng.random() < 0.5 else 1
                images = []
                for _ in range(per_class):
                    drawn = np.roll(glyph, tuple(rng.integers(-2, 3, 2)), (0, 1)) * rng.uniform(0.6, 1.0)
                    drawn = np.clip(drawn + rng.random(drawn.shape) * 0.15 * (1 + style % 4), 0, 1)
                    images.append((drawn * 255).astype(np.uint8)[:, :, None])
                yield split, f"{split}/{c}", np.stack(images)

    return SimpleNamespace(CHANNELS=1, DEFAULT_IMAGE_SIZE=28, read_classes=read_classes,
                           prepare_image=omniglot_module.prepare_image,
                           source_fingerprint=lambda root: f"fake/{style}/{classes}/{per_class}")


FAKE = ("fake_a", "fake_b", "fake_c", "fake_d", "fake_e")


@pytest.fixture(scope="module")
def domains(omniglot, data_root, tmp_path_factory):
    """Five fake domains registered as data sets, their stores in a fresh cache beside (a link to) Omniglot's."""
    cache = tmp_path_factory.mktemp("domains_cache")
    (cache / omniglot.path.name).symlink_to(omniglot.path.resolve())
    with pytest.MonkeyPatch.context() as patch:
        for style, name in enumerate(FAKE):
            patch.setitem(DATASETS, name, _fake_domain(style))
        yield SimpleNamespace(cache=cache, data_root=data_root)


RUN = ["n_way=5", "k_shot=1", "q_query=3", "val_n_way=5", "val_k_shot=1", "val_episodes=20", "num_workers=0",
       "precision=fp32"]


def test_a_resumed_run_ends_on_the_weights_of_an_unbroken_one(domains, tmp_path):
    """lft with a jointly-trained GAN hallucinator (its synthetic features in both steps, its critic stepped)."""
    config = override(MultiDomainConfig(), RUN + [
        "domains=fake_a,fake_b,fake_c", "val_domain=fake_d", "trainer=lft", "episodes=6", "checkpoint_every=3",
        "val_every=3", "log_every=3", "hallucinator=gan", "gan_generator=noise", "n_synthetic=2",
        "hallucinator_hidden=16", "critic_hidden=16", "noise_dim=8"])
    options = dict(data_root=domains.data_root, cache_dir=domains.cache, device="cpu", progress=False)
    unbroken = run_multidomain(config, out=tmp_path / "unbroken", **options)
    run_multidomain(override(config, ["episodes=3"]), out=tmp_path / "broken", **options)
    resumed = run_multidomain(config, out=tmp_path / "broken", resume=True, **options)
    a, b = (load_checkpoint(tmp_path / run / "checkpoint.pt") for run in ("unbroken", "broken"))
    assert a["sampler"]["next_episode"] == b["sampler"]["next_episode"] == 6
    for part in ("model", "best_model"):
        assert a[part].keys() == b[part].keys()
        for name in a[part]:
            assert torch.equal(a[part][name], b[part][name]), (part, name)
    assert any(name.startswith("hallucinator.critic.") for name in a["model"])
    for name, theta in a["fwt"]["layers"].items():
        assert torch.equal(theta, b["fwt"]["layers"][name]), name
        assert not torch.equal(theta, torch.full_like(theta, 0.3 if "gamma" in name else 0.5)), name  # learned

    def timeless(rows):
        return [{key: value for key, value in row.items() if key != "episodes_per_s"} for row in rows]

    assert timeless(unbroken["history"]) == timeless(resumed["history"])
    row = unbroken["history"][0]
    assert {"classification", "unseen_classification", "adversarial", "unseen_adversarial", "critic",
            "episodes_per_s"} <= row.keys()
    with pytest.raises(Exception, match="settings differ from the checkpoint's: \\['trainer'\\]"):
        run_multidomain(override(config, ["trainer=mldg"]), out=tmp_path / "broken", resume=True, **options)


def test_the_checkpoint_loads_as_a_plain_classifier(domains, tmp_path):
    from hallucinate import load

    config = override(MultiDomainConfig(), RUN + ["domains=omniglot,fake_a", "val_domain=fake_b", "trainer=lft",
                                                  "episodes=2", "val_every=2", "checkpoint_every=2", "log_every=2"])
    run_multidomain(config, out=tmp_path, data_root=domains.data_root, cache_dir=domains.cache, device="cpu",
                    progress=False)
    model = load(tmp_path / "checkpoint.pt")
    assert model.config == config.classifier_config()
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    assert state["multidomain"] == config.as_dict() and set(state["fwt"]["layers"]) == {
        f"layers.{i}.{theta}" for i in range(4) for theta in ("theta_gamma", "theta_beta")}
    from hallucinate.cli import main

    assert main(["export", str(tmp_path / "checkpoint.pt"), str(tmp_path / "released.pt")]) == 0
    released = load_checkpoint(tmp_path / "released.pt")
    assert released["multidomain"] == config.as_dict() and "fwt" not in released  # what it was trained on, kept
    assert load(tmp_path / "released.pt").config == model.config


def test_a_short_multi_domain_run_beats_a_single_domain_run_on_a_left_out_domain(domains, tmp_path):
    """lft on Omniglot and three fake domains against plain training on Omniglot alone, as many episodes each, on
    the same 5-way 1-shot episodes of a fifth fake domain's test classes (chance: 20%; the untrained Conv-4 reaches
    about 67% on these easy bars, the Omniglot-only run about as much, lft about 82%)."""
    settings = RUN + ["val_domain=fake_d", "test_domain=fake_e", "episodes=60", "val_every=30", "checkpoint_every=60",
                      "log_every=30", "lr=3e-3"]
    test = open_store("fake_e", root=domains.data_root, cache=domains.cache).split("test")
    accuracy = {}
    for name, trainer, trained_on in (("multi", "lft", "omniglot,fake_a,fake_b,fake_c"),
                                      ("single", "aggregate", "omniglot")):
        config = override(MultiDomainConfig(), settings + [f"trainer={trainer}", f"domains={trained_on}"])
        run_multidomain(config, out=tmp_path / name, data_root=domains.data_root, cache_dir=domains.cache,
                        device="cpu", progress=False)
        model = build_classifier(config)
        model.load_state_dict(load_checkpoint(tmp_path / name / "checkpoint.pt")["best_model"])
        accuracy[name] = evaluate(model, test, n_way=5, k_shot=1, episodes=100, seed=1,
                                  device=torch.device("cpu")).accuracy
    assert accuracy["multi"] > 20 + 45, accuracy
    assert accuracy["multi"] > accuracy["single"] + 5, accuracy


def test_the_lft_pipeline_runs_from_the_command_line_on_other_domains(domains, tmp_path, capsys):
    from hallucinate.cli import main
    from tests.conftest import sets

    assert main(["run", "pipelines/multidomain_protonet_lft.py", "--out", str(tmp_path), "--data-root",
                 str(domains.data_root), "--cache-dir", str(domains.cache), "--no-progress", *sets(
                     *RUN, "domains=fake_a,fake_b", "val_domain=fake_c", "test_domain=fake_d", "episodes=2",
                     "val_every=2", "checkpoint_every=2", "log_every=1")]) == 0
    assert '"episodes": 2' in capsys.readouterr().out
    rows = [row for row in load_checkpoint(tmp_path / "checkpoint.pt")["metrics"] if "episodes_per_s" in row]
    assert len(rows) == 2 and all(row["episodes_per_s"] > 0 and row["unseen_classification"] > 0 for row in rows)


def test_a_two_stage_run_trains_the_calibrated_gan_on_every_training_domains_classes(domains, tmp_path):
    config = override(MultiDomainConfig(), RUN + [
        "domains=fake_a,fake_b,fake_c", "val_domain=fake_d", "trainer=mldg", "episodes=2", "val_every=2",
        "checkpoint_every=2", "log_every=2", "hallucinator=gan", "hallucinator_episodes=2", "hallucinator_n_way=5",
        "hallucinator_q_query=2", "hallucinator_hidden=16", "critic_hidden=16", "calibration_rank=2"])
    summary = run_multidomain(config, out=tmp_path, data_root=domains.data_root, cache_dir=domains.cache,
                              device="cpu", progress=False)
    assert summary["episodes"] == 2
    stage1 = load_checkpoint(tmp_path / "stage1" / "checkpoint.pt")
    assert stage1["multidomain"] == config.stage1().as_dict()
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    assert state["config"] == config.classifier_config().as_dict()
    assert state["model"]["hallucinator.generator.base_means"].shape == (3 * 12, 64)  # 12 train classes a domain
    for name, weight in stage1["best_model"].items():
        assert torch.equal(state["model"][name], weight), name  # the embedding frozen, its statistics too


def test_domains_drawn_by_class_count_follow_it_and_uniform_draws_are_unchanged():
    weights = np.array([70.0, 20.0, 10.0])
    pairs = [domain_pair(0, episode, 3, weights) for episode in range(3000)]
    seen = np.bincount([s for s, _ in pairs], minlength=3) / len(pairs)
    assert np.allclose(seen, weights / weights.sum(), atol=0.03)
    assert all(s != u for s, u in pairs)
    assert domain_pair(5, 7, 3) == tuple(int(d) for d in np.random.default_rng([5, 7]).choice(3, 2, replace=False))
    with pytest.raises(ValueError, match="unknown domain_sampling 'sizes'; valid: uniform, classes"):
        MultiDomainConfig(domain_sampling="sizes")
