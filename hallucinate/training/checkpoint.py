"""Checkpoints written atomically and read with ``weights_only=True``, so loading one never runs code from it.

Saving keeps the checkpoint it replaces as ``<name>.prev``; loading checks every record against the CRC-32 that
``torch.save`` wrote, so a file damaged after it was written is refused, and the one before it is still there."""
import os
import pickle
import re
import shutil
import zipfile
import zlib
from pathlib import Path

import torch

FORMAT = "hallucinate.checkpoint/1"


class CheckpointError(RuntimeError):
    pass


def previous_path(path: Path) -> Path:
    """Where `save_checkpoint` keeps the checkpoint it replaced."""
    path = Path(path)
    return path.with_name(f"{path.name}.prev")


def save_checkpoint(path: Path, state: dict, *, keep_previous: bool = True) -> None:
    """Write to a temporary file, flush it to disk, then rename over ``path``: a crash or a full disk mid-write
    leaves the previous checkpoint as it was. The checkpoint replaced stays as ``<name>.prev`` (unless
    ``keep_previous`` is false: a released file has no use for one)."""
    path = Path(path)
    _remove_abandoned_partials(path)
    partial = path.with_name(f"{path.name}.partial-{os.getpid()}")
    try:
        try:
            with open(partial, "wb") as f:
                torch.save({"format": FORMAT, **state}, f)
                f.flush()
                os.fsync(f.fileno())
        except RuntimeError as error:  # torch.save reports a failed write (a full disk) as its own error
            if not isinstance(error.__context__, OSError):
                raise
            raise _write_error(error.__context__, path) from error
        except OSError as error:
            raise _write_error(error, path) from error
        if keep_previous and path.is_file():
            _keep_previous(path)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def _write_error(error: OSError, path: Path) -> OSError:
    return OSError(error.errno, f"{error.strerror or error}; writing {path} failed and left it as it was")


def _keep_previous(path: Path) -> None:
    previous = previous_path(path)
    previous.unlink(missing_ok=True)
    try:
        os.link(path, previous)  # no copy: the old file simply keeps a second name
    except OSError:  # a file system without hard links
        copy = previous.with_name(f"{previous.name}.partial-{os.getpid()}")
        try:
            shutil.copyfile(path, copy)
            os.replace(copy, previous)
        finally:
            copy.unlink(missing_ok=True)


def _remove_abandoned_partials(path: Path) -> None:
    """Delete the temporary files of writes whose process is gone (killed before it could clean up)."""
    for leftover in path.parent.glob(f"{path.name}.*partial-*"):
        try:
            os.kill(int(leftover.name.rsplit("-", 1)[1]), 0)
        except ProcessLookupError:
            leftover.unlink(missing_ok=True)
        except (ValueError, PermissionError):  # not one of ours, or a live process of another user
            continue


def _check_records(path: Path) -> None:
    """Read every record of the zip container ``torch.save`` writes; `zipfile` raises on a CRC-32 mismatch."""
    if not zipfile.is_zipfile(path):
        return  # not a zip (truncated, or another format): torch.load says why
    with zipfile.ZipFile(path) as archive:
        for member in archive.infolist():
            if member.external_attr & 0x10:  # no CRC-32 covers attributes, and torch reads garbage for a "folder"
                raise zipfile.BadZipFile(f"record {member.filename!r} is marked as a folder")
            if member.CRC == 0 and member.file_size > 0:
                continue  # written with torch.serialization.set_crc32_options(False): nothing to check against
            with archive.open(member) as f:
                while f.read(1 << 20):
                    pass


def _unpickler_reason(message: str) -> str:
    """What the weights-only unpickler met ("Unsupported global: GLOBAL os.system ...", or for a global of a module
    torch blocks outright, "Trying to load unsupported GLOBAL posix.system ..."), else torch's first line."""
    for line in message.splitlines():
        if "WeightsUnpickler error:" in line:
            return line.split("WeightsUnpickler error:", 1)[1].split(". Please", 1)[0].strip()
        if line.strip().startswith("Trying to load unsupported GLOBAL"):
            return line.strip()
    return re.sub(r"\x1b\[[0-9;]*m", "", message.splitlines()[0]).strip()


def trained_episodes(state: dict) -> int:
    """Episodes a training checkpoint's run has seen: `next_episode` counts each process's episodes."""
    return state["sampler"]["next_episode"] * state["sampler"].get("world_size", 1)


def load_checkpoint(path: Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        _check_records(path)
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        reason = _unpickler_reason(str(error))
        raise CheckpointError(f"{path} holds objects other than tensors and plain data, which could run code when "
                              f"loaded; it was refused ({reason})") from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile, zlib.error) as error:
        previous = previous_path(path)
        fallback = (f"; the checkpoint before it is {previous}: rename it to {path.name} to resume from there"
                    if previous.is_file() else "")
        raise CheckpointError(f"{path} is truncated or corrupt and cannot be read "
                              f"({str(error) or type(error).__name__}){fallback}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a hallucinate checkpoint (expected format {FORMAT!r})")
    return state
