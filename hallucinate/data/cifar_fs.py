"""CIFAR-FS (Bertinetto et al. 2019): the 100 CIFAR-100 classes split 64/16/20 into train, val and test, 32x32 RGB.

Read from one zip per split, ``<split>.zip`` holding ``<split>/<class>/<idx>.png`` (``idx``: the image's index in
CIFAR-100), and the Bertinetto class lists. There is no official download of these zips: when none of them is in
the data root, `cifar_fs_build` builds them from CIFAR-100 (downloaded when missing) with the class lists.
"""
import zipfile
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image

from .archive import checked_members, ensure_files, fingerprint, read_image
from .cifar_fs_build import CIFAR100_URL, build_zips

SPLITS = ("train", "val", "test")
ARCHIVES = tuple(f"{split}.zip" for split in SPLITS)
# Verbatim from ArnoutDevos/maml-cifar-fs @ 56b8dfd (data/CIFARFS/cifar-fs-splits/), MIT licensed: see the LICENSE there
SHIPPED_SPLIT_LISTS = Path(__file__).parent / "splits" / "cifar_fs_bertinetto"
_HOW = (f"hallucinate builds all three from CIFAR-100 ({CIFAR100_URL}) with the Bertinetto et al. class lists when "
        f"none of them is there: remove the others to have them built, or put the missing ones there, each holding "
        f"<split>/<class>/<idx>.png, where idx is the image's index in CIFAR-100. Or point --data-root / "
        f"$HALLUCINATE_DATA at a folder holding cifar_fs/.")

CHANNELS = 3
DEFAULT_IMAGE_SIZE = 32
# CIFAR-100's training images, all the shared copy has; a build from CIFAR-100 adds its 100 test images (600)
MIN_IMAGES_PER_CLASS = 500


def prepare_image(image: Image.Image, image_size: int = DEFAULT_IMAGE_SIZE) -> np.ndarray:
    """PIL image -> uint8 ``[H, W, 3]`` RGB, resized (Lanczos) only when it is not ``image_size`` square already."""
    rgb = image.convert("RGB")
    if rgb.size != (image_size, image_size):
        rgb = rgb.resize((image_size, image_size), Image.Resampling.LANCZOS)
    return np.array(rgb, dtype=np.uint8)


def split_lists(folder: Path) -> dict[str, Path]:
    """The class list of each split: ``<folder>/splits/bertinetto/<split>.txt`` when all three are there (a data
    root may carry its own), else the ones shipped with hallucinate."""
    lists = folder / "splits" / "bertinetto"
    if not all((lists / f"{split}.txt").is_file() for split in SPLITS):
        lists = SHIPPED_SPLIT_LISTS
    return {split: lists / f"{split}.txt" for split in SPLITS}


def source_files(root: Path) -> list[Path]:
    """The zips, built first when none is there, then the class lists."""
    folder = root / "cifar_fs"
    lists = split_lists(folder)
    if not any((folder / name).is_file() for name in ARCHIVES):
        build_zips(folder, {split: path.read_text().split() for split, path in lists.items()})
    ensure_files(folder, dict.fromkeys(ARCHIVES), "CIFAR-FS", how=_HOW)
    return [folder / name for name in ARCHIVES] + list(lists.values())


def source_fingerprint(root: Path) -> str:
    return fingerprint(source_files(root))


def read_classes(root: Path, image_size: int = DEFAULT_IMAGE_SIZE):
    """Yield ``(split, class_name, images uint8 [n, H, W, 3])`` for every class of the Bertinetto split lists, in
    list order, each class's images in the order of their CIFAR-100 index."""
    folder = root / "cifar_fs"
    source_files(root)
    for split, class_list in split_lists(folder).items():
        wanted = class_list.read_text().split()
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
