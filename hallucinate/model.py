"""The few-shot classifier a user trains and loads: backbone -> hallucinator -> learner, one learner contract."""
import torch
from torch import nn

from .backbones import BACKBONES
from .data import DATASETS
from .data.transforms import ImageTransform
from .hallucinators import HALLUCINATORS
from .learners import LEARNERS


class FewShotClassifier(nn.Module):
    """``forward(support images, support_labels, query images) -> logits [n_query, n_way]``.

    With a hallucinator and ``n_synthetic > 0``, each class of the embedded support set gets ``n_synthetic``
    synthetic features, with the support weights the hallucinator gives them, before the learner sees it;
    `set_hallucination` switches that on and off.
    ``transform`` turns a PIL image into the tensor ``forward`` expects.
    """

    def __init__(self, backbone: nn.Module, learner: nn.Module, hallucinator: nn.Module | None = None, *,
                 n_synthetic: int = 0, transform=None):
        super().__init__()
        self.backbone, self.learner, self.hallucinator = backbone, learner, hallucinator
        self.n_synthetic = n_synthetic
        self.transform = transform
        self.hallucinating = hallucinator is not None and n_synthetic > 0

    def set_hallucination(self, on: bool) -> "FewShotClassifier":
        if on and (self.hallucinator is None or self.n_synthetic == 0):
            raise ValueError("this classifier has no hallucinator (or n_synthetic is 0); it cannot hallucinate")
        self.hallucinating = on
        return self

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        return self.backbone(images)

    def classify_features(self, support: torch.Tensor, support_labels: torch.Tensor, query: torch.Tensor,
                          rng: torch.Generator | None = None) -> torch.Tensor:
        weights = None
        if self.hallucinating:
            support, support_labels, weights = self.hallucinator(support, support_labels, self.n_synthetic, rng)
        return self.learner(support, support_labels, query, weights)

    def forward(self, support: torch.Tensor, support_labels: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        return self.classify_features(self.embed(support), support_labels, self.embed(query))


def build_classifier(config) -> FewShotClassifier:
    """The classifier a config describes, through the registries (how `hallucinate.load` rebuilds a checkpoint)."""
    dataset = DATASETS[config.dataset]
    backbone = BACKBONES[config.backbone](in_channels=dataset.CHANNELS, image_size=config.image_size)
    if config.channels_last:  # about 2x faster convolutions on CPU (oneDNN), in training and in evaluation
        backbone.to(memory_format=torch.channels_last)
    hallucinator = None
    if config.hallucinator != "none":
        hallucinator = HALLUCINATORS.build(config.hallucinator, config, feature_dim=backbone.out_dim)
    learner = LEARNERS.build(config.learner, config, feature_shape=backbone.feature_shape)
    if hasattr(learner, "precision"):  # relation networks: their module computes in the backbone's precision
        learner.precision = config.precision
    return FewShotClassifier(backbone, learner, hallucinator, n_synthetic=config.n_synthetic,
                             transform=ImageTransform(dataset.prepare_image, config.image_size))


def fit_base_statistics(model: FewShotClassifier, train_split, *, precision: str, cache=None) -> None:
    """Hand ``model``'s hallucinator the base-class features of ``train_split`` (unaugmented, embedded by its frozen
    backbone, as stage 2 did before its first episode), for the statistics its checkpoint left out."""
    from .evaluation.episodes import feature_bank

    device = next(model.parameters()).device
    bank = feature_bank(model, train_split, device=device, precision=precision, cache=cache)
    model.hallucinator.before_training(bank, torch.as_tensor(train_split.labels, device=device))
