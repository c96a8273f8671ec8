"""Prototypical networks on Omniglot with Snell et al.'s recipe: 60-way 5-shot 5-query training episodes, Adam 1e-3
halved every 1000 episodes (Snell et al.: every 2000, over longer runs); the best weights on 20-way 1-shot validation episodes are kept."""
from hallucinate.pipeline import run_episodic
from hallucinate.training import EpisodicConfig

CONFIG = EpisodicConfig(dataset="omniglot", backbone="conv4", learner="protonet", hallucinator="none",
                        n_way=60, k_shot=5, q_query=5, episodes=4000, lr=1e-3, lr_step=1000, lr_gamma=0.5)


def run(config: EpisodicConfig = CONFIG, **options) -> dict:
    return run_episodic(config, **options)
