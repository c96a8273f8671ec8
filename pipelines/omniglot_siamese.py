"""Siamese networks (Koch et al. 2015) on Omniglot: one Conv-4 embeds both images of a pair, a learned weighted L1
distance and a sigmoid score them same or different. An N-way 1-shot episode is N pairs per query, one same and
N-1 different (the loss weights the same pair up to balance them); a query goes to the class of its most likely
match. Trained on 20-way 1-shot 5-query episodes, Adam 1e-3 halved every 1000 episodes; best weights on 20-way
1-shot validation kept."""
from hallucinate.pipeline import run_episodic
from hallucinate.training import EpisodicConfig

CONFIG = EpisodicConfig(dataset="omniglot", backbone="conv4", learner="siamese", hallucinator="none",
                        n_way=20, k_shot=1, q_query=5, episodes=2000, lr=1e-3, lr_step=1000, lr_gamma=0.5)


def run(config: EpisodicConfig = CONFIG, **options) -> dict:
    return run_episodic(config, **options)
