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
from .training import CheckpointError, EpisodicConfig, distributed, load_checkpoint, train_episodic
from .training.config import check_types
from .training.pretrain import pretrain_backbone


def shipped_pipelines(folder: str | Path = "pipelines") -> list[str]:
    """The pipeline files in ``folder`` (the repository's, or the image's working folder's, ``pipelines/``)."""
    return sorted(str(path) for path in Path(folder).glob("*.py"))


def load_pipeline(path: str | Path):
    """Import a pipeline file; it must define ``CONFIG`` (a frozen dataclass) and ``run(config, **options)``."""
    path = Path(path)
    if not path.is_file():
        shipped = shipped_pipelines()
        raise FileNotFoundError(f"no pipeline file at {path}; " + (
            f"the pipelines in ./pipelines: {', '.join(shipped)}" if shipped else
            f"there is no ./pipelines folder with pipeline files in {Path.cwd()} (run from the repository root)"))
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
    """Train the classifier ``config`` describes on its data set's train split, validating on its val split.

    A two-stage config (``hallucinator_episodes > 0``) trains stage 1, the embedding without a hallucinator, into
    ``out/stage1`` (exactly the run of the plain pipeline, unless ``init_from`` names its result), then stage 2, the
    hallucinator on the frozen embedding, into ``out``; ``resume`` continues whichever stage was interrupted."""
    store = open_store(config.dataset, image_size=config.image_size, root=data_root, cache=cache_dir)
    train_split = store.split("train", augment=build_augmentation(config.augment), augment_seed=config.seed)
    val_split = store.split("val")
    try:  # refused now, not at the first validation val_every episodes in (15 queries, as validation uses)
        EpisodeSampler(val_split.labels, n_way=config.val_n_way, k_shot=config.val_k_shot, q_query=15,
                       episodes=1)
    except ValueError as error:
        raise ValueError(f"validation episodes (val_n_way, val_k_shot) on the val split: {error}") from None
    out, device = Path(out), resolve_device(device)
    if config.two_stage:
        return _run_two_stages(config, store, val_split, out=out, resume=resume, device=device, progress=progress,
                               data_root=data_root, cache_dir=cache_dir)
    torch.manual_seed(config.seed)
    model = build_classifier(config)
    if config.init_from:
        load_backbone(model, config.init_from)
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
    if config.pretrain_epochs > 0:  # the hallucinator's episodes come from the frozen backbone's unaugmented features
        train_split = store.split("train")
    return train_episodic(config, model, train_split, val_split, out_dir=out, device=device, resume=resume,
                          progress=progress)


def _run_two_stages(config: EpisodicConfig, store, val_split, *, out: Path, resume: bool, device: torch.device,
                    progress: bool, data_root, cache_dir) -> dict:
    # Rank 0 alone reads the run folder (under torchrun it may be on its machine alone): what is there, it says.
    if config.init_from:
        stage1 = config.init_from
    else:
        stage1_dir = out / "stage1"
        stage1_started = distributed.on_rank_zero(lambda: (stage1_dir / "checkpoint.pt").is_file())
        run_episodic(config.stage1(), out=stage1_dir, resume=resume and stage1_started,
                     data_root=data_root, cache_dir=cache_dir, device=str(device), progress=progress)
        stage1 = str(stage1_dir / "checkpoint.pt")
    torch.manual_seed(config.seed)
    model = build_classifier(config)
    load_backbone(model, stage1, with_learner=True)
    stage2_started = distributed.on_rank_zero(lambda: (out / "checkpoint.pt").is_file())
    return train_episodic(config, model, store.split("train"), val_split, out_dir=out, device=device,
                          resume=resume and stage2_started, progress=progress)


def load_backbone(model, checkpoint: str, *, with_learner: bool = False) -> None:
    """Start ``model.backbone`` (and its learner, ``with_learner``) from the best weights of another run's checkpoint
    (e.g. a finished pre-training, so that runs training different hallucinators on one frozen Baseline++ backbone
    share it instead of repeating it; or stage 1 of a two-stage run)."""
    weights = distributed.on_rank_zero(lambda: load_checkpoint(checkpoint)["best_model"])  # sent to every rank
    parts = ("backbone", "learner") if with_learner else ("backbone",)
    for part in parts:
        own = {name.removeprefix(f"{part}."): w for name, w in weights.items() if name.startswith(f"{part}.")}
        try:
            getattr(model, part).load_state_dict(own)
        except RuntimeError as error:
            raise CheckpointError(f"init_from={checkpoint!r}: its {part} does not fit this run's ({error})") from None
