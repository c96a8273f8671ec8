"""The settings of an episodic training run: a frozen dataclass that pipelines fill and `--set` overrides."""
import dataclasses
import typing
from dataclasses import dataclass


@dataclass(frozen=True)
class EpisodicConfig:
    dataset: str = "omniglot"
    image_size: int = 28
    backbone: str = "conv4"
    learner: str = "protonet"
    matching_fce: bool = False  # matching networks: full context embeddings (support BiLSTM, query attention LSTM)
    relation_hidden: int = 8  # relation networks: width of the relation module's hidden layer
    maml_inner_steps: int = 1  # MAML / ANIL: gradient steps on the support set, in training and at test time
    maml_inner_lr: float = 0.4
    maml_first_order: bool = False
    finetune_steps: int = 100  # Baseline / Baseline++: SGD passes over the support set (batches of 4) fitting a new head
    finetune_lr: float = 0.01
    pretrain_epochs: int = 0  # Baseline / Baseline++: epochs of mini-batch training on the base classes first
    pretrain_batch_size: int = 64
    hallucinator: str = "none"  # "none" or a name in HALLUCINATORS: mlp, gan, analogy, calibration (test time only)
    n_synthetic: int = 5  # M: synthetic examples added to each class of the support set
    noise_dim: int = 64
    hallucinator_hidden: int = 256
    critic_hidden: int = 256
    adversarial_weight: float = 0.1
    anti_collapse_weight: float = 1.0
    gradient_penalty_weight: float = 10.0
    critic_lr: float = 1e-3
    analogy_weight: float = 1.0  # analogy hallucinator: weight of its analogy regression loss
    calibration_k: int = 2  # distribution calibration: nearest base classes borrowed from (Yang et al.: 2)
    calibration_alpha: float = 0.21  # ... added to the covariance's diagonal (Yang et al.'s mini-ImageNet value)
    calibration_tukey: float = 0.5  # ... Tukey's power transform exponent (Yang et al.: 0.5)
    init_from: str = ""  # a checkpoint whose best backbone weights start the run (Baseline/++: skips pre-training)
    n_way: int = 60
    k_shot: int = 5
    q_query: int = 5
    episodes: int = 5000
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
    precision: str = "auto"  # "auto" (bf16 where supported), "bf16" or "fp32" for the backbone
    channels_last: bool = True

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def changed_settings(saved: dict, config, ignore: tuple[str, ...] = ()) -> list[str]:
    """The settings of ``config`` that differ from a checkpoint's ``saved`` ones, except ``ignore``. A setting the
    checkpoint lacks (added to the code after it was written) counts as its default."""
    defaults = type(config)().as_dict()
    return [key for key, value in config.as_dict().items()
            if key not in ignore and saved.get(key, defaults[key]) != value]


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
