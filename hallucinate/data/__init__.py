"""Data sets, their LMDB stores, the episode sampler and the loader that turns them into `Episode`s."""
from pathlib import Path

from ..registry import Registry
from . import omniglot
from . import cifar_fs
from .paths import cache_dir, data_root
from .store import ImageStore, StoreError, write_store

DATASETS = Registry("dataset")
DATASETS["omniglot"] = omniglot
DATASETS["cifar_fs"] = cifar_fs
from ..domains import DOMAIN_DATASETS  # noqa: E402 (the domain modules import hallucinate.data only when they read)

for _name, _module in DOMAIN_DATASETS.items():
    DATASETS[_name] = _module


def store_path(name: str, image_size: int, cache: Path) -> Path:
    return cache / f"{name}-{image_size}px.lmdb"


def open_store(name: str, *, image_size: int | None = None, root=None, cache=None, rebuild: bool = False) -> ImageStore:
    """The store of data set ``name``, ingested first if it is missing, stale (its source files changed) or of an
    older format."""
    dataset = DATASETS[name]
    root, cache = data_root(root), cache_dir(cache)
    image_size = image_size or dataset.DEFAULT_IMAGE_SIZE
    path = store_path(name, image_size, cache)
    fingerprint = dataset.source_fingerprint(root)
    if not rebuild and (path / "data.mdb").is_file():
        try:
            store = ImageStore(path)
            if store.meta["source_fingerprint"] == fingerprint:
                return store
        except StoreError:
            pass
    write_store(path, dataset.read_classes(root, image_size), dataset=name, image_size=image_size,
                channels=dataset.CHANNELS, source_fingerprint=fingerprint)
    return ImageStore(path)
