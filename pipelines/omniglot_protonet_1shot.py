"""Prototypical networks on Omniglot trained on 60-way *1-shot* 5-query episodes (otherwise Snell et al.'s recipe, as
omniglot_protonet.py): the best plain Omniglot model in the project at 1-shot and at 5-shot (test: 98.58 / 95.02 at
5- and 20-way 1-shot against the 5-shot-trained model's 98.05 / 93.35), so it is stage 1 of
omniglot_protonet_gan.py. `checkpoints/omniglot_protonet_conv4.pt`."""
from hallucinate.pipeline import run_episodic
from hallucinate.training import EpisodicConfig

CONFIG = EpisodicConfig(dataset="omniglot", backbone="conv4", learner="protonet", hallucinator="none",
                        n_way=60, k_shot=1, q_query=5, episodes=4000, lr=1e-3, lr_step=1000, lr_gamma=0.5)


def run(config: EpisodicConfig = CONFIG, **options) -> dict:
    return run_episodic(config, **options)
