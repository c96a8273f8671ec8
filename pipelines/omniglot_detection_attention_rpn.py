"""Few-shot detection on Omniglot-Det with Attention-RPN and the multi-relation detector (Fan et al., CVPR 2020):
2-way contrastive training on the 100 base classes, each step 4 episodes of a base query canvas with a positive and a
negative class given by 3 support boxes each. The backbone starts from the TFA pipeline's base detector
(checkpoints/omniglot_detection_tfa_conv4.pt), its batch norm and first two blocks frozen; SGD 0.01 with momentum,
a 100-step warm-up and a tenfold decay at 80% of the run; 3000 steps (about 0.5-0.8 s each on one busy CPU thread
with one episode-generating worker: 30-40 min), a few-shot base AP50 on 20 validation canvases every 1000 steps. Novel classes are detected without fine-tuning:
`hallucinate eval CHECKPOINT --k-shot K` averages each class's K boxes of the K-shot sets into its prototype."""
from hallucinate.detection.attention_config import AttentionRPNConfig
from hallucinate.detection.attention_training import run_attention_rpn

CONFIG = AttentionRPNConfig(width=64, relation_channels=64, init_from="checkpoints/omniglot_detection_tfa_conv4.pt",
                            frozen_blocks=2, support_shots=3, episodes_per_step=4, steps=3000, lr=0.01,
                            warmup_steps=100, lr_decay_at=0.8, precision="auto", channels_last=True,
                            val_canvases=20, val_every=1000)


def run(config: AttentionRPNConfig = CONFIG, **options) -> dict:
    return run_attention_rpn(config, **options)
