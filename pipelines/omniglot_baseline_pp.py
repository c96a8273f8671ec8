"""Baseline++ (Chen et al., "A Closer Look at Few-shot Classification", ICLR 2019) on Omniglot: as Baseline
(`omniglot_baseline.py`: 5 epochs of batch size 16 over the 4112 base classes, Adam 1e-3, no augmentation), but both
classifiers are cosine ones: ``10 * cos(x, w_c)`` over the 4112 base classes in pre-training, ``2 * cos(x, w_c)``
over each episode's classes in fine-tuning (Chen et al.'s scales: 2 up to 200 classes, 10 above)."""
from hallucinate.pipeline import run_episodic
from hallucinate.training import EpisodicConfig

CONFIG = EpisodicConfig(dataset="omniglot", backbone="conv4", learner="baseline_pp", hallucinator="none",
                        pretrain_epochs=5, pretrain_batch_size=16, lr=1e-3, augment="none",
                        finetune_steps=100, finetune_lr=0.01)


def run(config: EpisodicConfig = CONFIG, **options) -> dict:
    return run_episodic(config, **options)
