"""CIFAR-FS (Bertinetto et al. 2019): the 100 CIFAR-100 classes split 64/16/20 into train, val and test, 32x32 RGB.

Read from one zip per split, ``<split>.zip`` holding ``<split>/<class>/<idx>.png`` (``idx``: the image's index in
CIFAR-100), and the Bertinetto class lists. There is no official download of these zips: they are built from
CIFAR-100 with the split lists, so a missing zip is an error that says so rather than a download.
"""
import zipfile
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image

from .archive import checked_members, ensure_files, fingerprint, read_image

SPLITS = ("train", "val", "test")
ARCHIVES = tuple(f"{split}.zip" for split in SPLITS)
CIFAR100_URL = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
_SPLIT_LISTS = ("https://raw.githubusercontent.com/ArnoutDevos/maml-cifar-fs/"
                "56b8dfd367d916d1f5b8ec53ae6c9e747232dc71/data/CIFARFS/cifar-fs-splits/")
URLS = {name: None for name in ARCHIVES} | {  # None: built from CIFAR100_URL, not downloadable
    f"splits/bertinetto/{split}.txt": _SPLIT_LISTS + f"{split}.txt" for split in SPLITS}
_HOW = (f"CIFAR-FS has no download of its own: build it from CIFAR-100 ({CIFAR100_URL}) with the Bertinetto et al. "
        f"class lists ({_SPLIT_LISTS}{{train,val,test}}.txt), as one zip per split holding "
        f"<split>/<class>/<idx>.png, where idx is the image's index in CIFAR-100. Or point --data-root / "
        f"$HALLUCINATE_DATA at a folder holding cifar_fs/.")

CHANNELS = 3
DEFAULT_IMAGE_SIZE = 32
MIN_IMAGES_PER_CLASS = 500  # CIFAR-100's training images; the official CIFAR-FS adds its 100 test images (600)


def prepare_image(image: Image.Image, image_size: int = DEFAULT_IMAGE_SIZE) -> np.ndarray:
    """PIL image -> uint8 ``[H, W, 3]`` RGB, resized (Lanczos) only when it is not ``image_size`` square already."""
    rgb = image.convert("RGB")
    if rgb.size != (image_size, image_size):
        rgb = rgb.resize((image_size, image_size), Image.Resampling.LANCZOS)
    return np.array(rgb, dtype=np.uint8)


def source_files(root: Path) -> list[Path]:
    folder = root / "cifar_fs"
    ensure_files(folder, URLS, "CIFAR-FS", how=_HOW)
    return [folder / name for name in URLS]


def source_fingerprint(root: Path) -> str:
    return fingerprint(source_files(root))


def read_classes(root: Path, image_size: int = DEFAULT_IMAGE_SIZE):
    """Yield ``(split, class_name, images uint8 [n, H, W, 3])`` for every class of the Bertinetto split lists, in
    list order, each class's images in the order of their CIFAR-100 index."""
    folder = root / "cifar_fs"
    source_files(root)
    for split in SPLITS:
        wanted = (folder / f"splits/bertinetto/{split}.txt").read_text().split()
        with zipfile.ZipFile(folder / f"{split}.zip") as archive:
            members = _members_by_class(archive, split)
            for class_name in wanted:
                if class_name not in members:
                    raise FileNotFoundError(f"CIFAR-FS split list {split}.txt names {class_name!r}, which "
                                            f"{folder / f'{split}.zip'} does not hold")
                found = sorted(members[class_name], key=lambda pair: pair[0])
                if len(found) < MIN_IMAGES_PER_CLASS:
                    raise ValueError(f"CIFAR-FS class {class_name!r} in {folder / f'{split}.zip'} has {len(found)} "
                                     f"images, expected at least {MIN_IMAGES_PER_CLASS}")
                yield split, class_name, np.stack([_decode(archive, member, image_size) for _, member in found])


def _members_by_class(archive: zipfile.ZipFile, split: str) -> dict[str, list[tuple[int, zipfile.ZipInfo]]]:
    members = defaultdict(list)
    for member in checked_members(archive):
        parts = member.filename.split("/")
        if member.is_dir() or len(parts) != 3 or parts[0] != split or not parts[2].endswith(".png"):
            continue
        index = parts[2].removesuffix(".png")
        if not index.isdigit():
            raise ValueError(f"{archive.filename}: member {member.filename!r} is not named <index>.png")
        members[parts[1]].append((int(index), member))
    return members


def _decode(archive: zipfile.ZipFile, member: zipfile.ZipInfo, image_size: int) -> np.ndarray:
    return read_image(archive, member, prepare_image, image_size)
