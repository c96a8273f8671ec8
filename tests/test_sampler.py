import numpy as np
import pytest
import torch

from hallucinate.data.sampler import EpisodeCollate, EpisodeSampler

LABELS = np.repeat(np.arange(10), 6)  # 10 classes of 6 examples


def test_support_and_query_are_disjoint_and_class_major():
    sampler = EpisodeSampler(LABELS, n_way=4, k_shot=2, q_query=3, episodes=20, seed=1)
    for indices in sampler:
        support, query = indices[:8], indices[8:]
        assert len(indices) == 4 * (2 + 3) and not set(support) & set(query)
        support_classes = LABELS[support].reshape(4, 2)
        query_classes = LABELS[query].reshape(4, 3)
        assert (support_classes == support_classes[:, :1]).all() and (query_classes == query_classes[:, :1]).all()
        assert list(support_classes[:, 0]) == list(query_classes[:, 0])
        assert len(set(support_classes[:, 0])) == 4  # classes without replacement


def test_same_seed_same_episodes_and_resume_continues():
    a = list(EpisodeSampler(LABELS, n_way=3, k_shot=1, q_query=2, episodes=10, seed=5))
    b = list(EpisodeSampler(LABELS, n_way=3, k_shot=1, q_query=2, episodes=10, seed=5))
    c = list(EpisodeSampler(LABELS, n_way=3, k_shot=1, q_query=2, episodes=10, seed=6))
    resumed = list(EpisodeSampler(LABELS, n_way=3, k_shot=1, q_query=2, episodes=10, seed=5, start=4))
    assert a == b and a != c and resumed == a[4:]


def test_ranks_take_turns_through_one_stream_of_episodes():
    one = list(EpisodeSampler(LABELS, n_way=3, k_shot=1, q_query=2, episodes=8, seed=5))
    ranks = [list(EpisodeSampler(LABELS, n_way=3, k_shot=1, q_query=2, episodes=4, seed=5, rank=r, world_size=2))
             for r in range(2)]
    assert [episode for step in zip(*ranks) for episode in step] == one
    resumed = EpisodeSampler(LABELS, n_way=3, k_shot=1, q_query=2, episodes=4, seed=5, start=1, rank=1, world_size=2)
    assert list(resumed) == ranks[1][1:]
    with pytest.raises(ValueError, match="got rank 2 of 2"):
        EpisodeSampler(LABELS, n_way=3, k_shot=1, q_query=2, episodes=4, rank=2, world_size=2)


def test_collate_remaps_labels_and_keeps_class_ids():
    sampler = EpisodeSampler(LABELS, n_way=3, k_shot=2, q_query=1, episodes=1, seed=0)
    indices = next(iter(sampler))
    images = [np.full((4, 4, 1), i, dtype=np.uint8) for i in range(len(LABELS))]
    episode = EpisodeCollate(3, 2, 1)([(images[i], int(LABELS[i])) for i in indices])
    assert episode.support.shape == (6, 1, 4, 4) and episode.query.shape == (3, 1, 4, 4)
    assert episode.support_labels.tolist() == [0, 0, 1, 1, 2, 2] and episode.query_labels.tolist() == [0, 1, 2]
    assert episode.n_way == 3 and episode.class_ids.tolist() == [int(LABELS[i]) for i in indices[:6:2]]
    assert torch.allclose(episode.support[:, 0, 0, 0] * 255, torch.tensor(indices[:6], dtype=torch.float))


def test_collate_refuses_items_out_of_order():
    items = [(np.zeros((2, 2, 1), np.uint8), label) for label in (0, 1, 1, 0)]
    with pytest.raises(ValueError, match="EpisodeSampler order"):
        EpisodeCollate(2, 1, 1)(items)


def test_too_many_ways_names_both_numbers():
    with pytest.raises(ValueError, match="20-way.*only 10 classes"):
        EpisodeSampler(LABELS, n_way=20, k_shot=1, q_query=1, episodes=1)


def test_too_many_shots_and_queries_names_the_numbers():
    with pytest.raises(ValueError, match="4 shots \\+ 3 queries = 7 images per class.*has only 6"):
        EpisodeSampler(LABELS, n_way=2, k_shot=4, q_query=3, episodes=1)


def test_nonpositive_sizes_are_refused():
    with pytest.raises(ValueError, match="at least 1"):
        EpisodeSampler(LABELS, n_way=2, k_shot=0, q_query=3, episodes=1)
