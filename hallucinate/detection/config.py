"""The settings of a few-shot detection run on Omniglot-Det: a frozen dataclass that pipelines fill and `--set`
overrides (`hallucinate.training.override` takes any such dataclass). Base training's settings, then the
fine-tuning's (TFA's second stage), which `hallucinate eval` applies to each K-shot set."""
import dataclasses
from dataclasses import dataclass
from typing import ClassVar

FINETUNE_MODES = ("last_layer", "all")  # TFA's; "all" is its "FRCN+ft-full" baseline
PREDICTORS = ("fc", "cosine")


@dataclass(frozen=True)
class DetectionConfig:
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

    def __post_init__(self):
        if self.finetune not in FINETUNE_MODES:
            raise ValueError(f"finetune must be one of {', '.join(FINETUNE_MODES)}, got {self.finetune!r}")
        if not 0 < self.lr_decay_at <= 1:
            raise ValueError(f"lr_decay_at must be a fraction of the run in (0, 1], got {self.lr_decay_at}")
        if self.predictor not in PREDICTORS:
            raise ValueError(f"predictor must be one of {', '.join(PREDICTORS)}, got {self.predictor!r}")

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_saved(cls, saved: dict) -> "DetectionConfig":
        unknown = sorted(set(saved) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"the checkpoint's config has settings this version does not know: {unknown}")
        return cls(**saved)
