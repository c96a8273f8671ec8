"""Prototypical networks on CIFAR-FS with the calibrated GAN hallucinator, in two stages.

Stage 1 is pipelines/cifarfs_protonet.py's run, unchanged (20-way 5-shot episodes, the best plain CIFAR-FS model in
the project), into OUT/stage1. Stage 2 freezes that embedding and trains the hallucinator on 5-way 1-shot
15-query episodes of the base classes' features (Adam 1e-4, the best of 3000 episodes on validation kept): a
generator that starts at distribution calibration (the seed's two nearest base classes' mean and spread, compact
covariances kept in the checkpoint) and learns a correction,
against a conditional WGAN-GP critic whose real samples are other examples of the seed's class, with AFHN's
per-sample classification term. A class's M = 100 synthetic examples weigh kappa = synthetic_mass in all against
its K real ones, so their share of the prototype, kappa / (kappa + K), fades with K.

Chosen on validation episodes (5-way 1-shot, benchmarks/hallucination_recipe.py): calibration_alpha 0 (Yang et
al.'s 0.21 is far worse on these features, docs/cifar_fs_hallucinators.json), the stage-2 episode shape and
learning rate, and synthetic_mass. To reuse a finished stage 1,
pass its checkpoint: --set init_from=checkpoints/cifarfs_protonet_conv4.pt (with --set seed=2, its seed)."""
from hallucinate.pipeline import run_episodic
from hallucinate.training import EpisodicConfig

CONFIG = EpisodicConfig(dataset="cifar_fs", image_size=32, backbone="conv4", learner="protonet",
                        n_way=20, k_shot=5, q_query=5, episodes=4000, lr=1e-3, lr_step=1000, lr_gamma=0.5,
                        augment="cifar_crop_flip", val_n_way=5, val_k_shot=1,
                        hallucinator="gan", gan_generator="calibrated", n_synthetic=100, synthetic_mass=2.0,
                        calibration_alpha=0.0, calibration_rank=16, adversarial_weight=0.1, per_sample_weight=1.0,
                        hallucinator_episodes=3000, hallucinator_n_way=5, hallucinator_k_shot=1,
                        hallucinator_q_query=15, hallucinator_lr=1e-4)


def run(config: EpisodicConfig = CONFIG, **options) -> dict:
    return run_episodic(config, **options)
