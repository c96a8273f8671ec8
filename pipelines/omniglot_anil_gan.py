"""ANIL on Omniglot with the calibrated GAN hallucinator, in two stages (see cifarfs_protonet_gan.py for the design).
Stage 1 is pipelines/omniglot_anil.py's run, unchanged, into OUT/stage1. Stage 2 freezes its backbone and trains the
hallucinator together with ANIL's head initialisation on 5-way 1-shot 15-query episodes of the base classes'
features: the synthetic features are extra support rows for the inner loop that adapts the head, weighted by their
support weights in its loss. The settings of the hallucinator are the Omniglot ProtoNet pipeline's, not tuned for
ANIL."""
from hallucinate.pipeline import run_episodic
from hallucinate.training import EpisodicConfig

CONFIG = EpisodicConfig(dataset="omniglot", backbone="conv4", learner="anil",
                        maml_inner_steps=1, maml_inner_lr=0.4, maml_first_order=False,
                        n_way=5, k_shot=1, q_query=15, episodes=10000, lr=1e-3, lr_step=1000, lr_gamma=1.0,
                        val_n_way=5, val_k_shot=1,
                        hallucinator="gan", gan_generator="calibrated", n_synthetic=100, synthetic_mass=1.0,
                        calibration_alpha=0.0, calibration_rank=2, adversarial_weight=0.1, per_sample_weight=1.0,
                        hallucinator_episodes=1000, hallucinator_n_way=5, hallucinator_k_shot=1,
                        hallucinator_q_query=15, hallucinator_lr=1e-4)


def run(config: EpisodicConfig = CONFIG, **options) -> dict:
    return run_episodic(config, **options)
