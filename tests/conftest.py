import os
from pathlib import Path

import numpy as np
import pytest


def pytest_configure(config):
    config.addinivalue_line("markers", "gpu: needs a CUDA device; skipped without one")
    config.addinivalue_line("markers", "docker: needs a Docker engine (`docker info` answers); skipped without one")


def pytest_collection_modifyitems(config, items):
    import torch

    if not torch.cuda.is_available():
        skip = pytest.mark.skip(reason="no CUDA device on this machine")
        for item in items:  # the marker itself: item.keywords also holds the names of the folders above the test
            if item.get_closest_marker("gpu"):
                item.add_marker(skip)


@pytest.fixture(scope="session")
def data_root() -> Path:
    root = Path(os.environ.get("HALLUCINATE_DATA", "data"))
    if not (root / "omniglot" / "images_background.zip").is_file():
        pytest.fail(f"the tests need Omniglot under {root.resolve()}/omniglot: set HALLUCINATE_DATA to the data folder")
    return root


@pytest.fixture(scope="session")
def cache(tmp_path_factory) -> Path:
    """``$HALLUCINATE_CACHE`` when set (a developer's warm cache), else a fresh folder: CI ingests from scratch."""
    return Path(os.environ["HALLUCINATE_CACHE"]) if os.environ.get("HALLUCINATE_CACHE") else tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="session")
def omniglot(data_root, cache):
    from hallucinate.data import open_store

    return open_store("omniglot", root=data_root, cache=cache)


TINY = ["n_way=5", "k_shot=1", "q_query=2", "val_every=200", "val_episodes=5", "val_n_way=5", "log_every=10",
        "checkpoint_every=10", "num_workers=0", "hallucinator_hidden=32", "critic_hidden=32"]
# A tiny two-stage run (the GAN pipelines): stage 2 in the same tiny shape as TINY's episodes (a run without a
# hallucinator ignores these settings), on 16-pixel Omniglot. Stage 2 starts by embedding the whole train split once
# (82240 images), most of a tiny two-stage run's time: at 16 pixels (Conv-4's features are still 64 numbers) that
# takes a fifth of the time it takes at 28, for one more store ingested per cache.
TINY_STAGE_2 = ["hallucinator_episodes=20", "hallucinator_n_way=5", "hallucinator_q_query=2", "image_size=16"]


def sets(*settings: str) -> list[str]:
    """``--set`` arguments for `hallucinate run`."""
    return [x for item in settings for x in ("--set", item)]


@pytest.fixture(scope="session")
def tiny_gan_checkpoint(omniglot, data_root, cache, tmp_path_factory) -> Path:
    """A GAN pipeline checkpoint of the default two-stage run: 20 tiny episodes of stage 1 (in OUT/stage1), then
    20 tiny episodes of the calibrated GAN on the frozen embedding: quick to make, real in every part."""
    from hallucinate.cli import main

    out = tmp_path_factory.mktemp("tiny_run")
    args = ["run", "pipelines/omniglot_protonet_gan.py", "--out", str(out), "--data-root", str(data_root),
            "--cache-dir", str(cache), "--no-progress"]
    assert main(args + sets(*TINY, *TINY_STAGE_2, "episodes=20")) == 0
    return out / "checkpoint.pt"


class Enough(Exception):
    pass


class NoiseSplit:
    """Random 28x28 "images", four of each of six classes; asking for more than ``items`` of them raises `Enough`,
    which stops a run between two steps, before any log, validation or checkpoint. ``on_first_item`` is called
    when the first image is asked for, when the run's set-up is over."""

    name = "noise"

    def __init__(self, items: int, on_first_item=lambda: None):
        self.labels = [c for c in range(6) for _ in range(4)]
        self.images = np.random.default_rng(0).integers(0, 256, (len(self.labels), 28, 28, 1), dtype=np.uint8)
        self.served, self.items, self.on_first_item = 0, items, on_first_item

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        self.served += 1
        if self.served == 1:
            self.on_first_item()
        if self.served > self.items:
            raise Enough
        return self.images[index], self.labels[index]

    def __getitems__(self, indices: list[int]) -> list:
        return [self[index] for index in indices]
