"""Siamese networks on CIFAR-FS: same/different pairs scored by a learned weighted L1 distance on Conv-4
features; 20-way 1-shot 5-query episodes (one same and 19 different pairs per query), CIFAR augmentation, 5-way
1-shot validation."""
from hallucinate.pipeline import run_episodic
from hallucinate.training import EpisodicConfig

CONFIG = EpisodicConfig(dataset="cifar_fs", image_size=32, augment="cifar_crop_flip", val_n_way=5, val_k_shot=1,
                        backbone="conv4", learner="siamese", n_way=20, k_shot=1, q_query=5, episodes=4000, lr=1e-3,
                        lr_step=1000, lr_gamma=0.5)


def run(config: EpisodicConfig = CONFIG, **options) -> dict:
    return run_episodic(config, **options)
