"""The settings of a few-shot segmentation run on Cluttered Omniglot: a frozen dataclass that pipelines fill and
`--set` overrides (`hallucinate.training.override` takes any such dataclass)."""
from dataclasses import dataclass
from typing import ClassVar

from ..training.config import SavedConfig


@dataclass(frozen=True)
class SegmentationConfig(SavedConfig):
    task: ClassVar[str] = "segmentation"  # not a setting: what tells this task's checkpoints from classification's

    clutter: int = 4  # characters per scene, in training and validation: 4, 8, 16, 32, 64, 128 or 256
    same_drawer: bool = True  # references are the target's own drawing (the paper's task), else another drawer's
    k_shot: int = 1  # references per scene
    width: int = 64  # backbone: Conv-4 channels
    pooled: int = 2  # ... blocks that end in a 2x2 max-pool (2: a 24x24 feature map of a 96-pixel scene)
    context_blocks: int = 0  # dilated 3x3 blocks after Conv-4 at feature resolution (dilations 2, 4, ...)
    ink_input: bool = False  # the backbone sees the brightest colour channel alone (the refinement all three)
    cosine_scale: float = 20.0  # PANet's
    refinement: bool = True  # a light decoder on the upsampled similarity maps and the scene (else PANet's none)
    alignment_weight: float = 0.0  # PANet's prototype alignment loss (PAR), lambda; 0: off (PANet: 1)
    hallucinator: str = "none"  # "none" or a hallucinator trained by the segmentation loss alone: mlp
    n_synthetic: int = 5  # synthetic foreground features added to each scene's pooled reference features
    shot_aware_weights: bool = True  # their weights sum to synthetic_mass (else 1 each, as a real reference)
    synthetic_mass: float = 1.0
    noise_dim: int = 64
    hallucinator_hidden: int = 256
    steps: int = 3000
    batch_size: int = 16  # scenes per step, each with its own references
    lr: float = 1e-3
    val_subset: str = "val-one-shot"
    val_images: int = 500
    val_every: int = 500
    checkpoint_every: int = 250
    log_every: int = 50
    max_nonfinite_steps: int = 10  # consecutive steps with a NaN or inf loss (each skipped) before the run stops
    seed: int = 0
    num_workers: int = 1  # processes generating training scenes

