"""ANIL on Omniglot with the GAN hallucinator trained jointly: each training episode the generator adds 5 synthetic
features to each class of the support set, and they are simply extra support rows for the inner loop that adapts
the linear head. The query loss, taken after adaptation, trains backbone and generator together (through the inner
step); a class-conditional WGAN-GP critic and an anti-collapse term keep the synthetic features realistic and
diverse. Otherwise as the ANIL pipeline: 5-way 1-shot 15-query episodes, one inner step of learning rate 0.4, Adam
1e-3, 5-way 1-shot validation.

The earlier one-stage design, kept so that its checkpoints and the comparisons with it can be regenerated: the
noise GAN (gan_generator="noise"), every synthetic example weighing as much as a real one. `omniglot_anil_gan.py`
is the two-stage calibrated GAN that replaced it."""
from hallucinate.pipeline import run_episodic
from hallucinate.training import EpisodicConfig

CONFIG = EpisodicConfig(dataset="omniglot", backbone="conv4", learner="anil", hallucinator="gan",
                        gan_generator="noise", shot_aware_weights=False,
                        n_synthetic=5, adversarial_weight=0.1, anti_collapse_weight=1.0, critic_lr=1e-3,
                        maml_inner_steps=1, maml_inner_lr=0.4, maml_first_order=False,
                        n_way=5, k_shot=1, q_query=15, episodes=10000, lr=1e-3, lr_step=1000, lr_gamma=1.0,
                        val_n_way=5, val_k_shot=1)


def run(config: EpisodicConfig = CONFIG, **options) -> dict:
    return run_episodic(config, **options)
