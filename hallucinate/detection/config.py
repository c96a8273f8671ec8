"""The settings of a few-shot detection run on Omniglot-Det: a frozen dataclass that pipelines fill and `--set`
overrides (`hallucinate.training.override` takes any such dataclass). Base training's settings, then the
fine-tuning's (TFA's second stage), which `hallucinate eval` applies to each K-shot set, then the hallucinated RoI
features that can join that fine-tuning (`hallucination`)."""
from dataclasses import dataclass
from typing import ClassVar

from ..training.config import SavedConfig

FINETUNE_MODES = ("last_layer", "all")  # TFA's; "all" is its "FRCN+ft-full" baseline
PREDICTORS = ("fc", "cosine")
HALLUCINATORS = ("none", "calibration")  # of RoI features in last-layer fine-tuning (`hallucination`)


@dataclass(frozen=True)
class DetectionConfig(SavedConfig):
    task: ClassVar[str] = "detection"  # not a setting: what tells this task's checkpoints from the others'

    width: int = 64  # backbone: Conv-4 channels (stride 8)
    representation_size: int = 256  # the box head's two fc layers
    # pre-training backbone, box head and classifier on ground-truth boxes alone (Adam), batch_size canvases a step
    pretrain_steps: int = 2000  # 0: the detector starts from random weights
    pretrain_lr: float = 1e-3
    # base training: SGD with momentum on base canvases generated on the fly, linear warm-up, then step decay
    steps: int = 3000
    batch_size: int = 8  # canvases per step
    lr: float = 0.02
    momentum: float = 0.9
    weight_decay: float = 1e-4
    warmup_steps: int = 100
    lr_decay_at: float = 0.8  # the fraction of steps after which the rate is a tenth
    precision: str = "fp32"  # "fp32", "bf16" (autocast: the backbone computes in bf16, the heads in float32) or "auto"
    val_canvases: int = 200  # base canvases of the train drawers, other than the training ones: bAP50 to watch
    val_every: int = 500
    checkpoint_every: int = 100
    log_every: int = 20
    max_nonfinite_steps: int = 10  # consecutive steps with a NaN or inf loss (each skipped) before the run stops
    seed: int = 0
    num_workers: int = 1  # processes generating training canvases
    # fine-tuning on a K-shot set (TFA): the last layer (or everything) over base + novel classes
    predictor: str = "cosine"  # "cosine" (TFA w/ cos, scale cosine_scale) or "fc" (TFA w/ fc)
    cosine_scale: float = 20.0
    finetune: str = "last_layer"  # one of FINETUNE_MODES
    finetune_steps_per_shot: int = 200  # TFA's schedules grow linearly with K
    finetune_batch_size: int = 16
    finetune_lr: float = 0.01
    finetune_momentum: float = 0.9
    finetune_weight_decay: float = 1e-4
    # hallucinated RoI features in last-layer fine-tuning: "none", or "calibration" (distribution calibration fitted
    # on the box head's features of base-class foreground RoIs). Each step adds n_synthetic synthetic RoI features for
    # each novel class with a canvas in the step, to the classification loss only, weighing synthetic_mass in all
    # against its real RoIs at 1 each (about 7 a class a step at K = 1). n_synthetic and synthetic_mass were chosen
    # on validation, not on the test canvases (benchmarks/detection_hallucination_recipe.py, its JSON in docs/):
    # n_synthetic in {5, 20, 50} x synthetic_mass in {0.5, 2, 8} at K = 1 over K-shot seeds 0-2, on 300 canvases of
    # new drawings by the train drawers; the mass decides (0.5: +0.5 nAP50, 2: +1.1, 8: +1.1 at 0.4 bAP50), the
    # count hardly does, so the fewest draws at mass 2
    hallucinator: str = "none"
    n_synthetic: int = 5
    synthetic_mass: float = 2.0
    calibration_k: int = 2  # nearest base classes a novel RoI borrows its statistics from (Yang et al.: 2)
    # added to the borrowed covariance's diagonal. Not Yang et al.'s 0.21: the box head's features are sparse
    # (post-ReLU; 114 of its 256 dimensions are never active on a base RoI), and an isotropic term that large would
    # put noise into dimensions no real RoI has; not 0 either, where the covariance's many zero eigenvalues make its
    # eigendecomposition fail to converge in float32
    calibration_alpha: float = 1e-3
    calibration_tukey: float = 0.5  # Tukey's power transform before the statistics (Yang et al.: 0.5)
    calibration_canvases: int = 1000  # base canvases of the train drawers whose RoIs give the statistics (~35 s)

    def __post_init__(self):
        if self.finetune not in FINETUNE_MODES:
            raise ValueError(f"finetune must be one of {', '.join(FINETUNE_MODES)}, got {self.finetune!r}")
        if not 0 < self.lr_decay_at <= 1:
            raise ValueError(f"lr_decay_at must be a fraction of the run in (0, 1], got {self.lr_decay_at}")
        if self.predictor not in PREDICTORS:
            raise ValueError(f"predictor must be one of {', '.join(PREDICTORS)}, got {self.predictor!r}")
        if self.hallucinator not in HALLUCINATORS:
            raise ValueError(f"hallucinator must be one of {', '.join(HALLUCINATORS)}, got {self.hallucinator!r}")
        if self.hallucinator != "none" and self.finetune != "last_layer":
            raise ValueError(f"hallucinated RoI features join last-layer fine-tuning only (finetune='last_layer'); "
                             f"got hallucinator={self.hallucinator!r} with finetune={self.finetune!r}")
        if self.n_synthetic < 1 or self.synthetic_mass <= 0:
            raise ValueError(f"n_synthetic must be >= 1 and synthetic_mass > 0, got n_synthetic={self.n_synthetic}, "
                             f"synthetic_mass={self.synthetic_mass}")
        if self.calibration_canvases < 1:
            raise ValueError(f"calibration_canvases must be >= 1, got {self.calibration_canvases}")
