"""The settings of an Attention-RPN run on Omniglot-Det (Fan et al., CVPR 2020): a frozen dataclass that the pipeline
fills and `--set` overrides. The model's sizes, the 2-way contrastive episodes it trains on, the schedule, and the
warm start from a base detector's backbone."""
from dataclasses import dataclass
from typing import ClassVar

from ..training.config import SavedConfig


@dataclass(frozen=True)
class AttentionRPNConfig(SavedConfig):
    task: ClassVar[str] = "detection_attention_rpn"  # not a setting: what tells this task's checkpoints apart

    width: int = 64  # backbone: Conv-4 channels (stride 8)
    relation_channels: int = 64  # the hidden width of the global and patch relation heads
    # warm start: the backbone of a base detector checkpoint (the TFA pipeline's); "" starts from random weights
    init_from: str = "checkpoints/omniglot_detection_tfa_conv4.pt"
    frozen_blocks: int = 2  # with a warm start, the first Conv-4 blocks stay as they are (FewX's FREEZE_AT)
    # 2-way contrastive episodes: a base query canvas, a positive and a negative base class, support_shots each
    support_shots: int = 3
    episodes_per_step: int = 4
    rois_per_episode: int = 128  # N of FewX's sampling: at most N/4 foreground, twice as many hard negatives
    steps: int = 3000
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-4
    warmup_steps: int = 100
    lr_decay_at: float = 0.8  # the fraction of steps after which the rate is a tenth
    precision: str = "fp32"  # "fp32", "bf16" (autocast on the backbone; the heads stay in float32) or "auto"
    channels_last: bool = True  # the backbone's weights in that memory layout: faster convolutions on CPU
    val_canvases: int = 100  # few-shot validation: base canvases of the train drawers, scored against base supports
    val_every: int = 500
    checkpoint_every: int = 100
    log_every: int = 20
    max_nonfinite_steps: int = 10  # consecutive steps with a NaN or inf loss (each skipped) before the run stops
    seed: int = 0
    num_workers: int = 1  # processes generating episodes

    def __post_init__(self):
        if not 0 < self.lr_decay_at <= 1:
            raise ValueError(f"lr_decay_at must be a fraction of the run in (0, 1], got {self.lr_decay_at}")
        if not 0 <= self.frozen_blocks <= 4:
            raise ValueError(f"frozen_blocks must be 0..4 (Conv-4 has four blocks), got {self.frozen_blocks}")
        for name in ("support_shots", "episodes_per_step", "rois_per_episode", "width", "relation_channels"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
