"""A logistic-regression head fitted on each episode's support features (the fine-tune family; the classifier
distribution calibration and TFH test with): multinomial logistic regression with an L2 penalty, fitted inside
``forward``, on features passed through an optional transform that support and query
share (Tukey's power ``x -> sign(x) |x|^p``, then L2 normalisation). Hallucination on and off use the same head and
the same transform, so a transform is never counted as a hallucination gain."""
import torch
from torch import nn

from ..episode import ways

TRANSFORMS = ("none", "tukey", "l2", "tukey_l2")


def transform_features(x: torch.Tensor, transform: str, power: float) -> torch.Tensor:
    if transform not in TRANSFORMS:
        raise ValueError(f"unknown feature transform {transform!r}; valid transforms: {', '.join(TRANSFORMS)}")
    if transform in ("tukey", "tukey_l2"):
        x = x.sign() * x.abs().pow(power)
    if transform in ("l2", "tukey_l2"):
        x = nn.functional.normalize(x, dim=1)
    return x


class LogisticRegression(nn.Module):
    """``forward`` fits ``W, b`` minimising the support-weighted mean cross-entropy of ``scale * (x W^T + b)`` plus
    ``l2 * |W|^2 / 2``, then returns the query's logits. The problem is convex; it is solved by ``steps`` steps of
    Nesterov gradient descent from zero with the gradient written out (autograd and an optimizer cost several times
    more per step, and an evaluation fits a head per episode) at step size ``1 / L``, ``L`` the gradient's Lipschitz
    bound, so the same inputs give the same logits. ``scale`` lets unit-norm features reach confident logits with a
    moderate penalty. The fit runs in float32 on detached features; the logits are not differentiable with respect to
    the support set (train a hallucinator for this head with prototypes, as the training loop does)."""

    def __init__(self, *, transform: str = "tukey_l2", power: float = 0.5, l2: float = 1e-3, scale: float = 10.0,
                 steps: int = 100):
        super().__init__()
        if transform not in TRANSFORMS:
            raise ValueError(f"unknown feature transform {transform!r}; valid transforms: {', '.join(TRANSFORMS)}")
        if power <= 0 or l2 < 0 or scale <= 0 or steps < 1:
            raise ValueError(f"logistic regression needs power > 0, l2 >= 0, scale > 0 and steps >= 1; got "
                             f"power={power}, l2={l2}, scale={scale}, steps={steps}")
        self.transform, self.power, self.l2, self.scale, self.steps = transform, power, l2, scale, steps

    def forward(self, support: torch.Tensor, support_labels: torch.Tensor, query: torch.Tensor,
                support_weights: torch.Tensor | None = None, *, n_way: int | None = None) -> torch.Tensor:
        n_way = ways(support_labels, n_way)
        with torch.no_grad(), torch.autocast(support.device.type, enabled=False):
            x = transform_features(support.detach().float(), self.transform, self.power)
            x = torch.cat([x, x.new_ones(len(x), 1)], 1)  # the bias as one more weight column
            weights = torch.ones(len(x), device=x.device) if support_weights is None else support_weights.float()
            weights = (weights / weights.sum()).unsqueeze(1)
            targets = nn.functional.one_hot(support_labels, n_way).float()
            # Softmax cross-entropy has a Hessian of at most scale^2 |x|^2 / 2 per example.
            step = 1 / (self.scale ** 2 * x.pow(2).sum(1).max() / 2 + self.l2)
            weight = previous = x.new_zeros(n_way, x.shape[1])
            for t in range(1, self.steps + 1):
                look = weight + (t - 2) / (t + 1) * (weight - previous)
                error = (torch.softmax(self.scale * x @ look.T, 1) - targets) * weights
                gradient = self.scale * error.T @ x
                gradient[:, :-1] += self.l2 * look[:, :-1]
                previous, weight = weight, look - step * gradient
        with torch.autocast(query.device.type, enabled=False):
            q = transform_features(query.float(), self.transform, self.power)
            return self.scale * (q @ weight[:, :-1].T + weight[:, -1])


def logistic(*, feature_shape: tuple[int, ...], logistic_transform: str, logistic_power: float,
             logistic_l2: float) -> LogisticRegression:
    return LogisticRegression(transform=logistic_transform, power=logistic_power, l2=logistic_l2)
