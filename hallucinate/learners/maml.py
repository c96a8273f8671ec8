"""MAML (Finn et al. 2017) and its head-only variant ANIL (Raghu et al. 2020): a network adapted to each episode's
support set by a few steps of gradient descent inside ``forward``, then applied to the query set.

Batch norm as the paper does it: Finn et al. normalise with the statistics of the batch being processed, in training
and at test time, and keep no running averages, so the full-MAML network's Conv-4 is built with
``track_running_stats=False``. The support set and the query set are separate batches: each is normalised with its
own statistics (transductive, as in Finn et al.'s code)."""
import math

import torch
from torch import nn
from torch.func import functional_call

from ..backbones.conv4 import Conv4
from ..episode import ways


class MAML(nn.Module):
    """``forward(support, support_labels, query) -> logits [n_query, n_way]``: ``inner_steps`` steps of plain SGD
    (learning rate ``inner_lr``) on the support set's (support-weighted) cross-entropy, starting from ``network``'s
    parameters, then ``network`` with the adapted parameters applied to ``query``. ``network`` maps inputs to
    ``[B, n_way]`` logits.

    Pure on every call: the adapted parameters live only inside ``forward``; ``network`` is never modified (a network
    with batch norm should keep no running statistics, see the module's docstring). With grad enabled (training), the
    query loss backpropagates through the inner loop, to second order unless ``first_order`` (then the inner
    gradients are treated as constants, FOMAML). Under ``torch.no_grad()`` (evaluation) the inner loop still runs, on
    detached parameters, and the logits come back detached (``torch.inference_mode()`` cannot run it: RuntimeError).

    The head has a fixed number of ways: a network with 5 outputs only takes 5-way episodes (ValueError otherwise).
    """

    def __init__(self, network: nn.Module, *, inner_steps: int, inner_lr: float, first_order: bool):
        super().__init__()
        if inner_steps < 0:
            raise ValueError(f"inner_steps must be >= 0, got {inner_steps}")
        self.network = network
        self.inner_steps, self.inner_lr, self.first_order = inner_steps, inner_lr, first_order

    @property
    def n_way(self) -> int:
        """The fixed number of ways: the width of the network's last (linear) layer."""
        last = self.network[-1] if isinstance(self.network, nn.Sequential) else self.network
        return last.out_features

    def forward(self, support: torch.Tensor, support_labels: torch.Tensor, query: torch.Tensor,
                support_weights: torch.Tensor | None = None, *, n_way: int | None = None) -> torch.Tensor:
        if torch.is_inference_mode_enabled():
            raise RuntimeError("MAML adapts by gradient descent inside forward, which torch.inference_mode() forbids; "
                               "evaluate it under torch.no_grad() instead")
        n_way = ways(support_labels, n_way)
        differentiable = torch.is_grad_enabled()  # training: the outer loss backpropagates through the inner loop
        params = {name: p for name, p in self.network.named_parameters() if p.requires_grad}
        if not differentiable:
            params = {name: p.detach().requires_grad_() for name, p in params.items()}
            support = support.detach()
        with torch.enable_grad():
            for _ in range(self.inner_steps):
                logits = functional_call(self.network, params, (support,))
                self._check_ways(logits, n_way)
                loss = weighted_cross_entropy(logits, support_labels, support_weights)
                grads = torch.autograd.grad(loss, list(params.values()),
                                            create_graph=differentiable and not self.first_order)
                params = {name: p - self.inner_lr * g for (name, p), g in zip(params.items(), grads)}
        if not differentiable:
            params = {name: p.detach() for name, p in params.items()}
        logits = functional_call(self.network, params, (query,))
        self._check_ways(logits, n_way)
        return logits

    @staticmethod
    def _check_ways(logits: torch.Tensor, n_way: int) -> None:
        if logits.shape[-1] != n_way:
            raise ValueError(f"this MAML network has {logits.shape[-1]} outputs (a fixed number of ways) but the "
                             f"episode has {n_way} classes; train and evaluate it on {logits.shape[-1]}-way episodes")


def weighted_cross_entropy(logits: torch.Tensor, labels: torch.Tensor,
                           weights: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy averaged with ``weights`` ``[n]`` (none: the plain mean)."""
    if weights is None:
        return nn.functional.cross_entropy(logits, labels)
    weights = weights.to(logits.dtype)
    return (nn.functional.cross_entropy(logits, labels, reduction="none") * weights).sum() / weights.sum()


def maml(*, feature_shape: tuple[int, ...], n_way: int, maml_inner_steps: int, maml_inner_lr: float,
         maml_first_order: bool) -> MAML:
    """Full MAML: Conv-4 (batch statistics only, see the module's docstring) and a linear head, all adapted in the
    inner loop. Use it with the ``pixels`` backbone, whose features are the flattened images of ``feature_shape``.
    (Finn et al. use strided convolutions instead of max-pooling on Omniglot; this Conv-4 max-pools.)"""
    if len(feature_shape) != 3:
        raise ValueError(f"full MAML needs image-shaped features (C, H, W), got feature shape {tuple(feature_shape)}; "
                         f"use it with the 'pixels' backbone (or 'anil' on a backbone's features)")
    channels, height, _ = feature_shape
    body = Conv4(in_channels=channels, image_size=height, track_running_stats=False)
    network = nn.Sequential(nn.Unflatten(1, tuple(feature_shape)), body, nn.Linear(body.out_dim, n_way))
    return MAML(network, inner_steps=maml_inner_steps, inner_lr=maml_inner_lr, first_order=maml_first_order)


def anil(*, feature_shape: tuple[int, ...], n_way: int, maml_inner_steps: int, maml_inner_lr: float,
         maml_first_order: bool) -> MAML:
    """ANIL: only a linear head on the backbone's features is adapted in the inner loop; the backbone is trained in
    the outer loop alone. Hallucinated support features are simply extra support rows for the inner loop."""
    network = nn.Linear(math.prod(feature_shape), n_way)
    return MAML(network, inner_steps=maml_inner_steps, inner_lr=maml_inner_lr, first_order=maml_first_order)
