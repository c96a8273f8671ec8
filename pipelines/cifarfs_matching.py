"""Matching networks on CIFAR-FS: the Omniglot pipeline's recipe (20-way 1-shot 5-query episodes, learned
inverse temperature on the cosine attention, no full context embeddings) with the usual CIFAR augmentation and
5-way 1-shot validation (16 validation classes)."""
from hallucinate.pipeline import run_episodic
from hallucinate.training import EpisodicConfig

CONFIG = EpisodicConfig(dataset="cifar_fs", image_size=32, augment="cifar_crop_flip", val_n_way=5, val_k_shot=1,
                        backbone="conv4", learner="matching", n_way=20, k_shot=1, q_query=5, episodes=4000, lr=1e-3,
                        lr_step=1000, lr_gamma=0.5)


def run(config: EpisodicConfig = CONFIG, **options) -> dict:
    return run_episodic(config, **options)
