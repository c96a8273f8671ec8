"""Checkpoints written atomically and read with ``weights_only=True``, so loading one never runs code from it."""
import os
import pickle
from pathlib import Path

import torch

FORMAT = "hallucinate.checkpoint/1"


class CheckpointError(RuntimeError):
    pass


def save_checkpoint(path: Path, state: dict) -> None:
    """Write to a temporary file, flush it to disk, then rename over ``path``: a crash or a full disk mid-write
    leaves the previous checkpoint as it was."""
    path = Path(path)
    partial = path.with_name(f"{path.name}.partial-{os.getpid()}")
    try:
        with open(partial, "wb") as f:
            torch.save({"format": FORMAT, **state}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def load_checkpoint(path: Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise CheckpointError(f"{path} holds objects other than tensors and plain data, which could run code when "
                              f"loaded; it was refused ({str(error).splitlines()[0]})") from None
    except (RuntimeError, EOFError, OSError) as error:
        raise CheckpointError(f"{path} is truncated or corrupt and cannot be read ({error})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a hallucinate checkpoint (expected format {FORMAT!r})")
    return state
