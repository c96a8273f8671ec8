"""Downloading official archives and reading their members without letting any escape the target folder."""
import hashlib
import io
import posixpath
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm


class UnsafeArchiveError(ValueError):
    pass


def read_image(archive: zipfile.ZipFile, member: zipfile.ZipInfo, prepare, image_size: int) -> np.ndarray:
    """Decode one image member with ``prepare(PIL image, image_size)``; an unreadable one is refused by name."""
    try:
        with Image.open(io.BytesIO(archive.read(member))) as image:
            return prepare(image, image_size)
    except (OSError, zipfile.BadZipFile, Image.DecompressionBombError) as error:  # PIL's own errors are OSErrors
        raise ValueError(f"{archive.filename}: member {member.filename!r} is not a readable image ({error})") from None


def checked_members(archive: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
    """All members, after refusing any whose name would land outside the folder it is extracted into."""
    members = archive.infolist()
    for member in members:
        name = member.filename.replace("\\", "/")
        normalized = posixpath.normpath(name)
        if name.startswith("/") or normalized == ".." or normalized.startswith("../") or ":" in name.split("/")[0]:
            raise UnsafeArchiveError(
                f"{archive.filename}: member {member.filename!r} would be written outside the target folder; "
                "refusing to read this archive")
    return members


def download(url: str, destination: Path) -> None:
    """Download to a temporary name and rename, so a broken download never looks like a complete file."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".part")
    with urllib.request.urlopen(url, timeout=60) as response, open(partial, "wb") as out:
        total = int(response.headers.get("Content-Length") or 0) or None
        with tqdm(total=total, unit="B", unit_scale=True, desc=destination.name) as bar:
            while chunk := response.read(1 << 20):
                out.write(chunk)
                bar.update(len(chunk))
    partial.replace(destination)


def fingerprint(paths: list[Path]) -> str:
    """sha256 over the named files' contents: a store built from other bytes is rebuilt."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.name.encode())
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def ensure_files(root: Path, urls: dict[str, str | None], what: str, *, how: str = "") -> None:
    """Download each missing file under ``root``; with no network, say which files are missing and where.

    A file whose URL is ``None`` has no download: if one is missing, nothing is downloaded and the error says
    which files are missing, where, and ``how`` to make them. A ``.zip`` that is not a zip archive is refused by name.
    """
    missing = [name for name in urls if not (root / name).is_file()]
    if not missing:
        not_zips = [str((root / name).resolve()) for name in urls
                    if name.endswith(".zip") and not zipfile.is_zipfile(root / name)]
        if not_zips:
            raise ValueError(f"{what}: {', '.join(not_zips)} is not a zip archive (a partial download, or another "
                             f"file under its name?); replace it with the official file. {how}".rstrip())
        return
    if any(urls[name] is None for name in missing):
        raise FileNotFoundError(
            f"{what}: missing {', '.join(missing)} in {root.resolve()}, and "
            f"{', '.join(name for name in missing if urls[name] is None)} cannot be downloaded. {how}")
    try:
        for name in missing:
            download(urls[name], root / name)
    except OSError as error:
        raise FileNotFoundError(
            f"{what}: missing {', '.join(missing)} in {root.resolve()} and the download failed ({error}). "
            f"Put the official files there, or point --data-root / $HALLUCINATE_DATA at a folder holding them."
        ) from error
