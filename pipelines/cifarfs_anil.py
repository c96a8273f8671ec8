"""ANIL on CIFAR-FS: MAML's inner loop on a linear 5-way head over the Conv-4 features, the backbone trained in the
outer loop only; 5-way 1-shot 15-query episodes, 5 inner SGD steps of learning rate 0.1 (ten times MAML's 0.01,
since only a linear head adapts: a starting point, not a tuned value)."""
from hallucinate.pipeline import run_episodic
from hallucinate.training import EpisodicConfig

CONFIG = EpisodicConfig(dataset="cifar_fs", image_size=32, augment="cifar_crop_flip", val_n_way=5, val_k_shot=1,
                        backbone="conv4", learner="anil", maml_inner_steps=5, maml_inner_lr=0.1,
                        maml_first_order=False, n_way=5, k_shot=1, q_query=15, episodes=10000, lr=1e-3, lr_step=1000,
                        lr_gamma=1.0)


def run(config: EpisodicConfig = CONFIG, **options) -> dict:
    return run_episodic(config, **options)
