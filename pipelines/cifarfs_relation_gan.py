"""Relation networks on CIFAR-FS with the calibrated GAN hallucinator, in two stages (see cifarfs_protonet_gan.py for
the design). Stage 1 is pipelines/cifarfs_relation.py's run, unchanged, into OUT/stage1. Stage 2 freezes its
embedding and trains the hallucinator together with the relation module on 5-way 1-shot 15-query episodes of the
base classes' 64x6x6 feature maps (flattened, 2304 numbers): a class's synthetic maps join its support maps in the
weighted mean the relation module compares with each query. The hallucinator's settings are the CIFAR-FS ProtoNet
pipeline's, not tuned for relation networks, except three: 1000 stage-2 episodes instead of 3000, for the CPU
budget (an episode with 500 synthetic maps of 2304 numbers took about 1 s on two cores), and two that keep the
checkpoint under 5 MiB, a generator and critic of 64 hidden units (256 would be 9.4 MB on 2304 numbers) and base
statistics left out of the checkpoint (64 classes x 2304 x 17 numbers, 10 MB), which `hallucinate.load` recomputes
from the train split."""
from hallucinate.pipeline import run_episodic
from hallucinate.training import EpisodicConfig

CONFIG = EpisodicConfig(dataset="cifar_fs", image_size=32, augment="cifar_crop_flip", val_n_way=5, val_k_shot=1,
                        backbone="conv4_maps", learner="relation", n_way=5, k_shot=1, q_query=15, episodes=4000,
                        lr=1e-3, lr_step=1000, lr_gamma=0.5,
                        hallucinator="gan", gan_generator="calibrated", n_synthetic=100, synthetic_mass=2.0,
                        calibration_alpha=0.0, calibration_rank=16, calibration_in_checkpoint=False,
                        hallucinator_hidden=64, critic_hidden=64, adversarial_weight=0.1, per_sample_weight=1.0,
                        hallucinator_episodes=1000, hallucinator_n_way=5, hallucinator_k_shot=1,
                        hallucinator_q_query=15, hallucinator_lr=1e-4)


def run(config: EpisodicConfig = CONFIG, **options) -> dict:
    return run_episodic(config, **options)
