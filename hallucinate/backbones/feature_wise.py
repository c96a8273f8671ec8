"""Feature-wise transformation layers (Tseng et al., ICLR 2020): after a batch norm, in training only, each channel is
scaled by ``1 + eps * softplus(theta_gamma)`` and shifted by ``eps' * softplus(theta_beta)``, with ``eps, eps' ~
N(0, 1)`` drawn afresh per channel at every forward (``softplus`` with ``beta=100``, as their code has it).

The layers ride on forward hooks of a backbone's ``BatchNorm2d`` modules rather than replacing them, so that the
backbone's ``state_dict`` keeps the plain classifier's keys: a model trained with them loads as the plain model
(`hallucinate.load`, `hallucinate eval`), and the layers' own parameters are kept beside it. A hook transforms only
while its batch norm is in training mode: ``model.eval()`` turns the layers off with the statistics, as in Tseng et
al.'s code; `FeatureWiseLayers.enabled` turns them off in training too."""
import torch
from torch import nn


class FeatureWiseTransformation(nn.Module):
    """``[B, C, H, W] -> [B, C, H, W]``: ``gamma * x + beta`` in training mode (while ``enabled``), the identity
    otherwise. ``gamma = 1 + eps * softplus(theta_gamma)``, ``beta = eps' * softplus(theta_beta)``, one draw of
    ``eps, eps'`` per channel (``[1, C, 1, 1]``) from ``generator`` (torch's default stream when None) per call."""

    def __init__(self, channels: int, *, gamma_init: float = 0.3, beta_init: float = 0.5,
                 generator: torch.Generator | None = None):
        super().__init__()
        self.theta_gamma = nn.Parameter(torch.full((channels,), float(gamma_init)))
        self.theta_beta = nn.Parameter(torch.full((channels,), float(beta_init)))
        self.generator = generator
        self.enabled = True

    def sample(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One draw of the scale and the shift ``[1, C, 1, 1]``: the scale's noise first, then the shift's."""
        shape = (1, len(self.theta_gamma), 1, 1)
        noise = [torch.randn(shape, generator=self.generator, device=like.device, dtype=self.theta_gamma.dtype)
                 for _ in range(2)]
        spread_gamma = nn.functional.softplus(self.theta_gamma, beta=100).view(shape)
        spread_beta = nn.functional.softplus(self.theta_beta, beta=100).view(shape)
        return 1 + noise[0] * spread_gamma, noise[1] * spread_beta

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and self.enabled):
            return x
        gamma, beta = self.sample(x)
        return gamma.to(x.dtype) * x + beta.to(x.dtype)


class FeatureWiseLayers(nn.Module):
    """The layers `add_feature_wise` put after a backbone's batch norms, in the order of the backbone's modules:
    their parameters (``parameters()``, ``state_dict()``), ``enabled`` for all of them, and `remove`."""

    def __init__(self, layers: list[FeatureWiseTransformation]):
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self._handles = []

    @property
    def enabled(self) -> bool:
        return all(layer.enabled for layer in self.layers)

    @enabled.setter
    def enabled(self, on: bool) -> None:
        for layer in self.layers:
            layer.enabled = on

    def remove(self) -> None:
        """Take the hooks off the backbone: it is the plain backbone again."""
        for handle in self._handles:
            handle.remove()
        self._handles = []


def add_feature_wise(backbone: nn.Module, *, gamma_init: float = 0.3, beta_init: float = 0.5,
                     generator: torch.Generator | None = None) -> FeatureWiseLayers:
    """Put a `FeatureWiseTransformation` after every ``BatchNorm2d`` of ``backbone`` (each of Conv-4's four blocks),
    on forward hooks; each transforms only while its batch norm is in training mode. The layers are not submodules
    of ``backbone``: its ``state_dict``, ``parameters()`` and ``train()``/``eval()`` are as before."""
    norms = [module for module in backbone.modules() if isinstance(module, nn.BatchNorm2d)]
    if not norms:
        raise ValueError(f"{type(backbone).__name__} has no BatchNorm2d to put feature-wise transformation layers "
                         f"after")
    parameter = next(backbone.parameters())
    layers = FeatureWiseLayers([
        FeatureWiseTransformation(norm.num_features, gamma_init=gamma_init, beta_init=beta_init,
                                  generator=generator).to(parameter.device) for norm in norms])
    for norm, layer in zip(norms, layers.layers):
        layers._handles.append(norm.register_forward_hook(_transform_after(layer)))
    return layers


def _transform_after(layer: FeatureWiseTransformation):
    def hook(norm: nn.BatchNorm2d, inputs, output: torch.Tensor) -> torch.Tensor:
        return layer(output) if norm.training else output
    return hook
