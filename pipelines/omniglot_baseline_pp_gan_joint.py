"""Baseline++ on Omniglot with the GAN hallucinator. First the pre-training of `omniglot_baseline_pp.py` (5 epochs of
batch size 16 over the 4112 base classes, written to OUT/pretrain); then, on that frozen backbone, 1000 episodes of
20-way 1-shot 5-query on the base classes train the GAN hallucinator (generator, critic, anti-collapse term, M = 5)
alone. The cosine classifier Baseline++ fits at test time cannot pass the generator a gradient (it is fitted by 100 SGD
steps inside the learner), so those episodes score the generator's output with prototypes on the frozen features.
At test time each class's synthetic features join its support features before the cosine classifier is fitted.

The earlier one-stage design, kept so that its checkpoints and the comparisons with it can be regenerated: the
noise GAN (gan_generator="noise"), every synthetic example weighing as much as a real one. `omniglot_baseline_pp_gan.py`
is the two-stage calibrated GAN that replaced it."""
from hallucinate.pipeline import run_episodic
from hallucinate.training import EpisodicConfig

CONFIG = EpisodicConfig(dataset="omniglot", backbone="conv4", learner="baseline_pp", hallucinator="gan",
                        gan_generator="noise", shot_aware_weights=False, n_synthetic=5,
                        pretrain_epochs=5, pretrain_batch_size=16, lr=1e-3, augment="none",
                        finetune_steps=100, finetune_lr=0.01,
                        n_way=20, k_shot=1, q_query=5, episodes=1000, lr_step=500, lr_gamma=0.5)


def run(config: EpisodicConfig = CONFIG, **options) -> dict:
    return run_episodic(config, **options)
