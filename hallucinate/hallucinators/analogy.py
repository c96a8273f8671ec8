"""The analogy hallucinator of Hariharan & Girshick 2017: ``a : b :: seed : G(seed, a, b)``, where ``(a, b)`` are
two real examples of one base class; G learns which of the base classes' intra-class variations carry over.

Departures from the paper, and why: Hariharan & Girshick mine analogies between k-means centroids of each base
class; here an episode's own examples stand in for the centroids, so the generator trains inside the episodic loop
with the learner (it also gets the learner's loss, as Wang et al. 2018 do). G starts as the plain vector analogy
``seed + (b - a)`` and learns a correction; the paper's G starts from scratch."""
import numpy as np
import torch
from torch import nn

from .functional import Hallucinator, TrainingStep


class AnalogyGenerator(nn.Module):
    """``G(seed, [a, b]) = seed + (b - a) + MLP([seed, a, b])``; its noise is a pair ``(a, b)`` drawn from a bank
    of real base-class pairs that training fills (``remember``) and checkpoints carry."""

    def __init__(self, feature_dim: int, hidden: int, bank_size: int):
        super().__init__()
        self.feature_dim = feature_dim
        self.net = nn.Sequential(nn.Linear(3 * feature_dim, hidden), nn.LeakyReLU(0.2),
                                 nn.Linear(hidden, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, feature_dim))
        nn.init.normal_(self.net[-1].weight, std=1e-3)
        nn.init.zeros_(self.net[-1].bias)
        self.register_buffer("bank", torch.zeros(bank_size, 2 * feature_dim))
        self.register_buffer("banked", torch.zeros((), dtype=torch.long))  # pairs written so far (ring buffer)
        # ... and the same count on the host, where each draw and each write needs it: reading the buffer there would
        # make every training step wait for the device. Loading a state dict sets it from the buffer.
        self.banked_count = 0
        self.register_load_state_dict_post_hook(_count_from_buffer)

    def forward(self, seed: torch.Tensor, pair: torch.Tensor) -> torch.Tensor:
        a, b = pair.split(self.feature_dim, dim=1)
        return seed + (b - a) + self.net(torch.cat([seed, pair], dim=1))

    def sample_noise(self, n: int, like: torch.Tensor, rng: torch.Generator | None = None) -> torch.Tensor:
        filled = min(self.banked_count, len(self.bank))
        if filled == 0:
            raise RuntimeError("the analogy hallucinator's bank of base-class pairs is empty: train it first "
                               "(episodic training fills the bank)")
        index = torch.randint(filled, (n,), generator=rng, device=self.bank.device)
        return self.bank[index].to(like.dtype)

    @torch.no_grad()
    def remember(self, pairs: torch.Tensor) -> None:
        """Write ``pairs`` ``[n, 2 * feature_dim]`` into the bank, oldest first out."""
        slots = (self.banked_count + torch.arange(len(pairs), device=pairs.device)) % len(self.bank)
        self.bank[slots] = pairs.to(self.bank.dtype)
        self.banked += len(pairs)
        self.banked_count += len(pairs)


def _count_from_buffer(generator: AnalogyGenerator, incompatible_keys) -> None:
    generator.banked_count = int(generator.banked)


def within_class_pairs(grouped: torch.Tensor) -> torch.Tensor:
    """``[n_way, n, D]`` real features, n >= 2 -> ``[n_way, n, 2D]``: each example paired with the next one of its
    class (cyclically), so every example is an ``a`` once and a ``b`` once."""
    return torch.cat([grouped, grouped.roll(-1, dims=1)], dim=2)


def analogy_loss(generator: AnalogyGenerator, grouped: torch.Tensor) -> torch.Tensor:
    """Hariharan & Girshick's regression: for each within-class pair ``(c, d)``, the pair ``(a, b)`` of *another*
    class whose offset ``b - a`` points most nearly the way ``d - c`` does, and the error of ``G(c, a, b)`` against
    ``d``, relative to ``|d - c|^2`` so the loss does not depend on the features' scale."""
    n_way, n, dim = grouped.shape
    pairs = within_class_pairs(grouped).flatten(0, 1)
    offsets = nn.functional.normalize(pairs[:, dim:] - pairs[:, :dim], dim=1)
    similarity = offsets @ offsets.T
    classes = torch.arange(n_way, device=grouped.device).repeat_interleave(n)
    similarity = similarity.masked_fill(classes[:, None] == classes[None, :], -2)
    analogous = pairs[similarity.argmax(1)]
    c, d = pairs[:, :dim], pairs[:, dim:]
    error = (generator(c, analogous) - d).pow(2).sum(1)
    return (error / (d - c).pow(2).sum(1).clamp_min(1e-8)).mean()


class AnalogyHallucinator(Hallucinator):
    per_process_state = True  # each process would bank its own episodes' pairs

    def __init__(self, *, feature_dim: int, hidden: int = 256, bank_size: int = 512, analogy_weight: float = 1.0,
                 synthetic_mass: float | None = None):
        super().__init__()
        self.generator = AnalogyGenerator(feature_dim, hidden, bank_size)
        self.analogy_weight = analogy_weight
        self.synthetic_mass = synthetic_mass

    def training_step(self, support, support_labels, query, query_labels, *, n_way, n_per_class, rng=None,
                      class_ids=None) -> TrainingStep:
        """Bank the pairs of the episode's real features (support and query, detached) first, so that this
        episode's synthetic examples can already use them, and add the weighted analogy loss."""
        k_shot, q_query = len(support) // n_way, len(query) // n_way
        grouped = torch.cat([support.detach().unflatten(0, (n_way, k_shot)),
                             query.detach().unflatten(0, (n_way, q_query))], 1)
        self.generator.remember(within_class_pairs(grouped).flatten(0, 1))
        step = super().training_step(support, support_labels, query, query_labels, n_way=n_way,
                                     n_per_class=n_per_class, rng=rng)
        step.losses["analogy"] = self.analogy_weight * analogy_loss(self.generator, grouped)
        return step

    def before_validation(self, model: nn.Module, base_split, *, seed: int, device: torch.device,
                          precision: str) -> None:
        refill_bank(model, base_split, seed=seed, device=device, precision=precision)


def refill_bank(model, split, *, seed: int, device: torch.device, precision: str = "fp32") -> None:
    """Fill ``model.hallucinator``'s bank with pairs of *evaluation-mode* features of ``split``'s (base) classes:
    the pairs banked during training are training-mode features (batch-norm batch statistics), on another scale
    than the features the model is validated, saved and tested with. Each pair is two distinct images of a random
    class, chosen by ``seed``."""
    from ..evaluation.episodes import embed_split

    generator = model.hallucinator.generator
    labels = np.asarray(split.labels)
    members = {c: np.flatnonzero(labels == c) for c in np.unique(labels)}
    classes = [c for c, indices in members.items() if len(indices) >= 2]
    rng = np.random.default_rng(seed)
    chosen = rng.choice(classes, size=len(generator.bank))
    indices = [int(i) for c in chosen for i in rng.choice(members[c], size=2, replace=False)]
    features = embed_split(model, split, device=device, precision=precision, indices=indices)
    generator.remember(features.reshape(len(chosen), -1))
