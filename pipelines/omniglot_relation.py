"""Relation networks (Sung et al. 2018) on Omniglot: the embedding keeps 64x5x5 feature maps (no padding in the
first two blocks, no pooling in the last two), a learned relation module scores each (class, query) pair, mean squared
error against one-hot targets. Trained on 20-way 1-shot 3-query episodes (Sung et al.: 20-way 1-shot 10-query
for their 20-way results; 3 queries keep the 1200 pairs an episode scores affordable on a CPU), Adam 1e-3 halved
every 1000 episodes; best weights on 20-way 1-shot validation kept."""
from hallucinate.pipeline import run_episodic
from hallucinate.training import EpisodicConfig

CONFIG = EpisodicConfig(dataset="omniglot", backbone="conv4_maps", learner="relation", hallucinator="none",
                        n_way=20, k_shot=1, q_query=3, episodes=2000, lr=1e-3, lr_step=1000, lr_gamma=0.5)


def run(config: EpisodicConfig = CONFIG, **options) -> dict:
    return run_episodic(config, **options)
