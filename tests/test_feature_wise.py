"""Feature-wise transformation layers: the identity in eval mode (and when switched off), noise of the stated
statistics in training mode, one draw per channel per forward, seeded; on a backbone they leave its state_dict as it
was and come off again."""
import math

import pytest
import torch

from hallucinate.backbones import Conv4
from hallucinate.backbones.feature_wise import FeatureWiseTransformation, add_feature_wise


def _layer(channels: int, seed: int = 0, **kwargs) -> FeatureWiseTransformation:
    return FeatureWiseTransformation(channels, generator=torch.Generator().manual_seed(seed), **kwargs)


def test_the_layer_is_the_identity_in_eval_mode():
    layer = _layer(8).eval()
    x = torch.randn(4, 8, 5, 5)
    assert torch.equal(layer(x), x)


def test_the_switched_off_layer_is_the_identity_in_training_mode():
    layer = _layer(8).train()
    x = torch.randn(4, 8, 5, 5)
    assert not torch.allclose(layer(x), x)
    layer.enabled = False
    assert torch.equal(layer(x), x)


def test_scale_and_shift_have_mean_1_and_0_and_the_stated_spreads():
    """Over 40 forwards of 1000 channels: ``out(0) = beta`` and ``out(1) - out(0) = gamma`` (the same draw, by
    reseeding), gamma ~ N(1, softplus(0.3)^2), beta ~ N(0, softplus(0.5)^2) with softplus's beta = 100."""
    channels, draws = 1000, 40
    layer = _layer(channels).train()
    gammas, betas = [], []
    for draw in range(draws):
        layer.generator.manual_seed(draw)
        beta = layer(torch.zeros(1, channels, 1, 1))
        layer.generator.manual_seed(draw)
        gammas.append(layer(torch.ones(1, channels, 1, 1)) - beta)
        betas.append(beta)
    gamma, beta = torch.cat(gammas).flatten(), torch.cat(betas).flatten()
    spread_gamma = math.log1p(math.exp(100 * 0.3)) / 100  # 0.3 + 9e-16
    spread_beta = math.log1p(math.exp(100 * 0.5)) / 100
    n = len(gamma)
    assert gamma.mean().item() == pytest.approx(1.0, abs=4 * spread_gamma / math.sqrt(n))
    assert beta.mean().item() == pytest.approx(0.0, abs=4 * spread_beta / math.sqrt(n))
    assert gamma.std().item() == pytest.approx(spread_gamma, rel=0.03)
    assert beta.std().item() == pytest.approx(spread_beta, rel=0.03)


def test_other_initial_thetas_give_other_spreads():
    layer = _layer(20000, gamma_init=0.05, beta_init=0.0).train()  # softplus(0, beta=100) = log(2) / 100
    out = layer(torch.ones(1, 20000, 1, 1)).flatten()
    beta = layer(torch.zeros(1, 20000, 1, 1)).flatten()
    assert out.std().item() == pytest.approx(math.sqrt(math.log1p(math.exp(5)) ** 2 / 1e4 + (math.log(2) / 100) ** 2),
                                             rel=0.05)
    assert beta.std().item() == pytest.approx(math.log(2) / 100, rel=0.05)


def test_one_draw_per_channel_per_forward_and_a_fresh_one_each_forward():
    layer = _layer(6).train()
    x = torch.ones(4, 6, 3, 3)
    first, second = layer(x), layer(x)
    per_channel = first[:1, :, :1, :1]
    assert torch.equal(first, per_channel.expand_as(first))  # every example and position of a channel alike
    assert not torch.allclose(first, second)


def test_the_noise_comes_from_the_seeded_generator():
    x = torch.randn(2, 5, 4, 4)
    torch.manual_seed(0)
    a = _layer(5, seed=7).train()(x)
    torch.manual_seed(1)  # torch's default stream plays no part
    b = _layer(5, seed=7).train()(x)
    assert torch.equal(a, b)
    assert not torch.equal(a, _layer(5, seed=8).train()(x))


def test_on_conv4_the_layers_follow_every_batch_norm_and_leave_the_state_dict_as_it_was():
    torch.manual_seed(0)
    backbone = Conv4(in_channels=1, image_size=28)
    plain = Conv4(in_channels=1, image_size=28)
    plain.load_state_dict(backbone.state_dict())
    keys = list(backbone.state_dict())
    layers = add_feature_wise(backbone, generator=torch.Generator().manual_seed(0))
    assert len(layers.layers) == 4 and all(len(layer.theta_gamma) == 64 for layer in layers.layers)
    assert list(backbone.state_dict()) == keys
    assert not {id(p) for p in layers.parameters()} & {id(p) for p in backbone.parameters()}
    x = torch.rand(6, 1, 28, 28)

    backbone.eval(), plain.eval()
    assert torch.equal(backbone(x), plain(x))  # eval mode: the plain backbone, whatever the layers' mode
    backbone.train(), plain.train()
    noisy = backbone(x)
    assert not torch.allclose(noisy, plain(x))
    layers.enabled = False
    assert torch.equal(backbone(x), plain(x))
    layers.enabled = True
    assert not torch.allclose(backbone(x), noisy)  # a fresh draw
    layers.remove()
    assert torch.equal(backbone(x), plain(x))


def test_the_thetas_get_a_gradient_in_training_mode_only():
    torch.manual_seed(0)
    backbone = Conv4(in_channels=1, image_size=28)
    layers = add_feature_wise(backbone)
    backbone(torch.rand(4, 1, 28, 28)).pow(2).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in layers.parameters())
    layers.zero_grad(set_to_none=True)
    backbone.eval()
    backbone(torch.rand(4, 1, 28, 28)).pow(2).sum().backward()
    assert all(p.grad is None for p in layers.parameters())


def test_a_backbone_without_batch_norm_is_refused():
    with pytest.raises(ValueError, match="has no BatchNorm2d"):
        add_feature_wise(torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3)))
