import torch

from hallucinate.learners import PrototypicalNetworks


def test_logits_match_hand_computed_values():
    support = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 4.0]])
    support_labels = torch.tensor([0, 0, 1])  # prototypes (1, 0) and (0, 4)
    query = torch.tensor([[1.0, 1.0], [0.0, 3.0]])
    # (1,1): to (1,0) -> 1, to (0,4) -> 1 + 9 = 10; (0,3): to (1,0) -> 1 + 9 = 10, to (0,4) -> 1
    expected = -torch.tensor([[1.0, 10.0], [10.0, 1.0]])
    assert torch.allclose(PrototypicalNetworks()(support, support_labels, query), expected)


def test_classes_with_different_counts_use_their_own_means():
    support = torch.tensor([[0.0], [3.0], [6.0], [10.0]])
    logits = PrototypicalNetworks()(support, torch.tensor([0, 0, 0, 1]), torch.tensor([[3.0]]))
    assert torch.allclose(logits, -torch.tensor([[0.0, 49.0]]))
