import io
import shutil
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from hallucinate.data import archive
from hallucinate.data import cifar_fs as cifar_fs_data


@pytest.fixture(scope="session")
def cifar_fs(data_root, cache):
    from hallucinate.data import open_store

    if not (data_root / "cifar_fs" / "train.zip").is_file():
        pytest.fail(f"the tests need CIFAR-FS under {data_root.resolve()}/cifar_fs: set HALLUCINATE_DATA to the data "
                    "folder")
    return open_store("cifar_fs", root=data_root, cache=cache)


def _split_list(data_root, split):
    return cifar_fs_data.split_lists(data_root / "cifar_fs")[split].read_text().split()


def _per_class(store) -> int:
    """Images a class: 500 in the shared copy (CIFAR-100's training images only), 600 in a build from CIFAR-100."""
    per_class = store.meta["splits"]["test"]["size"] // 20
    assert per_class in (500, 600)
    return per_class


def _pil_decode(zipped, name):
    with zipped.open(name) as f, Image.open(f) as image:
        return np.asarray(image.convert("RGB"))


def test_bertinetto_split_classes_and_images(data_root, cifar_fs):
    splits = cifar_fs.meta["splits"]
    assert {name: len(split["classes"]) for name, split in splits.items()} == {"train": 64, "val": 16, "test": 20}
    per_class = _per_class(cifar_fs)
    assert {name: split["size"] for name, split in splits.items()} == {"train": 64 * per_class,
                                                                        "val": 16 * per_class, "test": 20 * per_class}
    for name in ("train", "val", "test"):
        split = cifar_fs.split(name)
        assert split.classes == _split_list(data_root, name)
        assert np.bincount(split.labels).tolist() == [per_class] * len(split.classes)
    image, label = cifar_fs.split("test")[0]
    assert image.shape == (32, 32, 3) and image.dtype == np.uint8 and label == 0


def test_splits_are_disjoint(data_root, cifar_fs):
    classes = [set(cifar_fs.split(name).classes) for name in ("train", "val", "test")]
    assert len(set.union(*classes)) == 100
    indices = []
    for name in ("train", "val", "test"):
        with zipfile.ZipFile(data_root / f"cifar_fs/{name}.zip") as zipped:
            indices.append({n.rsplit("/", 1)[1] for n in zipped.namelist() if n.endswith(".png")})
    assert sum(map(len, indices)) == len(set.union(*indices)) == 100 * _per_class(cifar_fs)


def test_known_images_decode_as_pil_reads_them(data_root, cifar_fs):
    from hallucinate.data.transforms import ImageTransform

    val = cifar_fs.split("val")
    cattle = np.flatnonzero(val.labels == val.classes.index("cattle"))
    with zipfile.ZipFile(data_root / "cifar_fs/val.zip") as zipped:
        indices = sorted(int(n.rsplit("/", 1)[1].removesuffix(".png")) for n in zipped.namelist()
                         if n.startswith("val/cattle/") and n.endswith(".png"))
        assert indices[0] == 0  # CIFAR-100 train image 0 is cattle
        for position in range(3):  # images in integer order of their index, not file-name order
            assert np.array_equal(val[int(cattle[position])][0], _pil_decode(zipped, f"val/cattle/{indices[position]}.png"))
        with zipped.open("val/cattle/0.png") as f:
            tensor = ImageTransform(cifar_fs_data.prepare_image, 32)(Image.open(f))
    assert tensor.shape == (3, 32, 32) and tensor.dtype == torch.float32
    assert np.array_equal((tensor.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8), val[int(cattle[0])][0])


def test_five_way_five_shot_episode(cifar_fs):
    from hallucinate.data.sampler import EpisodeSampler, episode_loader
    from hallucinate.data.transforms import build_augmentation

    for augment in (None, build_augmentation("cifar_crop_flip")):
        train = cifar_fs.split("train", augment=augment, augment_seed=1)
        sampler = EpisodeSampler(train.labels, n_way=5, k_shot=5, q_query=3, episodes=2, seed=0)
        episode = next(iter(episode_loader(train, sampler)))
        assert episode.support.shape == (25, 3, 32, 32) and episode.query.shape == (15, 3, 32, 32)
        assert episode.support.dtype == torch.float32 and 0 <= episode.support.min() <= episode.support.max() <= 1
        assert episode.support_labels.tolist() == [c for c in range(5) for _ in range(5)]


def _fake_cifar_fs(tmp_path, data_root, lists, images_per_class):
    """A CIFAR-FS folder whose split lists are ``lists`` and whose zips hold ``images_per_class`` tiny PNGs for each
    class named in ``images_per_class``."""
    folder = tmp_path / "cifar_fs"
    (folder / "splits/bertinetto").mkdir(parents=True)
    for split, classes in lists.items():
        (folder / f"splits/bertinetto/{split}.txt").write_text("\n".join(classes) + "\n")
        with zipfile.ZipFile(folder / f"{split}.zip", "w") as zipped:
            for class_name in classes:
                for i in range(images_per_class.get(class_name, 0)):
                    png = io.BytesIO()
                    Image.new("RGB", (32, 32), (i % 256, 0, 0)).save(png, format="PNG")
                    zipped.writestr(f"{split}/{class_name}/{i}.png", png.getvalue())
    return folder


def test_missing_zip_is_named_with_how_to_build_it(tmp_path, data_root, monkeypatch):
    def no_download(url, destination):
        raise AssertionError(f"tried to download {url}")

    monkeypatch.setattr(archive, "download", no_download)
    folder = tmp_path / "cifar_fs"
    shutil.copytree(data_root / "cifar_fs/splits/bertinetto", folder / "splits/bertinetto")
    for split in ("val", "test"):
        (folder / f"{split}.zip").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match=r"CIFAR-FS: missing train\.zip in .*cifar_fs.*"
                                                r"cifar-100-python\.tar\.gz.*Bertinetto"):
        cifar_fs_data.source_files(tmp_path)


def test_short_class_and_unknown_class_are_named(tmp_path, data_root):
    lists = {"train": ["apple"], "val": ["ghost"], "test": ["bee"]}
    _fake_cifar_fs(tmp_path, data_root, lists, {"apple": 3, "bee": 500})
    with pytest.raises(ValueError, match=r"class 'apple' in .*train\.zip has 3 images, expected at least 500"):
        list(cifar_fs_data.read_classes(tmp_path))
    shutil.rmtree(tmp_path / "cifar_fs")
    _fake_cifar_fs(tmp_path, data_root, lists, {"apple": 500, "bee": 500})
    with pytest.raises(FileNotFoundError, match=r"val\.txt names 'ghost', which .*val\.zip does not hold"):
        list(cifar_fs_data.read_classes(tmp_path))
