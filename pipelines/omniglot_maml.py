"""MAML (Finn et al. 2017) on Omniglot: the whole Conv-4 and its linear head are adapted to each episode's support set
(the ``pixels`` backbone hands the learner the images themselves). 5-way 1-shot 15-query episodes, one inner SGD step
of learning rate 0.4, second-order outer gradients, Adam 1e-3 without decay; batch norm uses the statistics of the
batch at hand, in training and at test time, as in the paper. The best weights on 5-way 1-shot validation episodes are
kept (the head has five outputs, so this model is trained and evaluated 5-way only).

Where this differs from Finn et al.: they average the outer loss over a meta-batch of 32 tasks and take 1 inner step
in training but 3 at test time; we train on one episode per outer step and take the same number of inner steps
(``maml_inner_steps``) in training and at test time. Their Omniglot network uses strided convolutions where this
Conv-4 max-pools."""
from hallucinate.pipeline import run_episodic
from hallucinate.training import EpisodicConfig

CONFIG = EpisodicConfig(dataset="omniglot", backbone="pixels", learner="maml", hallucinator="none",
                        maml_inner_steps=1, maml_inner_lr=0.4, maml_first_order=False,
                        n_way=5, k_shot=1, q_query=15, episodes=20000, lr=1e-3, lr_step=1000, lr_gamma=1.0,
                        val_n_way=5, val_k_shot=1)


def run(config: EpisodicConfig = CONFIG, **options) -> dict:
    return run_episodic(config, **options)
