"""Learners: ``forward(support, support_labels, query, support_weights=None) -> logits [n_query, n_way]``, pure on
every call. ``support_weights`` ``[n_support]`` says how much each support example counts (none: 1 each); every
learner honours it (weighted class means, attention, pair scores, inner-loop and fitted-head losses). A caller that
knows the episode's number of ways passes it too, ``forward(..., n_way=N)``; otherwise the learner reads it from
the labels, which on a GPU makes the host wait for the device (the training loop passes it, so its steps never wait).

``LEARNERS`` maps a name to a keyword-only builder ``(feature_shape, **its settings) -> learner``: ``feature_shape``
is what the backbone's flat features unflatten to, the other keywords that learner's own settings, named as a task's
config names them; ``LEARNERS.build(name, config, feature_shape=...)`` takes them from a config.
A learner trained with a loss other than cross-entropy on its logits defines ``loss(logits, labels)``. One with a
part that computes at a precision of its own (relation networks' module) has a ``precision`` attribute ("fp32",
"bf16" or "auto"): `build_classifier` sets it to the config's, `hallucinate.load` to "fp32", and `evaluate` to the
precision it evaluates at, for its episodes."""
import torch
from torch import nn

from ..registry import Registry
from .matching import MatchingNetworks, matching
from .maml import MAML, anil, maml
from .finetune import CosineClassifier, FineTuneClassifier, baseline, baseline_pp
from .logistic import LogisticRegression, logistic
from .protonet import PrototypicalNetworks, class_means, protonet, squared_euclidean
from .relation import RelationNetworks, relation
from .siamese import SiameseNetworks, siamese

LEARNERS = Registry("learner")
LEARNERS["protonet"] = protonet
LEARNERS["baseline"] = baseline
LEARNERS["baseline_pp"] = baseline_pp
LEARNERS["logistic"] = logistic
LEARNERS["matching"] = matching
LEARNERS["relation"] = relation
LEARNERS["siamese"] = siamese
LEARNERS["maml"] = maml
LEARNERS["anil"] = anil


def episode_loss(learner: nn.Module, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The loss ``learner`` is trained with: its own ``loss`` if it has one, else cross-entropy."""
    if hasattr(learner, "loss"):
        return learner.loss(logits, labels)
    return nn.functional.cross_entropy(logits, labels)


__all__ = ["CosineClassifier", "FineTuneClassifier", "LEARNERS", "LogisticRegression", "MAML", "MatchingNetworks",
           "PrototypicalNetworks", "RelationNetworks", "SiameseNetworks", "anil", "baseline", "baseline_pp",
           "class_means", "episode_loss", "logistic", "maml", "matching", "protonet", "relation", "siamese",
           "squared_euclidean"]
