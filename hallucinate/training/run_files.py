"""The files a training run keeps beside its checkpoint: ``metrics.jsonl``, a row per log interval, validation or
epoch, appended as the run goes; and ``metrics.json``, the run's summary, written whole or not at all."""
import json
import os
from pathlib import Path

from .checkpoint import CheckpointError, load_checkpoint
from .config import changed_settings


def write_json_atomic(path: Path, value) -> None:
    partial = path.with_name(f"{path.name}.partial-{os.getpid()}")
    partial.write_text(json.dumps(value, indent=2) + "\n")
    os.replace(partial, path)


def append_row(log_path: Path, row: dict) -> None:
    with open(log_path, "a") as f:
        f.write(json.dumps(row) + "\n")


def restart_log(log_path: Path, history: list[dict]) -> None:
    """Rewrite ``log_path`` to the rows the run's checkpoint holds (none for a fresh run): rows a killed run logged
    after its last checkpoint will be logged again by the resumed run, and must not appear twice."""
    log_path.write_text("".join(json.dumps(row) + "\n" for row in history))


def load_for_resume(checkpoint_path: Path, config, *, ignore: tuple[str, ...]) -> dict:
    """The checkpoint a run resumes from, refused when any setting other than ``ignore`` (the run's length) differs
    from ``config``: the resumed run would not finish as the interrupted one would have."""
    state = load_checkpoint(checkpoint_path)
    changed = changed_settings(state["config"], config, ignore=ignore)
    if changed:
        raise CheckpointError(f"cannot resume {checkpoint_path}: settings differ from the checkpoint's: {changed}")
    return state


def best_so_far(state: dict) -> dict:
    """The best validation a checkpoint records: accuracy, the episode (or epoch) it came at, and the weights."""
    return {"val_accuracy": state["best_val_accuracy"], "episode": state["best_episode"], "model": state["best_model"]}
