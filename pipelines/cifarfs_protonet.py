"""Prototypical networks on CIFAR-FS (32x32 RGB, Bertinetto et al.'s 64/16/20 class split), Snell et al.'s recipe
carried over from Omniglot: higher-way training episodes than the test episodes, Adam 1e-3 halved every 1000 episodes,
the best weights on validation episodes kept.

Chosen, and why:
- 20-way 5-shot 5-query training episodes: Snell et al. found training with more ways than testing helps; 60 ways
  (the Omniglot recipe) is impossible with 64 training classes without nearly exhausting them every episode, and 20
  is what Snell et al. use on mini-ImageNet, whose split is the same size. 5 queries (their mini-ImageNet recipe
  uses 15) keeps an episode at 200 images, half of what 15 queries need.
- 4000 episodes, lr halved every 1000: the Omniglot pipeline's length, so the two runs cost about the same; a
  starting point, not a tuned schedule.
- "cifar_crop_flip" augmentation (pad to 40, random 32x32 crop, horizontal flip): the usual CIFAR augmentation;
  with 500 images per class (this copy lacks CIFAR-100's 100 test images per class) overfitting is the risk.
- Validation on 5-way 1-shot episodes: the 16 validation classes allow at most 16 ways, and 5-way 1-shot is the
  harder of the two settings CIFAR-FS results are reported in.
"""
from hallucinate.pipeline import run_episodic
from hallucinate.training import EpisodicConfig

CONFIG = EpisodicConfig(dataset="cifar_fs", image_size=32, backbone="conv4", learner="protonet", hallucinator="none",
                        n_way=20, k_shot=5, q_query=5, episodes=4000, lr=1e-3, lr_step=1000, lr_gamma=0.5,
                        augment="cifar_crop_flip", val_n_way=5, val_k_shot=1)


def run(config: EpisodicConfig = CONFIG, **options) -> dict:
    return run_episodic(config, **options)
