"""Baseline (Chen et al., "A Closer Look at Few-shot Classification", ICLR 2019) on CIFAR-FS (32x32 RGB,
Bertinetto et al.'s 64/16/20 class split): Conv-4 pre-trained as an ordinary classifier with a linear head over the
64 base classes, Adam 1e-3, batch size 16; at test time the backbone is frozen and each episode fits a new linear
classifier on its support features (100 passes of SGD over the support set in mini-batches of 4). After each epoch,
300 5-way 1-shot validation episodes (the 16 validation classes allow at most 16 ways) are fine-tuned the same way
and the best weights are kept.

Chen et al. trained Baseline for 400 epochs of batch size 16 on mini-ImageNet (200 on CUB, where 400 overfit);
CIFAR-FS is not in their paper. 400 epochs of its 32,000 base images would take days on 2 CPU cores: we train 15
(13-34 minutes at the 236-619 images/s the shipped Baseline++ run logged on one thread, plus a validation per epoch),
a starting point, not a tuned schedule. Augmentation "cifar_crop_flip" (pad to 40, random 32x32 crop, horizontal flip), Chen et al.'s
random crops and flips: a 64-way classifier over 500 images per class is the setting where pre-training overfits."""
from hallucinate.pipeline import run_episodic
from hallucinate.training import EpisodicConfig

CONFIG = EpisodicConfig(dataset="cifar_fs", image_size=32, backbone="conv4", learner="baseline",
                        hallucinator="none", pretrain_epochs=15, pretrain_batch_size=16, lr=1e-3,
                        augment="cifar_crop_flip", finetune_steps=100, finetune_lr=0.01, val_n_way=5, val_k_shot=1)


def run(config: EpisodicConfig = CONFIG, **options) -> dict:
    return run_episodic(config, **options)
