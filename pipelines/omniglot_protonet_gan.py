"""Prototypical networks on Omniglot with the calibrated GAN hallucinator, in two stages (see
cifarfs_protonet_gan.py for the design).

Stage 1 is pipelines/omniglot_protonet_1shot.py's run, unchanged (60-way 1-shot episodes, the best plain Omniglot
model in the project), into OUT/stage1. Stage 2
freezes that embedding and trains the hallucinator on 20-way 1-shot 15-query episodes of the base classes'
features. Omniglot has 4112 base classes (characters and their rotations), so each keeps only 2 principal directions
of its covariance (calibration_rank), to keep the checkpoint under 5 MiB; with 20 drawings a class, a covariance
has at most 19 directions anyway. synthetic_mass and hallucinator_episodes were chosen on 20-way 1-shot validation
episodes (benchmarks/hallucination_recipe.py). To reuse a finished stage 1:
--set init_from=checkpoints/omniglot_protonet_conv4.pt."""
from hallucinate.pipeline import run_episodic
from hallucinate.training import EpisodicConfig

CONFIG = EpisodicConfig(dataset="omniglot", backbone="conv4", learner="protonet",
                        n_way=60, k_shot=1, q_query=5, episodes=4000, lr=1e-3, lr_step=1000, lr_gamma=0.5,
                        hallucinator="gan", gan_generator="calibrated", n_synthetic=100, synthetic_mass=0.5,
                        calibration_alpha=0.0, calibration_rank=2, adversarial_weight=0.1, per_sample_weight=1.0,
                        hallucinator_episodes=1000, hallucinator_n_way=20, hallucinator_k_shot=1,
                        hallucinator_q_query=15, hallucinator_lr=1e-3)


def run(config: EpisodicConfig = CONFIG, **options) -> dict:
    return run_episodic(config, **options)
