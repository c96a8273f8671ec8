"""Loading pipeline files and the episode stream they compose: store -> sampler -> loader -> device -> backbone ->
hallucinator -> learner."""
import importlib.util
import sys
from pathlib import Path

import torch

from .data import open_store
from .data.sampler import EpisodeSampler
from .data.transforms import build_augmentation
from .device import resolve_device
from .model import build_classifier
from .training import CheckpointError, EpisodicConfig, load_checkpoint, train_episodic
from .training.config import check_types
from .training.pretrain import pretrain_backbone


def load_pipeline(path: str | Path):
    """Import a pipeline file; it must define ``CONFIG`` (a frozen dataclass) and ``run(config, **options)``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no pipeline file at {path}")
    spec = importlib.util.spec_from_file_location(f"hallucinate_pipeline_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
    except TypeError as error:  # e.g. CONFIG = EpisodicConfig(n_ways=5)
        raise ValueError(f"pipeline {path}: {error}") from None
    missing = [name for name in ("CONFIG", "run") if not hasattr(module, name)]
    if missing:
        raise ValueError(f"pipeline {path} must define {' and '.join(missing)}")
    check_types(module.CONFIG, where=f"pipeline {path}")
    return module


def run_episodic(config: EpisodicConfig, *, out: str | Path, resume: bool = False, data_root=None, cache_dir=None,
                 device: str | None = None, progress: bool = True) -> dict:
    """Train the classifier ``config`` describes on its data set's train split, validating on its val split."""
    store = open_store(config.dataset, image_size=config.image_size, root=data_root, cache=cache_dir)
    train_split = store.split("train", augment=build_augmentation(config.augment), augment_seed=config.seed)
    val_split = store.split("val")
    try:  # refused now, not at the first validation val_every episodes in (15 queries, as validation uses)
        EpisodeSampler(val_split.labels, n_way=config.val_n_way, k_shot=config.val_k_shot, q_query=15,
                       episodes=1)
    except ValueError as error:
        raise ValueError(f"validation episodes (val_n_way, val_k_shot) on the val split: {error}") from None
    torch.manual_seed(config.seed)
    model = build_classifier(config)
    out, device = Path(out), resolve_device(device)
    if config.init_from:
        _load_backbone(model, config.init_from)
    if config.pretrain_epochs > 0 and config.init_from:
        if config.hallucinator == "none":
            raise ValueError(f"init_from={config.init_from!r} is the pre-trained backbone and no hallucinator is set: "
                             "this run would train nothing")
    elif config.pretrain_epochs > 0:
        # Baseline / Baseline++: mini-batch pre-training first; with a hallucinator, it goes to out/pretrain and
        # the episodes that follow train the hallucinator on the frozen pre-trained backbone.
        pretrain_dir = out / "pretrain" if config.hallucinator != "none" else out
        summary = pretrain_backbone(config, model, train_split, val_split, out_dir=pretrain_dir, device=device,
                                    resume=resume, progress=progress)
        if config.hallucinator == "none":
            return summary
        model.load_state_dict(load_checkpoint(pretrain_dir / "checkpoint.pt")["best_model"])
        resume = resume and (out / "checkpoint.pt").is_file()
    return train_episodic(config, model, train_split, val_split, out_dir=out, device=device, resume=resume,
                          progress=progress)


def _load_backbone(model, checkpoint: str) -> None:
    """Start ``model.backbone`` from the best weights of another run's checkpoint (e.g. a finished pre-training, so
    that runs training different hallucinators on one frozen Baseline++ backbone share it instead of repeating it)."""
    weights = load_checkpoint(checkpoint)["best_model"]
    backbone = {name.removeprefix("backbone."): w for name, w in weights.items() if name.startswith("backbone.")}
    try:
        model.backbone.load_state_dict(backbone)
    except RuntimeError as error:
        raise CheckpointError(f"init_from={checkpoint!r}: its backbone does not fit this run's ({error})") from None
