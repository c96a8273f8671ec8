"""Prototypical networks on CIFAR-FS with the GAN hallucinator trained jointly (Wang et al. 2018; AFHN, Li et al.
2020): the Omniglot GAN pipeline's hallucinator settings on the CIFAR-FS ProtoNet pipeline's schedule.

Training episodes are 20-way *1-shot* 5-query, the regime hallucination is for (see omniglot_protonet_gan.py for
why a 5-shot-trained generator hurts 1-shot episodes); 20 ways for the reason cifarfs_protonet.py gives.

The earlier one-stage design, kept so that its checkpoints and the comparisons with it can be regenerated: the
noise GAN (gan_generator="noise"), every synthetic example weighing as much as a real one. `cifarfs_protonet_gan.py`
is the two-stage calibrated GAN that replaced it."""
from hallucinate.pipeline import run_episodic
from hallucinate.training import EpisodicConfig

CONFIG = EpisodicConfig(dataset="cifar_fs", image_size=32, backbone="conv4", learner="protonet", hallucinator="gan",
                        gan_generator="noise", shot_aware_weights=False,
                        n_synthetic=5, adversarial_weight=0.1, anti_collapse_weight=1.0, critic_lr=1e-3,
                        n_way=20, k_shot=1, q_query=5, episodes=4000, lr=1e-3, lr_step=1000, lr_gamma=0.5,
                        augment="cifar_crop_flip", val_n_way=5, val_k_shot=1)


def run(config: EpisodicConfig = CONFIG, **options) -> dict:
    return run_episodic(config, **options)
