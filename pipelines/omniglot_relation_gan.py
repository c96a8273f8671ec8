"""Relation networks on Omniglot with the calibrated GAN hallucinator, in two stages (see cifarfs_protonet_gan.py for
the design). Stage 1 is pipelines/omniglot_relation.py's run, unchanged, into OUT/stage1. Stage 2 freezes its
embedding and trains the hallucinator together with the relation module on 20-way 1-shot 3-query episodes of the
base classes' 64x5x5 feature maps (flattened, 1600 numbers): a class's synthetic maps join its support maps in the
weighted mean the relation module compares with each query. The hallucinator's settings are the Omniglot ProtoNet
pipeline's, not tuned for relation networks, except four: 500 stage-2 episodes instead of 1000 and 3 queries a
class, as in stage 1, for the CPU budget (2000 synthetic maps of 1600 numbers make an episode cost about 1 s on two
idle cores, and 15 queries make 6000 pairs for the relation module); and two that keep the checkpoint under 5 MiB, a
generator and critic of 64 hidden units (256 would be 6.5 MB on 1600 numbers) and base statistics left out of the
checkpoint (4112 classes x 1600 x 3 numbers, 79 MB), which `hallucinate.load` recomputes from the train split."""
from hallucinate.pipeline import run_episodic
from hallucinate.training import EpisodicConfig

CONFIG = EpisodicConfig(dataset="omniglot", backbone="conv4_maps", learner="relation",
                        n_way=20, k_shot=1, q_query=3, episodes=2000, lr=1e-3, lr_step=1000, lr_gamma=0.5,
                        hallucinator="gan", gan_generator="calibrated", n_synthetic=100, synthetic_mass=0.5,
                        calibration_alpha=0.0, calibration_rank=2, calibration_in_checkpoint=False,
                        hallucinator_hidden=64, critic_hidden=64, adversarial_weight=0.1, per_sample_weight=1.0,
                        hallucinator_episodes=500, hallucinator_n_way=20, hallucinator_k_shot=1,
                        hallucinator_q_query=3, hallucinator_lr=1e-3)


def run(config: EpisodicConfig = CONFIG, **options) -> dict:
    return run_episodic(config, **options)
