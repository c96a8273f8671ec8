"""Matching networks (Vinyals et al. 2016) on Omniglot: attention over cosine similarities to the support set,
without full context embeddings (Vinyals et al. report them as no help on Omniglot; `--set matching_fce=true` adds
them). Trained on 20-way 1-shot 5-query episodes, Adam 1e-3 halved every 1000 episodes; the best weights on 20-way
1-shot validation episodes are kept."""
from hallucinate.pipeline import run_episodic
from hallucinate.training import EpisodicConfig

CONFIG = EpisodicConfig(dataset="omniglot", backbone="conv4", learner="matching", hallucinator="none",
                        n_way=20, k_shot=1, q_query=5, episodes=2000, lr=1e-3, lr_step=1000, lr_gamma=0.5)


def run(config: EpisodicConfig = CONFIG, **options) -> dict:
    return run_episodic(config, **options)
