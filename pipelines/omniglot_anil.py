"""ANIL (Raghu et al. 2020) on Omniglot: MAML's inner loop adapts only a linear head on the Conv-4 backbone's
features; the backbone is trained in the outer loop alone. 5-way 1-shot 15-query episodes, one inner SGD step of
learning rate 0.4, second-order outer gradients, Adam 1e-3 without decay, as in the MAML pipeline; the best weights on
5-way 1-shot validation episodes are kept (the head has five outputs: trained and evaluated 5-way only)."""
from hallucinate.pipeline import run_episodic
from hallucinate.training import EpisodicConfig

CONFIG = EpisodicConfig(dataset="omniglot", backbone="conv4", learner="anil", hallucinator="none",
                        maml_inner_steps=1, maml_inner_lr=0.4, maml_first_order=False,
                        n_way=5, k_shot=1, q_query=15, episodes=10000, lr=1e-3, lr_step=1000, lr_gamma=1.0,
                        val_n_way=5, val_k_shot=1)


def run(config: EpisodicConfig = CONFIG, **options) -> dict:
    return run_episodic(config, **options)
