"""An LMDB store of decoded uint8 images, written atomically, read from any number of DataLoader workers."""
import json
import os
import shutil
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

FORMAT_VERSION = 1
_META_KEY = b"__meta__"
_MAP_SIZE = 1 << 36  # an upper bound; LMDB files only grow as far as they are written


class StoreError(RuntimeError):
    pass


def write_store(path: Path, classes: Iterable[tuple[str, str, np.ndarray]], *, dataset: str, image_size: int,
                channels: int, source_fingerprint: str) -> Path:
    """Write ``(split, class_name, images [n, H, W, C] uint8)`` records to ``path``.

    Everything is written into a temporary folder which is renamed into place only once complete, and the
    metadata record that marks a store complete is the last one written: an interrupted ingest leaves no
    folder at ``path``, and no folder without that record is ever read as a store.
    """
    import lmdb

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_abandoned_partials(path)
    partial = path.with_name(f"{path.name}.partial-{os.getpid()}")
    env = lmdb.open(str(partial), map_size=_MAP_SIZE, subdir=True)
    splits: dict[str, dict] = {}
    try:
        with tqdm(desc=f"ingest {dataset}", unit=" classes") as bar:
            for split, class_name, images in classes:
                shape = (image_size, image_size, channels)
                if images.dtype != np.uint8 or images.shape[1:] != shape:
                    raise StoreError(f"class {class_name!r}: expected uint8 images of shape {shape}, "
                                     f"got {images.dtype} {images.shape[1:]}")
                entry = splits.setdefault(split, {"classes": [], "labels": []})
                label = len(entry["classes"])
                entry["classes"].append(class_name)
                with env.begin(write=True) as txn:
                    for image in images:
                        txn.put(_image_key(split, len(entry["labels"])), image.tobytes())
                        entry["labels"].append(label)
                bar.update()
        meta = {"format_version": FORMAT_VERSION, "dataset": dataset, "image_size": image_size,
                "channels": channels, "source_fingerprint": source_fingerprint,
                "splits": {split: {"classes": entry["classes"], "size": len(entry["labels"])}
                           for split, entry in splits.items()}}
        with env.begin(write=True) as txn:
            for split, entry in splits.items():
                txn.put(_labels_key(split), np.asarray(entry["labels"], dtype=np.int32).tobytes())
            txn.put(_META_KEY, json.dumps(meta).encode())
        env.sync(True)
    except BaseException:
        env.close()
        shutil.rmtree(partial, ignore_errors=True)
        raise
    env.close()
    shutil.rmtree(path, ignore_errors=True)
    os.replace(partial, path)
    return path


def _remove_abandoned_partials(path: Path) -> None:
    """Delete the temporary folders of ingests whose process is gone (killed before it could clean up)."""
    for leftover in path.parent.glob(f"{path.name}.partial-*"):
        try:
            os.kill(int(leftover.name.rsplit("-", 1)[1]), 0)
        except ProcessLookupError:
            shutil.rmtree(leftover, ignore_errors=True)
        except (ValueError, PermissionError):  # not one of ours, or a live process of another user
            continue


def _image_key(split: str, index: int) -> bytes:
    return f"{split}/{index:08d}".encode()


def _labels_key(split: str) -> bytes:
    return f"{split}/labels".encode()


_ENVIRONMENTS = {}  # LMDB refuses to open one file twice in a process, so every reader of it shares one handle


def _read_only_environment(path: Path):
    import lmdb

    try:
        stat = (path / "data.mdb").stat()
    except FileNotFoundError:
        raise StoreError(f"no store at {path}") from None
    key = (stat.st_dev, stat.st_ino)
    if key not in _ENVIRONMENTS:
        try:
            env = lmdb.open(str(path), readonly=True, lock=False, readahead=False, meminit=False)
        except lmdb.Error as error:
            raise StoreError(f"{path} is not a readable store ({error}); run `hallucinate ingest` again with "
                             "--rebuild") from None
        # Reading a page past the end of a truncated file kills the process with SIGBUS, so check the size first.
        needed = (env.info()["last_pgno"] + 1) * env.stat()["psize"]
        if stat.st_size < needed:
            env.close()
            raise StoreError(f"{path / 'data.mdb'} is truncated: {stat.st_size} bytes, its own index needs "
                             f"{needed}; run `hallucinate ingest` again with --rebuild")
        _ENVIRONMENTS[key] = env
    return _ENVIRONMENTS[key]


class ImageStore:
    """Read side of a store. Opens LMDB lazily, so each DataLoader worker gets its own read-only handle."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._env = None
        with self._open().begin() as txn:
            raw = txn.get(_META_KEY)
        if raw is None:
            raise StoreError(f"{self.path} is not a complete store (no metadata record): an ingest was "
                             "interrupted; run `hallucinate ingest` again")
        self.meta = json.loads(raw)
        if self.meta["format_version"] != FORMAT_VERSION:
            raise StoreError(f"{self.path} has store format {self.meta['format_version']}, this version reads "
                             f"{FORMAT_VERSION}; run `hallucinate ingest` again")

    def _open(self):
        if self._env is None:
            self._env = _read_only_environment(self.path)
        return self._env

    def __getstate__(self):
        return {**self.__dict__, "_env": None}

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (self.meta["image_size"], self.meta["image_size"], self.meta["channels"])

    def split(self, name: str, augment=None, augment_seed: int = 0) -> "StoreSplit":
        if name not in self.meta["splits"]:
            raise KeyError(f"store {self.path} has no split {name!r}; it has {', '.join(self.meta['splits'])}")
        return StoreSplit(self, name, augment, augment_seed)

    def read(self, key: bytes) -> bytes:
        with self._open().begin(buffers=False) as txn:
            value = txn.get(key)
        if value is None:
            raise StoreError(f"{self.path}: record {key.decode()!r} is missing")
        return value


class StoreSplit(torch.utils.data.Dataset):
    """One split as a map-style dataset of ``(uint8 [H, W, C] image, class label)``."""

    def __init__(self, store: ImageStore, name: str, augment=None, augment_seed: int = 0):
        self.store, self.name, self.augment, self.augment_seed = store, name, augment, augment_seed
        self.classes: list[str] = store.meta["splits"][name]["classes"]
        raw = store.read(_labels_key(name))
        self.labels = np.frombuffer(raw, dtype=np.int32).astype(np.int64)
        if len(self.labels) != store.meta["splits"][name]["size"]:
            raise StoreError(f"{store.path}: record {_labels_key(name).decode()!r} holds {len(self.labels)} labels, "
                             f"the metadata says {store.meta['splits'][name]['size']}")

    def __len__(self) -> int:
        return len(self.labels)

    def image(self, index: int) -> np.ndarray:
        key = _image_key(self.name, index)
        raw = self.store.read(key)
        shape = self.store.image_shape
        if len(raw) != np.prod(shape):
            raise StoreError(f"{self.store.path}: record {key.decode()!r} holds {len(raw)} bytes, "
                             f"expected {int(np.prod(shape))} for an image of shape {shape}")
        return np.frombuffer(raw, dtype=np.uint8).reshape(shape)

    def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: list[int]) -> list[tuple[np.ndarray, int]]:
        images = [self.image(i) for i in indices]
        if self.augment is not None:
            # Seeded by the request itself, so an episode gets the same augmentation in any worker and after resume.
            self.augment.set_random_seed(int(np.random.SeedSequence([self.augment_seed, *indices]).generate_state(1)[0]))
            images = [self.augment(image=image)["image"] for image in images]
        return [(image, int(self.labels[i])) for image, i in zip(images, indices)]
