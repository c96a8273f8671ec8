"""Omniglot (Lake et al. 2015) in the official release layout, split by Vinyals et al. into character x rotation classes."""
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from .archive import checked_members, ensure_files, fingerprint, read_image

ARCHIVES = ("images_background.zip", "images_evaluation.zip")
SPLITS = ("train", "val", "test")
_RELEASE = "https://github.com/brendenlake/omniglot/raw/master/python/"
_SPLIT_LISTS = "https://raw.githubusercontent.com/jakesnell/prototypical-networks/master/data/omniglot/splits/vinyals/"
URLS = {name: _RELEASE + name for name in ARCHIVES} | {
    f"splits/vinyals/{split}.txt": _SPLIT_LISTS + f"{split}.txt" for split in SPLITS}

CHANNELS = 1
DEFAULT_IMAGE_SIZE = 28
DRAWINGS_PER_CHARACTER = 20


def prepare_image(image: Image.Image, image_size: int = DEFAULT_IMAGE_SIZE) -> np.ndarray:
    """PIL image -> uint8 ``[H, W, 1]`` with strokes bright on a dark background, as stored and as the model expects."""
    gray = image.convert("L").resize((image_size, image_size), Image.Resampling.LANCZOS)
    return (255 - np.asarray(gray, dtype=np.uint8))[:, :, None]


def source_files(root: Path) -> list[Path]:
    folder = root / "omniglot"
    ensure_files(folder, URLS, "Omniglot")
    return [folder / name for name in URLS]


def source_fingerprint(root: Path) -> str:
    return fingerprint(source_files(root))


def read_classes(root: Path, image_size: int = DEFAULT_IMAGE_SIZE):
    """Yield ``(split, class_name, images uint8 [20, H, W, 1])`` for every line of the Vinyals split lists."""
    folder = root / "omniglot"
    source_files(root)
    wanted = {split: (folder / f"splits/vinyals/{split}.txt").read_text().split() for split in SPLITS}
    characters = _decode_characters(folder, {line.rsplit("/", 1)[0] for lines in wanted.values() for line in lines},
                                     image_size)
    for split, lines in wanted.items():
        for line in lines:
            character, rotation = line.rsplit("/", 1)
            if character not in characters:
                raise FileNotFoundError(f"Omniglot split {split}.txt names {character!r}, which neither archive in "
                                        f"{folder} holds")
            quarter_turns = int(rotation.removeprefix("rot")) // 90
            yield split, line, np.ascontiguousarray(np.rot90(characters[character], quarter_turns, axes=(1, 2)))


def character_drawings(archive: zipfile.ZipFile, *, count: int | None = DRAWINGS_PER_CHARACTER
                       ) -> dict[str, list[zipfile.ZipInfo]]:
    """Each character's drawings in one of the zips, keyed ``"Alphabet/characterNN"`` in sorted order, each
    character's sorted by file name (drawer order); ``count``: how many each must have (None: any number)."""
    drawings: dict[str, list[zipfile.ZipInfo]] = {}
    for member in checked_members(archive):
        parts = member.filename.split("/")
        if not member.is_dir() and len(parts) == 4 and parts[3].endswith(".png"):
            drawings.setdefault(f"{parts[1]}/{parts[2]}", []).append(member)
    for character, files in drawings.items():
        if count is not None and len(files) != count:
            raise ValueError(f"{archive.filename}: {character} has {len(files)} drawings, not {count}")
    return {character: sorted(drawings[character], key=lambda member: member.filename)
            for character in sorted(drawings)}


def stroke_mask(image: Image.Image, _size: int) -> np.ndarray:
    """A drawing greyscale, inverted and binarised: True where the pen drew (`read_image`'s ``prepare``)."""
    return np.asarray(image.convert("L")) < 128


def _decode_characters(folder: Path, characters: set[str], image_size: int) -> dict[str, np.ndarray]:
    images = {}
    for name in ARCHIVES:
        with zipfile.ZipFile(folder / name) as archive:
            for character, members in character_drawings(archive, count=None).items():
                if character in characters:
                    images[character] = np.stack([read_image(archive, member, prepare_image, image_size)
                                                  for member in members])
    return images
