"""Building the CIFAR-FS zips from a CIFAR-100 python release, on a tiny fake of that release and with no network."""
import hashlib
import os
import pickle
import tarfile
import urllib.error
import urllib.request
import zipfile

import numpy as np
import pytest
from PIL import Image

from hallucinate.data import cifar_fs as cifar_fs_data
from hallucinate.data import cifar_fs_build, open_store

# CIFAR-100's meta["fine_label_names"], in label order
FINE_LABEL_NAMES = [
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle", "bottle", "bowl", "boy",
    "bridge", "bus", "butterfly", "camel", "can", "castle", "caterpillar", "cattle", "chair", "chimpanzee", "clock",
    "cloud", "cockroach", "couch", "crab", "crocodile", "cup", "dinosaur", "dolphin", "elephant", "flatfish",
    "forest", "fox", "girl", "hamster", "house", "kangaroo", "keyboard", "lamp", "lawn_mower", "leopard", "lion",
    "lizard", "lobster", "man", "maple_tree", "motorcycle", "mountain", "mouse", "mushroom", "oak_tree", "orange",
    "orchid", "otter", "palm_tree", "pear", "pickup_truck", "pine_tree", "plain", "plate", "poppy", "porcupine",
    "possum", "rabbit", "raccoon", "ray", "road", "rocket", "rose", "sea", "seal", "shark", "shrew", "skunk",
    "skyscraper", "snail", "snake", "spider", "squirrel", "streetcar", "sunflower", "sweet_pepper", "table", "tank",
    "telephone", "television", "tiger", "tractor", "train", "trout", "tulip", "turtle", "wardrobe", "whale",
    "willow_tree", "wolf", "woman", "worm"]
PER_CLASS = {"train": 3, "test": 2}  # CIFAR-100 has 500 and 100


def _shipped(split):
    return (cifar_fs_data.SHIPPED_SPLIT_LISTS / f"{split}.txt").read_text().split()


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Every download (torchvision's included) goes through urllib.request.urlopen: here it fails at once."""
    def unreachable(*args, **kwargs):
        raise urllib.error.URLError("network unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", unreachable)


def fake_cifar100(folder):
    """A ``cifar-100-python`` folder in the release's format with PER_CLASS images of each class, shuffled as in the
    release; returns ``{batch: (data uint8 [N, 3072], fine labels [N])}``.

    The release holds Python 2 pickles, whose str keys and names unpickle as bytes under encoding="bytes"; here they
    are bytes already. Protocol 4 pickles a numpy array as the release's pickles do (protocol 5 would not)."""
    rng = np.random.default_rng(0)
    extracted = folder / "cifar-100-python"
    extracted.mkdir(parents=True)
    batches = {}
    for batch, per_class in PER_CLASS.items():
        labels = rng.permutation(np.repeat(np.arange(100), per_class))
        data = rng.integers(0, 256, (len(labels), 3072), dtype=np.uint8)
        entry = {b"filenames": [f"fake_{i}.png".encode() for i in range(len(labels))], b"batch_label": b"fake",
                 b"fine_labels": labels.tolist(), b"coarse_labels": (labels // 5).tolist(), b"data": data}
        (extracted / batch).write_bytes(pickle.dumps(entry, protocol=4))
        batches[batch] = data, labels
    meta = {b"fine_label_names": [name.encode() for name in FINE_LABEL_NAMES],
            b"coarse_label_names": [f"superclass_{i}".encode() for i in range(20)]}
    (extracted / "meta").write_bytes(pickle.dumps(meta, protocol=4))
    return batches


def _pixels(zipped, name):
    with zipped.open(name) as f, Image.open(f) as image:
        return np.asarray(image.convert("RGB"))


def _members(folder, split):
    with zipfile.ZipFile(folder / f"{split}.zip") as zipped:
        return [name for name in zipped.namelist() if name.endswith(".png")]


def test_shipped_lists_are_the_bertinetto_split_of_the_cifar100_classes(data_root):
    lists = {split: _shipped(split) for split in cifar_fs_data.SPLITS}
    assert {split: len(classes) for split, classes in lists.items()} == {"train": 64, "val": 16, "test": 20}
    assert sorted(sum(lists.values(), [])) == FINE_LABEL_NAMES  # disjoint, and spelled as CIFAR-100's meta spells them
    shared = data_root / "cifar_fs/splits/bertinetto"
    for name in ("train.txt", "val.txt", "test.txt", "LICENSE.maml-cifar-fs"):
        assert (cifar_fs_data.SHIPPED_SPLIT_LISTS / name).read_bytes() == (shared / name).read_bytes()


def test_the_download_is_torchvisions():
    from torchvision.datasets import CIFAR100

    assert (cifar_fs_build.CIFAR100_URL, cifar_fs_build.TARBALL, cifar_fs_build.EXTRACTED) == (
        CIFAR100.url, CIFAR100.filename, CIFAR100.base_folder)


def test_build_from_an_extracted_copy_holds_every_image_of_the_split_classes(tmp_path):
    folder = tmp_path / "cifar_fs"
    batches = fake_cifar100(folder)
    files = cifar_fs_data.source_files(tmp_path)
    assert [path.name for path in files] == ["train.zip", "val.zip", "test.zip", "train.txt", "val.txt", "test.txt"]
    classes, indices = {}, []
    for split in cifar_fs_data.SPLITS:
        members = _members(folder, split)
        classes[split] = list(dict.fromkeys(name.split("/")[1] for name in members))
        assert classes[split] == _shipped(split)
        assert all(sum(name.startswith(f"{split}/{c}/") for name in members) == 3 + 2 for c in classes[split])
        indices += [int(name.rsplit("/", 1)[1].removesuffix(".png")) for name in members]
    assert [len(names) for names in classes.values()] == [64, 16, 20]
    assert len(set(sum(classes.values(), []))) == 100
    assert sorted(indices) == list(range(300 + 200))  # each image once: the train batch's, then the test batch's
    data = np.concatenate([batches["train"][0], batches["test"][0]])
    labels = np.concatenate([batches["train"][1], batches["test"][1]])
    for index in (0, 299, 300, 499):
        name = FINE_LABEL_NAMES[labels[index]]
        split = next(split for split in cifar_fs_data.SPLITS if name in _shipped(split))
        with zipfile.ZipFile(folder / f"{split}.zip") as zipped:
            assert np.array_equal(_pixels(zipped, f"{split}/{name}/{index}.png"),
                                  data[index].reshape(3, 32, 32).transpose(1, 2, 0))
    assert not list(folder.glob("*.part"))


def test_a_second_build_is_a_no_op(tmp_path):
    folder = tmp_path / "cifar_fs"
    fake_cifar100(folder)
    fingerprint = cifar_fs_data.source_fingerprint(tmp_path)
    stamps = {path: path.stat().st_mtime_ns for path in folder.glob("*.zip")}
    (folder / "cifar-100-python/train").unlink()  # a second build would need it, or the network
    assert cifar_fs_data.source_fingerprint(tmp_path) == fingerprint
    assert {path: path.stat().st_mtime_ns for path in folder.glob("*.zip")} == stamps


def test_the_same_release_builds_the_same_zip_bytes(tmp_path):
    fingerprints = []
    for name in ("a", "b"):
        fake_cifar100(tmp_path / name / "cifar_fs")
        fingerprints.append(cifar_fs_data.source_fingerprint(tmp_path / name))
    assert fingerprints[0] == fingerprints[1]


def test_an_interrupted_build_leaves_no_zip(tmp_path, monkeypatch):
    folder = tmp_path / "cifar_fs"
    fake_cifar100(folder)
    encode, calls = cifar_fs_build._png, []

    def interrupted(image):
        calls.append(1)
        if len(calls) > 64 * 5 + 10:  # train.zip is complete under its temporary name, val.zip half written
            raise KeyboardInterrupt
        return encode(image)

    monkeypatch.setattr(cifar_fs_build, "_png", interrupted)
    with pytest.raises(KeyboardInterrupt):
        cifar_fs_data.source_files(tmp_path)
    assert sorted(path.name for path in folder.iterdir()) == ["cifar-100-python"]
    monkeypatch.setattr(cifar_fs_build, "_png", encode)
    cifar_fs_data.source_files(tmp_path)
    assert all(len(_members(folder, split)) == len(_shipped(split)) * 5 for split in cifar_fs_data.SPLITS)


def test_no_copy_and_no_network_says_what_to_fetch_and_where(tmp_path):
    folder = tmp_path / "cifar_fs"
    with pytest.raises(FileNotFoundError) as raised:
        cifar_fs_data.source_files(tmp_path)
    message, folder = str(raised.value), folder.resolve()
    assert message.startswith(f"CIFAR-FS: no train.zip, val.zip, test.zip in {folder}, and CIFAR-100 could not be "
                              "fetched to build them (")
    url = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
    assert f"Download {url} to {folder / 'cifar-100-python.tar.gz'} and run again" in message
    assert "network unreachable" in message and "put the CIFAR-FS zips (train.zip, val.zip, test.zip" in message
    assert not list(folder.glob("*.zip")) and not list(folder.glob("*.part"))


def test_a_tarball_already_there_is_extracted_without_network(tmp_path, monkeypatch):
    from torchvision.datasets import CIFAR100

    source = tmp_path / "source"
    fake_cifar100(source)
    folder = tmp_path / "data/cifar_fs"
    folder.mkdir(parents=True)
    with tarfile.open(folder / "cifar-100-python.tar.gz", "w:gz") as tar:
        tar.add(source / "cifar-100-python", arcname="cifar-100-python")
    # torchvision checks the tarball against the release's md5; this fake has its own
    md5 = hashlib.md5((folder / "cifar-100-python.tar.gz").read_bytes()).hexdigest()
    monkeypatch.setattr(CIFAR100, "tgz_md5", md5)
    cifar_fs_data.source_files(tmp_path / "data")
    assert (folder / "cifar-100-python/meta").read_bytes() == (source / "cifar-100-python/meta").read_bytes()
    assert all(len(_members(folder, split)) == len(_shipped(split)) * 5 for split in cifar_fs_data.SPLITS)
    assert not list(folder.glob("*.part"))


def test_open_store_ingests_the_built_zips(tmp_path, monkeypatch):
    monkeypatch.setattr(cifar_fs_data, "MIN_IMAGES_PER_CLASS", 5)  # the real check asks for CIFAR-FS's 500 or more
    fake_cifar100(tmp_path / "data/cifar_fs")
    store = open_store("cifar_fs", root=tmp_path / "data", cache=tmp_path / "cache")
    splits = store.meta["splits"]
    assert {name: (split["classes"], split["size"]) for name, split in splits.items()} == {
        name: (_shipped(name), len(_shipped(name)) * 5) for name in cifar_fs_data.SPLITS}
    image, label = store.split("val")[0]
    assert image.shape == (32, 32, 3) and image.dtype == np.uint8 and label == 0


def test_a_class_list_naming_no_cifar100_class_is_refused(tmp_path):
    folder = tmp_path / "cifar_fs"
    fake_cifar100(folder)
    (folder / "splits/bertinetto").mkdir(parents=True)
    for split in cifar_fs_data.SPLITS:
        classes = [name.replace("aquarium_fish", "aquarium-fish") for name in _shipped(split)]
        (folder / f"splits/bertinetto/{split}.txt").write_text("\n".join(classes) + "\n")
    with pytest.raises(ValueError, match=r"class list names 'aquarium-fish', which .*meta does not list"):
        cifar_fs_data.source_files(tmp_path)
    assert not list(folder.glob("*.zip"))


class _Payload:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return os.mkdir, (str(self.path),)


def test_a_pickle_carrying_code_is_refused_unrun(tmp_path):
    folder = tmp_path / "cifar_fs"
    fake_cifar100(folder)
    (folder / "cifar-100-python/meta").write_bytes(pickle.dumps({b"fine_label_names": _Payload(tmp_path / "ran")}))
    with pytest.raises(ValueError, match=r"meta is not a CIFAR-100 python file \(it names \w+\.mkdir"):
        cifar_fs_data.source_files(tmp_path)
    assert not (tmp_path / "ran").exists()
