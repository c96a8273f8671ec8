"""Baseline++ (Chen et al., "A Closer Look at Few-shot Classification", ICLR 2019) on Omniglot: as Baseline
(`omniglot_baseline.py`: 5 epochs of batch size 16 over the 4112 base classes, Adam 1e-3, no augmentation, about
16 minutes on 2 CPU cores), but both classifiers are cosine ones: ``10 * cos(x, w_c)`` over the 4112 base classes in
pre-training, ``2 * cos(x, w_c)`` over each episode's classes in fine-tuning (Chen et al.'s scales: 2 up to 200
classes, 10 above). One epoch alone reached 90.5% on 1000 5-way 1-shot test episodes (Chen et al.: 95.4% after 5)."""
from hallucinate.pipeline import run_episodic
from hallucinate.training import EpisodicConfig

CONFIG = EpisodicConfig(dataset="omniglot", backbone="conv4", learner="baseline_pp", hallucinator="none",
                        pretrain_epochs=5, pretrain_batch_size=16, lr=1e-3, augment="none",
                        finetune_steps=100, finetune_lr=0.01)


def run(config: EpisodicConfig = CONFIG, **options) -> dict:
    return run_episodic(config, **options)
