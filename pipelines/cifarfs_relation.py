"""Relation networks on CIFAR-FS: the 64x6x6 feature maps of Sung et al.'s embedding at 32 pixels, a learned
relation module, mean squared error on one-hot targets; 5-way 1-shot 15-query episodes as in Bertinetto et al.'s
CIFAR-FS comparison, CIFAR augmentation, 5-way 1-shot validation."""
from hallucinate.pipeline import run_episodic
from hallucinate.training import EpisodicConfig

CONFIG = EpisodicConfig(dataset="cifar_fs", image_size=32, augment="cifar_crop_flip", val_n_way=5, val_k_shot=1,
                        backbone="conv4_maps", learner="relation", n_way=5, k_shot=1, q_query=15, episodes=4000,
                        lr=1e-3, lr_step=1000, lr_gamma=0.5)


def run(config: EpisodicConfig = CONFIG, **options) -> dict:
    return run_episodic(config, **options)
