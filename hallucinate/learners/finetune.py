"""Baseline and Baseline++ (Chen et al., "A Closer Look at Few-shot Classification", ICLR 2019): the backbone is
pre-trained as an ordinary classifier over every base class (`hallucinate.training.pretrain`), then frozen; each
episode fits a new linear (Baseline) or cosine (Baseline++) classifier on its support features."""
import math

import torch
from torch import nn

from ..episode import ways


def cosine_scale(n_classes: int) -> float:
    """CloserLookFewShot's ``distLinear`` scale: 2 for up to 200 classes, 10 above (Omniglot's 4112 base classes)."""
    return 2.0 if n_classes <= 200 else 10.0


def cosine_logits(x: torch.Tensor, weight: torch.Tensor, scale: float) -> torch.Tensor:
    """``[n, D], [C, D] -> [n, C]``: ``scale * cos(x_i, w_c)``."""
    normalize = nn.functional.normalize
    return scale * normalize(x, dim=1) @ normalize(weight, dim=1).T


class CosineClassifier(nn.Module):
    """``logits[i, c] = scale * cos(x_i, w_c)``: Baseline++'s classifier, in pre-training and in fine-tuning.

    (CloserLookFewShot's ``distLinear`` also learns a norm per class through weight normalisation; this is the
    paper's plain cosine.)"""

    def __init__(self, in_features: int, n_classes: int, *, scale: float | None = None, device=None):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_classes, in_features, device=device))
        self.scale = cosine_scale(n_classes) if scale is None else scale
        bound = 1 / math.sqrt(in_features)  # nn.Linear's initialisation
        nn.init.uniform_(self.weight, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return cosine_logits(x, self.weight, self.scale)


HEADS = {"linear": nn.Linear, "cosine": CosineClassifier}


def linear_gradient(weight: torch.Tensor, x: torch.Tensor, targets: torch.Tensor,
                    example_weights: torch.Tensor | None = None) -> torch.Tensor:
    """Gradient of the mean cross-entropy of ``x @ weight.T`` (the bias is ``weight``'s last column and ``x``'s
    last column is ones) against one-hot ``targets``, each example's term scaled by ``example_weights``."""
    error = torch.softmax(x @ weight.T, 1) - targets
    if example_weights is not None:
        error = error * example_weights.unsqueeze(1)
    return error.T @ x / len(x)


def cosine_gradient(weight: torch.Tensor, x: torch.Tensor, targets: torch.Tensor, scale: float,
                    example_weights: torch.Tensor | None = None) -> torch.Tensor:
    """Gradient of the mean cross-entropy of ``scale * cos(x, weight)`` for unit rows ``x``: through the direction
    ``w / |w|`` of each class weight, so it is orthogonal to ``w`` and shrinks as ``|w|`` grows. Each example's
    term is scaled by ``example_weights``."""
    norm = weight.norm(dim=1, keepdim=True)
    direction = weight / norm
    error = torch.softmax(scale * x @ direction.T, 1) - targets
    if example_weights is not None:
        error = error * example_weights.unsqueeze(1)
    d_direction = scale * error.T @ x / len(x)
    return (d_direction - direction * (d_direction * direction).sum(1, keepdim=True)) / norm


class FineTuneClassifier(nn.Module):
    """Fits a fresh ``head`` ("linear" or "cosine") on the support features, then classifies the query with it.

    Chen et al.'s recipe, as their code runs it: ``passes`` passes over the (detached) support set in a random order,
    in mini-batches of ``batch_size``, SGD with momentum 0.9, dampening 0.9 and weight decay 1e-3 (so a 5-way 1-shot
    episode takes 100 x 2 steps, a 5-way 5-shot one 100 x 7). The steps are `torch.optim.SGD`'s with the cross-entropy
    gradient written out: autograd and the optimizer cost about 4x more per step, and there are 200 steps an
    episode. The head's initialisation (``nn.Linear``'s) and the orders come from a generator seeded with ``seed``
    inside every call, so the same inputs give the same logits, and the global random state is left alone.

    Hallucinated support features are more support rows, each example's loss scaled by its support weight over the
    support set's mean weight. A mini-batch holds about ``batch_size`` times the heaviest example's weight rather than
    ``batch_size`` rows: with equal weights that is Chen et al.'s recipe, and 100 synthetic examples a class that
    weigh 2 in all (real ones 1) make each mini-batch larger instead of each pass 25 times longer (12,600 steps a
    5-way 1-shot episode).
    Fitting runs in float32 whatever the grad mode or autocast it is called under; the logits stay differentiable
    with respect to ``query``."""

    def __init__(self, head: str = "linear", *, passes: int = 100, lr: float = 0.01, batch_size: int = 4,
                 seed: int = 0):
        super().__init__()
        if head not in HEADS:
            raise ValueError(f"unknown head {head!r}; valid heads: {', '.join(HEADS)}")
        self.head, self.passes, self.lr, self.batch_size, self.seed = head, passes, lr, batch_size, seed

    def forward(self, support: torch.Tensor, support_labels: torch.Tensor, query: torch.Tensor,
                support_weights: torch.Tensor | None = None, *, n_way: int | None = None) -> torch.Tensor:
        n_way = ways(support_labels, n_way)
        scale = cosine_scale(n_way)
        generator = torch.Generator().manual_seed(self.seed)
        with torch.no_grad(), torch.autocast(support.device.type, enabled=False):
            x = support.float()
            if self.head == "linear":  # the bias as one more weight column, on a column of ones
                x = torch.cat([x, x.new_ones(len(x), 1)], 1)
            else:
                x = nn.functional.normalize(x, dim=1)
            bound = 1 / math.sqrt(support.shape[1])
            weight = torch.empty(n_way, x.shape[1]).uniform_(-bound, bound, generator=generator).to(x.device)
            orders = torch.rand(self.passes, len(x), generator=generator).argsort(1).to(x.device)
            targets = nn.functional.one_hot(support_labels, n_way).float()
            relative, rows = None, self.batch_size
            if support_weights is not None:
                relative = support_weights.float() / support_weights.float().mean()
                rows = max(1, round(self.batch_size * len(x) * float(relative.max() / relative.sum())))
            momentum = None
            for order in orders:
                for batch in order.split(rows):
                    batch_weights = None if relative is None else relative[batch]
                    if self.head == "linear":
                        gradient = linear_gradient(weight, x[batch], targets[batch], batch_weights)
                    else:
                        gradient = cosine_gradient(weight, x[batch], targets[batch], scale, batch_weights)
                    gradient = gradient + 1e-3 * weight  # weight decay
                    momentum = gradient if momentum is None else 0.9 * momentum + (1 - 0.9) * gradient
                    weight = weight - self.lr * momentum
        with torch.autocast(query.device.type, enabled=False):
            if self.head == "linear":
                return nn.functional.linear(query.float(), weight[:, :-1], weight[:, -1])
            return cosine_logits(query.float(), weight, scale)


# finetune_steps counts passes over the support set: Chen et al.'s "100 iterations", which their code runs as
# 100 epochs of mini-batches of 4.
def baseline(*, feature_shape: tuple[int, ...], finetune_steps: int, finetune_lr: float) -> FineTuneClassifier:
    return FineTuneClassifier("linear", passes=finetune_steps, lr=finetune_lr)


def baseline_pp(*, feature_shape: tuple[int, ...], finetune_steps: int, finetune_lr: float) -> FineTuneClassifier:
    return FineTuneClassifier("cosine", passes=finetune_steps, lr=finetune_lr)
