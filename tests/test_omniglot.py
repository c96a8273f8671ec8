import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from hallucinate.data import archive
from hallucinate.data import omniglot as omniglot_data
from hallucinate.data.archive import UnsafeArchiveError, checked_members


def test_vinyals_split_classes_and_images(omniglot):
    splits = omniglot.meta["splits"]
    assert {name: len(split["classes"]) for name, split in splits.items()} == {"train": 4112, "val": 688,
                                                                               "test": 1692}
    assert {name: split["size"] for name, split in splits.items()} == {"train": 82240, "val": 13760, "test": 33840}
    test = omniglot.split("test")
    assert test.classes[0].endswith("/rot000") and np.bincount(test.labels).tolist() == [20] * 1692
    image, label = test[0]
    assert image.shape == (28, 28, 1) and image.dtype == np.uint8 and label == 0
    assert image.mean() < 128  # strokes bright on a dark background


def test_rotation_classes_are_rotated_copies(omniglot):
    train = omniglot.split("train")
    base = train.classes.index(train.classes[0].replace(train.classes[0].rsplit("/", 1)[1], "rot000"))
    quarter = train.classes.index(train.classes[base].replace("rot000", "rot090"))
    first = np.flatnonzero(train.labels == base)[0]
    turned = np.flatnonzero(train.labels == quarter)[0]
    assert np.array_equal(np.rot90(train[first][0]), train[turned][0])


def test_transform_matches_the_store(data_root, omniglot):
    from hallucinate.data.transforms import ImageTransform

    test = omniglot.split("test")
    character = test.classes[0].removesuffix("/rot000")
    with zipfile.ZipFile(data_root / "omniglot/images_evaluation.zip") as zipped:
        name = min(n for n in zipped.namelist() if n.startswith(f"images_evaluation/{character}/") and n.endswith(".png"))
        with zipped.open(name) as f:
            tensor = ImageTransform(omniglot_data.prepare_image, 28)(Image.open(f))
    assert tensor.shape == (1, 28, 28) and tensor.dtype == torch.float32
    first_drawing = test[int(np.flatnonzero(test.labels == 0)[0])][0]  # drawings are stored in file-name order
    assert np.array_equal((tensor[0].numpy() * 255).round().astype(np.uint8), first_drawing[:, :, 0])


def test_missing_files_without_network_name_the_files_and_folder(tmp_path, monkeypatch):
    def no_network(url, destination):
        raise OSError("network unreachable")

    monkeypatch.setattr(archive, "download", no_network)
    with pytest.raises(FileNotFoundError, match=r"missing images_background.zip, images_evaluation.zip.*"
                                                r"in .*omniglot.*network unreachable"):
        omniglot_data.source_files(tmp_path)


def test_archive_members_escaping_the_target_folder_are_refused(tmp_path):
    for bad in ("../evil.png", "/etc/evil.png", "images_background/../../evil.png"):
        path = tmp_path / "bad.zip"
        with zipfile.ZipFile(path, "w") as zipped:
            zipped.writestr("images_background/ok.png", b"")
            zipped.writestr(bad, b"")
        with zipfile.ZipFile(path) as zipped, pytest.raises(UnsafeArchiveError, match="outside the target folder"):
            checked_members(zipped)


def test_augmentation_is_applied_and_reproducible(omniglot):
    from hallucinate.data.transforms import build_augmentation

    plain = omniglot.split("train")
    augmented = omniglot.split("train", augment=build_augmentation("omniglot_affine"), augment_seed=3)
    request = list(range(0, 200, 10))
    first, again = augmented.__getitems__(request), augmented.__getitems__(request)
    assert all(np.array_equal(a, b) for (a, _), (b, _) in zip(first, again))
    changed = [not np.array_equal(a, p) for (a, _), (p, _) in zip(first, plain.__getitems__(request))]
    assert sum(changed) >= len(request) // 2  # p=0.8 per image
    assert [label for _, label in first] == [label for _, label in plain.__getitems__(request)]
    with pytest.raises(KeyError, match="unknown augmentation 'blur'; valid names: none"):
        build_augmentation("blur")
