import lmdb
import numpy as np
import pytest
import torch

from hallucinate.data.store import ImageStore, StoreError, write_store


def _classes(n_classes=3, per_class=4, size=5):
    rng = np.random.default_rng(0)
    for c in range(n_classes):
        yield ("train" if c < 2 else "test"), f"class{c}", rng.integers(0, 256, (per_class, size, size, 1), np.uint8)


def _write(path, classes):
    return write_store(path, classes, dataset="toy", image_size=5, channels=1, source_fingerprint="abc")


def test_round_trip(tmp_path):
    expected = list(_classes())
    store = ImageStore(_write(tmp_path / "toy.lmdb", iter(expected)))
    train, test = store.split("train"), store.split("test")
    assert len(train) == 8 and len(test) == 4 and train.classes == ["class0", "class1"]
    assert train.labels.tolist() == [0] * 4 + [1] * 4
    for i in range(8):
        image, label = train[i]
        assert label == i // 4 and np.array_equal(image, expected[i // 4][2][i % 4])
    assert np.array_equal(test[3][0], expected[2][2][3])
    with pytest.raises(KeyError, match="no split 'val'.*train, test"):
        store.split("val")


def test_interrupted_ingest_leaves_no_store(tmp_path):
    def interrupted():
        yield from list(_classes())[:2]
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _write(tmp_path / "toy.lmdb", interrupted())
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(StoreError, match="no store"):
        ImageStore(tmp_path / "toy.lmdb")


def test_store_without_its_completion_record_is_refused(tmp_path):
    env = lmdb.open(str(tmp_path / "toy.lmdb"), map_size=1 << 20)
    with env.begin(write=True) as txn:
        txn.put(b"train/00000000", bytes(25))
    env.close()
    with pytest.raises(StoreError, match="not a complete store"):
        ImageStore(tmp_path / "toy.lmdb")


def test_corrupt_record_is_named(tmp_path):
    path = _write(tmp_path / "toy.lmdb", _classes())
    env = lmdb.open(str(path), map_size=1 << 30)
    with env.begin(write=True) as txn:
        txn.put(b"train/00000002", b"short")
    env.close()
    split = ImageStore(path).split("train")
    with pytest.raises(StoreError, match="record 'train/00000002' holds 5 bytes, expected 25"):
        split[2]


def _pixel_sum(items) -> int:
    return sum(int(image.sum()) for image, _ in items)


def test_several_readers_at_once(tmp_path):
    path = _write(tmp_path / "toy.lmdb", _classes())
    expected = sum(int(images.sum()) for split, _, images in _classes() if split == "train")
    split = ImageStore(path).split("train")
    assert _pixel_sum(split[i] for i in range(len(split))) == expected  # opens LMDB in this process first
    loader = torch.utils.data.DataLoader(split, batch_size=2, num_workers=2, collate_fn=_pixel_sum,
                                         multiprocessing_context="spawn")
    assert sum(loader) == expected and sum(loader) == expected


def test_images_of_the_wrong_shape_are_refused(tmp_path):
    with pytest.raises(StoreError, match="expected uint8 images of shape \\(5, 5, 1\\)"):
        _write(tmp_path / "toy.lmdb", iter([("train", "c", np.zeros((2, 6, 6, 1), np.uint8))]))
    assert list(tmp_path.iterdir()) == []


def test_rerun_after_a_killed_ingest_removes_its_leftovers(tmp_path):
    import subprocess
    import sys

    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    abandoned = tmp_path / f"toy.lmdb.partial-{int(finished.stdout)}"  # as a SIGKILLed ingest leaves it
    abandoned.mkdir()
    (abandoned / "data.mdb").write_bytes(b"half written")
    store = ImageStore(_write(tmp_path / "toy.lmdb", _classes()))
    assert len(store.split("train")) == 8 and sorted(p.name for p in tmp_path.iterdir()) == ["toy.lmdb"]
