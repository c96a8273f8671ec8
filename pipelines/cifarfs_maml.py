"""MAML on CIFAR-FS: the whole Conv-4 and a 5-way head adapted on each support set with Finn et al.'s mini-ImageNet
inner loop (5 SGD steps of learning rate 0.01, second-order outer gradients), batch statistics at test time as in the
paper; 5-way 1-shot 15-query episodes, one episode per outer step (Finn et al.: meta-batches of 4 on mini-ImageNet)."""
from hallucinate.pipeline import run_episodic
from hallucinate.training import EpisodicConfig

CONFIG = EpisodicConfig(dataset="cifar_fs", image_size=32, augment="cifar_crop_flip", val_n_way=5, val_k_shot=1,
                        backbone="pixels", learner="maml", maml_inner_steps=5, maml_inner_lr=0.01,
                        maml_first_order=False, n_way=5, k_shot=1, q_query=15, episodes=20000, lr=1e-3, lr_step=1000,
                        lr_gamma=1.0)


def run(config: EpisodicConfig = CONFIG, **options) -> dict:
    return run_episodic(config, **options)
