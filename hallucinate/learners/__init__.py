"""Learners: ``forward(support, support_labels, query) -> logits [n_query, n_way]``, pure on every call."""
from ..registry import Registry
from .protonet import PrototypicalNetworks, class_means, squared_euclidean

LEARNERS = Registry("learner")
LEARNERS["protonet"] = PrototypicalNetworks

__all__ = ["LEARNERS", "PrototypicalNetworks", "class_means", "squared_euclidean"]
