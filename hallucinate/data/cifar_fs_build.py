"""Building the CIFAR-FS zips that `cifar_fs` reads from the official CIFAR-100 python release.

CIFAR-FS has no download of its own. Its zips are built from ``cifar-100-python``: an extracted copy already in
the CIFAR-FS folder is used as it is; otherwise torchvision's downloader fetches ``cifar-100-python.tar.gz`` into
that folder (or reuses a copy already there) and checks its md5.

Every class gets all 600 of its images, as in the official CIFAR-FS: CIFAR-100's 500 training images, then its
100 test images. In ``<split>/<class>/<idx>.png``, ``idx`` is the image's index in CIFAR-100's ``train`` batch, or
50000 plus its index in the ``test`` batch. The copy in shared/data that CI reads has 500 images per class, because
only CIFAR-100's training images could be found to build it (shared/data/README.md, section 2). Its indices agree
with these, so the two hold the same pixels under the same name for every image they share.
"""
import io
import os
import pickle
import shutil
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

CIFAR100_URL = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"  # the one torchvision's CIFAR100 fetches
TARBALL = "cifar-100-python.tar.gz"
EXTRACTED = "cifar-100-python"
BATCHES = ("train", "test")  # read in this order: train indices first, then test indices from 50000
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # a fixed timestamp: the same CIFAR-100 always gives the same zip bytes


def build_zips(folder: Path, class_lists: dict[str, list[str]]) -> None:
    """Write ``<split>.zip`` for each split of ``class_lists`` into ``folder``.

    The zips are written under temporary names and renamed only once all of them are complete, so an interrupted
    build leaves no zip behind."""
    extracted = _cifar100(folder, [f"{split}.zip" for split in class_lists])
    images, labels, names = _read_cifar100(extracted)
    for split, classes in class_lists.items():
        unknown = [name for name in classes if name not in names]
        if unknown:
            raise ValueError(f"CIFAR-FS: the {split} class list names {', '.join(map(repr, unknown))}, which "
                             f"{extracted / 'meta'} does not list among CIFAR-100's fine_label_names")
    partials = {split: folder / f"{split}.zip.part" for split in class_lists}
    try:
        for split, classes in class_lists.items():
            _write_split(partials[split], split, [(name, names.index(name)) for name in classes], images, labels)
        for split, partial in partials.items():
            os.replace(partial, folder / f"{split}.zip")
    except OSError as error:
        raise FileNotFoundError(f"CIFAR-FS: could not write the zips built from CIFAR-100 into "
                                f"{folder.resolve()} ({error})") from error
    finally:
        for partial in partials.values():
            partial.unlink(missing_ok=True)


def _cifar100(folder: Path, zips: list[str]) -> Path:
    """The extracted ``cifar-100-python`` folder, fetched (and extracted under a temporary name) when missing.

    An extracted copy already there is read without torchvision's md5 check of its files, which would download the
    archive again on any mismatch: it may be a copy made by hand, and reading it checks every array it holds."""
    extracted = folder / EXTRACTED
    missing = [name for name in (*BATCHES, "meta") if not (extracted / name).is_file()]
    if not missing:
        return extracted
    if extracted.exists():
        raise FileNotFoundError(f"CIFAR-100: {extracted.resolve()} has no {', '.join(missing)}; delete that folder "
                                f"to have {TARBALL} fetched and extracted again")
    from torchvision.datasets import CIFAR100
    from torchvision.datasets.utils import download_and_extract_archive

    partial = folder / f"{EXTRACTED}.part"
    try:
        shutil.rmtree(partial, ignore_errors=True)
        download_and_extract_archive(CIFAR100.url, folder, extract_root=partial, filename=CIFAR100.filename,
                                     md5=CIFAR100.tgz_md5)
        os.replace(partial / EXTRACTED, extracted)
    except (OSError, RuntimeError) as error:  # URLError is an OSError; a download failing its md5, a RuntimeError
        tarball = (folder / TARBALL).resolve()
        raise FileNotFoundError(
            f"CIFAR-FS: no {', '.join(zips)} in {folder.resolve()}, and CIFAR-100 could not be fetched to build them "
            f"({CIFAR100_URL} -> {tarball}: {error}). Download {CIFAR100_URL} to {tarball} and run again, or put "
            f"the CIFAR-FS zips ({', '.join(zips)}, each holding <split>/<class>/<idx>.png) in {folder.resolve()}."
        ) from error
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return extracted


def _read_cifar100(extracted: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Images uint8 ``[N, 32, 32, 3]`` of the train then the test batch, their fine labels ``[N]``, and the names of
    the labels."""
    meta = _unpickle(extracted / "meta", b"fine_label_names")
    names = [name.decode() if isinstance(name, bytes) else name for name in meta[b"fine_label_names"]]
    images, labels = [], []
    for batch in BATCHES:
        path = extracted / batch
        entry = _unpickle(path, b"data", b"fine_labels")
        data, fine = entry[b"data"], np.asarray(entry[b"fine_labels"])
        if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2 and data.shape[1] == 3072
                and len(data) and fine.shape == (len(data),) and np.issubdtype(fine.dtype, np.integer)
                and 0 <= fine.min() <= fine.max() < len(names)):
            raise ValueError(f"CIFAR-100: {path} does not hold uint8 rows of 3072 pixels with one fine label each "
                             f"in 0..{len(names) - 1}; delete {extracted} to have it fetched again")
        images.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))  # rows are the R, G, B planes in turn
        labels.append(fine)
    return np.concatenate(images), np.concatenate(labels), names


class _ArraysOnlyUnpickler(pickle.Unpickler):
    """CIFAR-100's files are pickled dicts of lists and numpy arrays: any other global is refused, so a file put in
    their place cannot run code when read."""

    _RECONSTRUCT = np.zeros(0).__reduce__()[0]  # numpy's array rebuilder, named after numpy.core before numpy 2
    _GLOBALS = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype,
                ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
                ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT}

    def find_class(self, module: str, name: str):
        if (module, name) not in self._GLOBALS:
            raise pickle.UnpicklingError(f"it names {module}.{name}, which a CIFAR-100 file has no use for")
        return self._GLOBALS[module, name]


# What pickle documents a damaged file may raise, and what numpy raises for an array it cannot rebuild
_UNPICKLING_ERRORS = (pickle.UnpicklingError, EOFError, AttributeError, ImportError, IndexError, ValueError, TypeError)


def _unpickle(path: Path, *keys: bytes) -> dict:
    # encoding="bytes": the files are Python 2 pickles, whose str keys and names come back as bytes
    try:
        with open(path, "rb") as f:
            entry = _ArraysOnlyUnpickler(f, encoding="bytes").load()
    except _UNPICKLING_ERRORS as error:
        raise ValueError(f"CIFAR-100: {path} is not a CIFAR-100 python file ({error}); delete {path.parent} to have "
                         "it fetched again") from None
    if not isinstance(entry, dict) or any(key not in entry for key in keys):
        raise ValueError(f"CIFAR-100: {path} is not a dict holding {', '.join(key.decode() for key in keys)}; "
                         f"delete {path.parent} to have it fetched again")
    return entry


def _write_split(path: Path, split: str, classes: list[tuple[str, int]], images: np.ndarray,
                 labels: np.ndarray) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:  # PNGs are compressed already
        for class_name, label in classes:
            for index in np.flatnonzero(labels == label):
                member = zipfile.ZipInfo(f"{split}/{class_name}/{index}.png", date_time=_ZIP_DATE)
                member.external_attr = 0o644 << 16
                archive.writestr(member, _png(images[index]))


def _png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()
