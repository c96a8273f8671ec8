"""The settings of an episodic training run: a frozen dataclass that pipelines fill and `--set` overrides."""
import dataclasses
import typing
from dataclasses import dataclass


class SavedConfig:
    """What a frozen config dataclass needs to live in a checkpoint: ``as_dict`` to save it, ``from_saved`` to
    rebuild it (a setting the checkpoint lacks takes its default; one this version does not know is an error)."""

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_saved(cls, saved: dict):
        cls.refuse_unknown(saved)
        return cls(**{field.name: cls.saved_value(saved, field.name) for field in dataclasses.fields(cls)})

    @classmethod
    def saved_value(cls, saved: dict, name: str):
        """Setting ``name`` of a checkpoint's ``saved`` config; one it lacks (added to the code after it was
        written) takes the value that reproduces the code it was written by: its default, unless said otherwise."""
        return saved[name] if name in saved else cls.__dataclass_fields__[name].default

    @classmethod
    def refuse_unknown(cls, saved: dict) -> None:
        unknown = sorted(set(saved) - {field.name for field in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"the checkpoint's config has settings this version does not know: {unknown}")


@dataclass(frozen=True)
class EpisodicConfig(SavedConfig):
    dataset: str = "omniglot"
    image_size: int = 28
    backbone: str = "conv4"
    learner: str = "protonet"
    matching_fce: bool = False  # matching networks: full context embeddings (support BiLSTM, query attention LSTM)
    relation_hidden: int = 8  # relation networks: width of the relation module's hidden layer
    maml_inner_steps: int = 1  # MAML / ANIL: gradient steps on the support set, in training and at test time
    maml_inner_lr: float = 0.4
    maml_first_order: bool = False
    finetune_steps: int = 100  # Baseline / Baseline++: SGD passes over the support set (batches of 4) fitting a head
    finetune_lr: float = 0.01
    pretrain_epochs: int = 0  # Baseline / Baseline++: epochs of mini-batch training on the base classes first
    pretrain_batch_size: int = 64
    logistic_transform: str = "tukey_l2"  # logistic head: none, tukey, l2 or tukey_l2, on support and query alike
    logistic_power: float = 0.5  # ... Tukey's exponent
    logistic_l2: float = 1e-3  # ... L2 penalty on the weights
    hallucinator: str = "none"  # "none" or a name in HALLUCINATORS: gan, mlp, analogy, calibration (test time only)
    gan_generator: str = "calibrated"  # gan: "calibrated" (base-class statistics) or "noise" (the earlier design)
    n_synthetic: int = 5  # M: synthetic examples added to each class of the support set
    shot_aware_weights: bool = True  # a class's synthetic examples weigh synthetic_mass in all (else 1 each)
    synthetic_mass: float = 1.0  # kappa: their share of a class mean is kappa / (kappa + K), fading with K
    noise_dim: int = 64
    hallucinator_hidden: int = 256
    critic_hidden: int = 256
    adversarial_weight: float = 0.1
    anti_collapse_weight: float = 1.0  # noise GAN only
    per_sample_weight: float = 1.0  # calibrated GAN: each synthetic feature alone must classify the queries
    gradient_penalty_weight: float = 10.0
    critic_lr: float = 1e-3
    analogy_weight: float = 1.0  # analogy hallucinator: weight of its analogy regression loss
    calibration_k: int = 2  # calibration and calibrated GAN: nearest base classes borrowed from (Yang et al.: 2)
    calibration_alpha: float = 0.21  # ... added to the covariance's diagonal (Yang et al.'s mini-ImageNet value)
    calibration_tukey: float = 0.5  # ... Tukey's power transform exponent (Yang et al.: 0.5)
    calibration_rank: int = 16  # calibrated GAN: principal directions kept of each base class's covariance
    calibration_in_checkpoint: bool = True  # ... False: leave the statistics out, `hallucinate.load` recomputes them
    # Two stages when hallucinator_episodes > 0: stage 1 trains the embedding without a hallucinator (the settings
    # above and below, in OUT/stage1), stage 2 freezes it and trains the hallucinator (with the learner) on
    # hallucinator_* episodes of the base classes' features. 0: one stage, the hallucinator trained jointly.
    hallucinator_episodes: int = 0
    hallucinator_n_way: int = 20
    hallucinator_k_shot: int = 1
    hallucinator_q_query: int = 15
    hallucinator_lr: float = 1e-3
    init_from: str = ""  # a checkpoint whose best weights start the run: its backbone (Baseline/++: skips
    # pre-training); in a two-stage run, its backbone and learner as stage 1's result (stage 1 is not trained)
    n_way: int = 60
    k_shot: int = 5
    q_query: int = 5
    episodes: int = 5000
    # Episodes (tasks) whose mean gradient makes one optimizer step, for every learner (and the critic): MAML/ANIL's
    # meta-batch (Finn et al. average 32 tasks per outer step on Omniglot). episodes, lr_step and the *_every
    # intervals still count episodes (each process's, under torchrun), so a schedule means the same with any
    # meta-batch; an outer step takes the learning rate of its first episode. The run's length and the *_every
    # intervals must be multiples of it, so that checkpoints, logs, validations and the NaN guard fall between outer
    # steps.
    meta_batch: int = 1
    lr: float = 1e-3
    lr_step: int = 2000  # episodes between halvings (multiplied by lr_gamma)
    lr_gamma: float = 0.5
    augment: str = "none"
    val_every: int = 500
    val_episodes: int = 300
    val_n_way: int = 20
    val_k_shot: int = 1
    checkpoint_every: int = 250
    log_every: int = 50
    max_nonfinite_steps: int = 10  # consecutive steps with a NaN or inf loss (each skipped) before the run stops
    seed: int = 0
    num_workers: int = 1
    precision: str = "auto"  # "auto" (bf16 where supported), "bf16" or "fp32": the backbone's and relation module's
    channels_last: bool = True

    def __post_init__(self):
        """Refuse a meta-batch the run cannot be cut into, when the config is built: before any data is read."""
        if self.meta_batch == 1:  # every count is a multiple of 1; a value of the wrong type is `check_types`'s to name
            return
        if not isinstance(self.meta_batch, int) or self.meta_batch < 1:
            raise ValueError(f"meta_batch must be a whole number of episodes, at least 1, got {self.meta_batch!r}")
        counts = ("episodes", "hallucinator_episodes") if self.two_stage else ("episodes",)
        misfits = [f"{name}={getattr(self, name)}" for name in counts + ("checkpoint_every", "val_every", "log_every")
                   if getattr(self, name) % self.meta_batch]
        if misfits:
            raise ValueError(f"meta_batch={self.meta_batch} must divide the run's length and the checkpoint, "
                             f"validation and log intervals, which fall between outer steps; not {', '.join(misfits)}")

    @property
    def two_stage(self) -> bool:
        return self.hallucinator != "none" and self.hallucinator_episodes > 0

    def stage1(self) -> "EpisodicConfig":
        """Stage 1 of a two-stage run: this run without its hallucinator, every hallucinator and stage-2 setting at
        its default, so that it is the plain pipeline's run (and can be resumed as one)."""
        defaults = EpisodicConfig()
        return dataclasses.replace(self, **{name: getattr(defaults, name)
                                            for name in HALLUCINATOR_SETTINGS + ("init_from",)})

    @classmethod
    def saved_value(cls, saved: dict, name: str):
        if name not in saved and name in BEFORE_SETTING:
            return BEFORE_SETTING[name]
        return super().saved_value(saved, name)


# The settings of the hallucinator and of stage 2, which a run without a hallucinator does not use.
HALLUCINATOR_SETTINGS = ("hallucinator", "gan_generator", "n_synthetic", "shot_aware_weights", "synthetic_mass",
                         "noise_dim", "hallucinator_hidden", "critic_hidden", "adversarial_weight",
                         "anti_collapse_weight", "per_sample_weight", "gradient_penalty_weight", "critic_lr",
                         "analogy_weight", "calibration_k", "calibration_alpha", "calibration_tukey",
                         "calibration_rank", "calibration_in_checkpoint", "hallucinator_episodes", "hallucinator_n_way",
                         "hallucinator_k_shot", "hallucinator_q_query", "hallucinator_lr")
# Checkpoints written before these settings existed behaved as these values, not as today's defaults.
BEFORE_SETTING = {"gan_generator": "noise", "shot_aware_weights": False}


def changed_settings(saved: dict, config, ignore: tuple[str, ...] = ()) -> list[str]:
    """The settings of ``config`` that differ from a checkpoint's ``saved`` ones, except ``ignore``. A setting the
    checkpoint lacks (added to the code after it was written) counts as the value its code had (``saved_value``).
    Without a hallucinator on either side, the hallucinator's settings do nothing and are not compared."""
    saved_value = type(config).saved_value
    if getattr(config, "hallucinator", "none") == "none" and saved.get("hallucinator", "none") == "none":
        ignore = ignore + HALLUCINATOR_SETTINGS
    return [key for key in config.as_dict() if key not in ignore and saved_value(saved, key) != getattr(config, key)]


def field_types(config_class) -> dict[str, type]:
    hints = typing.get_type_hints(config_class)
    return {field.name: hints[field.name] for field in dataclasses.fields(config_class)}


def check_types(config, where: str = "config") -> None:
    """Refuse a config built in Python (a pipeline file's CONFIG) whose values do not have their fields' types."""
    for name, kind in field_types(type(config)).items():
        value = getattr(config, name)
        fits = isinstance(value, kind) and not (kind is int and isinstance(value, bool)) \
            or (kind is float and isinstance(value, int) and not isinstance(value, bool))
        if not fits:
            raise ValueError(f"{where}: setting {name!r} expects {kind.__name__}, got {value!r}")


def parse_value(text: str, kind: type):
    if kind is bool:
        if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
            raise ValueError(f"expected a boolean (true/false), got {text!r}")
        return text.lower() in ("true", "1", "yes")
    if kind is float and text.strip().lower() in ("inf", "-inf", "nan"):
        raise ValueError(f"expected a finite number, got {text!r}")
    return kind(text)


def override(config, assignments: list[str]):
    """Apply ``key=value`` strings to a frozen config; unknown keys and values of the wrong type are errors that
    list the valid keys with their types."""
    types_ = field_types(type(config))
    valid = ", ".join(f"{name} ({kind.__name__})" for name, kind in types_.items())
    changes = {}
    for assignment in assignments:
        key, sep, text = assignment.partition("=")
        key = key.strip()
        if not sep:
            raise ValueError(f"--set expects key=value, got {assignment!r}; valid keys: {valid}")
        if key not in types_:
            raise ValueError(f"unknown setting {key!r}; valid keys: {valid}")
        try:
            changes[key] = parse_value(text.strip(), types_[key])
        except ValueError as error:
            raise ValueError(f"setting {key!r} expects {types_[key].__name__}, got {text!r} ({error}); "
                             f"valid keys: {valid}") from None
    return dataclasses.replace(config, **changes)
