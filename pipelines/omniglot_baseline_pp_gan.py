"""Baseline++ on Omniglot with the calibrated GAN hallucinator, in two stages (see cifarfs_protonet_gan.py for the
design). Stage 1 is pipelines/omniglot_baseline_pp.py's run, unchanged (5 epochs of batch size 16 over the 4112 base
classes), into OUT/stage1. Stage 2 freezes that backbone and trains the hallucinator on 20-way 1-shot 5-query
episodes of the base classes' features. The cosine classifier Baseline++ fits at test time cannot pass the generator a
gradient (it is fitted by SGD inside the learner), so those episodes score the generator's output with prototypes on
the frozen features. At test time each class's synthetic features join its support features, at their support
weights, before the classifier is fitted. The hallucinator's settings are the Omniglot ProtoNet pipeline's."""
from hallucinate.pipeline import run_episodic
from hallucinate.training import EpisodicConfig

CONFIG = EpisodicConfig(dataset="omniglot", backbone="conv4", learner="baseline_pp",
                        pretrain_epochs=5, pretrain_batch_size=16, lr=1e-3, augment="none",
                        finetune_steps=100, finetune_lr=0.01,
                        hallucinator="gan", gan_generator="calibrated", n_synthetic=100, synthetic_mass=1.0,
                        calibration_alpha=0.0, calibration_rank=2, adversarial_weight=0.1, per_sample_weight=1.0,
                        hallucinator_episodes=1000, hallucinator_n_way=20, hallucinator_k_shot=1,
                        hallucinator_q_query=5, hallucinator_lr=1e-3)


def run(config: EpisodicConfig = CONFIG, **options) -> dict:
    return run_episodic(config, **options)
