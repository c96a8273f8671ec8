"""Baseline (Chen et al., "A Closer Look at Few-shot Classification", ICLR 2019) on Omniglot: Conv-4 pre-trained as
an ordinary classifier, a linear layer over all 4112 base classes (1028 characters x 4 rotations), Adam 1e-3; at test
time the backbone is frozen and each episode fits a new linear classifier on its support features (100 passes of SGD
over the support set in mini-batches of 4). After each epoch, 300 20-way 1-shot validation episodes are fine-tuned
the same way and the best weights are kept.

Chen et al.'s code trains Baseline and Baseline++ on Omniglot for 5 epochs of batch size 16, without augmentation; so
do we. Each epoch's images per second are in the run's metrics.jsonl: the shipped 2-epoch runs logged 147-331 on one
thread of a shared 2-core machine, at which 5 epochs of 82,240 images take 21-47 minutes.
No augmentation ("omniglot_affine" exists): Chen et al. use none on Omniglot, nor does the ProtoNet pipeline, and
5 epochs show each image only 5 times (the shipped Baseline++ run's training accuracy after one epoch: 3%), far from
overfitting."""
from hallucinate.pipeline import run_episodic
from hallucinate.training import EpisodicConfig

CONFIG = EpisodicConfig(dataset="omniglot", backbone="conv4", learner="baseline", hallucinator="none",
                        pretrain_epochs=5, pretrain_batch_size=16, lr=1e-3, augment="none",
                        finetune_steps=100, finetune_lr=0.01)


def run(config: EpisodicConfig = CONFIG, **options) -> dict:
    return run_episodic(config, **options)
