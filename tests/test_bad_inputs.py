"""Bad inputs refused clearly, as the user meets them: through `hallucinate.cli.main` (exit code 2 and one line on
stderr naming the problem) or the function a script would call.

It extends tests/test_store.py (a short LMDB record), tests/test_sampler.py (N, K, Q checks on the sampler alone),
tests/test_cli.py (a wrong --set type), tests/test_omniglot.py and tests/test_cifar_fs.py (missing files, three
escaping archive names) and tests/test_checkpoint.py (a checkpoint naming os.system)."""
import io
import pathlib
import re
import shutil
import types
import zipfile
from pathlib import Path

import lmdb
import numpy as np
import pytest
import torch
from PIL import Image

from hallucinate.cli import main
from hallucinate.data import archive, open_store
from hallucinate.data.archive import UnsafeArchiveError, checked_members
from hallucinate.data.store import ImageStore, StoreError, write_store
from hallucinate.training import CheckpointError, load_checkpoint
from hallucinate.training.checkpoint import FORMAT
from tests.test_faults import register_toy, toy_dataset


def _cli(capsys, *args) -> tuple[int, str]:
    """The exit code and what stderr says, less progress bars."""
    code = main([str(arg) for arg in args])
    lines = [line for line in re.split("[\r\n]", capsys.readouterr().err) if line and not line.startswith("ingest ")]
    return code, "".join(line + "\n" for line in lines)


# --- corrupt images and LMDB records -------------------------------------------------------------------------------


def _png(value: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (105, 105), value).save(buffer, format="PNG")
    return buffer.getvalue()


def fake_omniglot(root: Path, extra: dict[str, dict[str, bytes]] | None = None) -> Path:
    """Omniglot in the official layout, three characters of three drawings, one character per Vinyals split; ``extra``
    adds or replaces members of an archive."""
    folder = root / "omniglot"
    (folder / "splits/vinyals").mkdir(parents=True)
    characters = {"images_background.zip": ["Alpha/character01", "Alpha/character02"],
                  "images_evaluation.zip": ["Beta/character01"]}
    for name, drawn in characters.items():
        members = {f"{name.removesuffix('.zip')}/{c}/{i:04d}_01.png": _png(40 * i) for c in drawn for i in range(3)}
        members |= (extra or {}).get(name, {})
        with zipfile.ZipFile(folder / name, "w") as zipped:
            for member, data in members.items():
                zipped.writestr(member, data)
    for split, character in zip(("train", "val", "test"), sum(characters.values(), [])):
        (folder / f"splits/vinyals/{split}.txt").write_text(f"{character}/rot000\n")
    return root


def test_the_tiny_omniglot_ingests(tmp_path, capsys):
    """The control for the tests below: without the fault, the fake data root ingests."""
    code, err = _cli(capsys, "ingest", "omniglot", "--data-root", fake_omniglot(tmp_path / "data"), "--cache-dir",
                     tmp_path / "cache")
    assert code == 0, err
    assert ImageStore(tmp_path / "cache/omniglot-28px.lmdb").meta["splits"]["train"]["size"] == 3


BROKEN_PNG = "images_background/Alpha/character02/0001_01.png"


def test_corrupt_image_stops_the_ingest_and_leaves_no_store(tmp_path):
    root = fake_omniglot(tmp_path / "data", {"images_background.zip": {BROKEN_PNG: b"\x89PNG not really"}})
    assert main(["ingest", "omniglot", "--data-root", str(root), "--cache-dir", str(tmp_path / "cache")]) == 2
    assert list((tmp_path / "cache").iterdir()) == []


def test_corrupt_image_is_named_by_its_archive_member(tmp_path, capsys):
    root = fake_omniglot(tmp_path / "data", {"images_background.zip": {BROKEN_PNG: b"\x89PNG not really"}})
    code, err = _cli(capsys, "ingest", "omniglot", "--data-root", root, "--cache-dir", tmp_path / "cache")
    assert code == 2 and BROKEN_PNG in err


def _toy_store(path: Path) -> Path:
    return write_store(path, toy_dataset("abc").read_classes(".", 5), dataset="toy", image_size=5, channels=1,
                       source_fingerprint="abc")


def _edit(path: Path, key: bytes, value: bytes | None) -> None:
    env = lmdb.open(str(path), map_size=1 << 30)
    with env.begin(write=True) as txn:
        if value is None:
            txn.delete(key)
        else:
            txn.put(key, value)
    env.close()


def test_missing_and_mislabelled_records_are_named(tmp_path):
    path = _toy_store(tmp_path / "toy.lmdb")
    _edit(path, b"train/00000002", None)
    _edit(path, b"test/labels", np.zeros(3, np.int32).tobytes())
    store = ImageStore(path)
    with pytest.raises(StoreError, match="record 'train/00000002' is missing"):
        store.split("train")[2]
    assert store.split("train")[3][1] == 0  # the records around it still read
    with pytest.raises(StoreError, match="record 'test/labels' holds 3 labels, the metadata says 8"):
        store.split("test")


def test_corrupt_record_read_in_a_loader_worker_is_named_in_the_main_process(tmp_path):
    """Training reads through DataLoader workers (num_workers=1 by default): the key must survive the trip."""
    path = _toy_store(tmp_path / "toy.lmdb")
    _edit(path, b"train/00000005", b"short")
    loader = torch.utils.data.DataLoader(ImageStore(path).split("train"), batch_size=4, num_workers=1,
                                         collate_fn=list, multiprocessing_context="spawn")
    with pytest.raises(StoreError, match="record 'train/00000005' holds 5 bytes, expected 25"):
        list(loader)


STORE_DAMAGE = {
    "truncated": (lambda data: data[:len(data) // 2], "data.mdb is truncated: .* bytes, its own index needs"),
    "not an LMDB file": (lambda data: b"\0" * 4096 + data[4096:], "is not a readable store .*MDB_INVALID"),
}


@pytest.mark.parametrize("damage", STORE_DAMAGE, ids=list(STORE_DAMAGE))
def test_damaged_store_file_is_refused_and_rebuilt(tmp_path, monkeypatch, damage):
    """Before the fix, a truncated data.mdb killed the reading process with SIGBUS and a non-LMDB one raised
    lmdb.Error, which open_store did not treat as a store to rebuild."""
    # 40 classes of 60 images: enough pages that cutting the file in half removes some the index points to.
    classes = lambda root, size: (("train", f"c{c}", np.full((60, 5, 5, 1), c, np.uint8)) for c in range(40))
    register_toy(monkeypatch, types.SimpleNamespace(DEFAULT_IMAGE_SIZE=5, CHANNELS=1, read_classes=classes,
                                                    source_fingerprint=lambda root: "abc"))
    path = open_store("toy", root=".", cache=tmp_path).path
    corrupt, pattern = STORE_DAMAGE[damage]
    # Damaged as a later process finds it: a new folder (this process keeps the store it opened mapped).
    damaged = shutil.copytree(path, tmp_path / "damaged")
    (damaged / "data.mdb").write_bytes(corrupt((damaged / "data.mdb").read_bytes()))
    shutil.rmtree(path)
    damaged.replace(path)
    with pytest.raises(StoreError, match=pattern):
        ImageStore(path)
    store = open_store("toy", root=".", cache=tmp_path)
    assert len(store.split("train")) == 2400 and int(store.split("train")[2399][0][0, 0, 0]) == 39


# --- impossible episodes -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("settings, message", [
    (["n_way=5000"], "asked for 5000-way episodes but there are only 4112 classes"),
    (["n_way=-3"], "n_way, k_shot, q_query and episodes must be at least 1, got -3, 5, 5, 4000"),
    (["k_shot=0"], "must be at least 1, got 60, 0, 5, 4000"),
    (["q_query=-1"], "must be at least 1, got 60, 5, -1, 4000"),
    (["episodes=0"], "must be at least 1, got 60, 5, 5, 0"),
    (["k_shot=15", "q_query=10"], "asked for 15 shots \\+ 10 queries = 25 images per class but class 0 has only 20"),
], ids=["N>classes", "N<0", "K=0", "Q<0", "no episodes", "K+Q>images"])
def test_impossible_training_episodes_are_refused(omniglot, data_root, cache, tmp_path, capsys, settings, message):
    sets = [x for item in ["num_workers=0", *settings] for x in ("--set", item)]
    code, err = _cli(capsys, "run", "pipelines/omniglot_protonet.py", "--out", tmp_path / "run", "--data-root",
                     data_root, "--cache-dir", cache, "--no-progress", *sets)
    assert code == 2
    assert err.startswith("hallucinate run: error: ") and err.count("\n") == 1
    assert re.search(message, err), err
    assert not (tmp_path / "run/checkpoint.pt").exists()


@pytest.mark.parametrize("options, message", [
    (["--n-way", "2000"], "asked for 2000-way episodes but there are only 1692 classes"),
    (["--k-shot", "0"], "must be at least 1, got 5, 0, 15, 1000"),
    (["--k-shot", "19", "--q-query", "5"], "asked for 19 shots \\+ 5 queries = 24 images per class but class 0 has "
                                           "only 20"),
    (["--episodes", "0"], "must be at least 1, got 5, 1, 15, 0"),
], ids=["N>classes", "K=0", "K+Q>images", "no episodes"])
def test_impossible_evaluation_episodes_are_refused(omniglot, data_root, cache, capsys, options, message):
    code, err = _cli(capsys, "eval", "checkpoints/omniglot_protonet_60way_conv4.pt", "--data-root", data_root,
                     "--cache-dir", cache, "--no-progress", *options)
    assert code == 2 and re.search(f"^hallucinate eval: error: .*{message}", err), err


def test_impossible_validation_episodes_are_refused_before_training(omniglot, data_root, cache, tmp_path, capsys):
    code, err = _cli(capsys, "run", "pipelines/omniglot_protonet.py", "--out", tmp_path / "run", "--data-root",
                     data_root, "--cache-dir", cache, "--no-progress", "--set", "num_workers=0", "--set",
                     "val_n_way=1000", "--set", "episodes=2", "--set", "val_every=2", "--set", "checkpoint_every=1")
    assert code == 2 and "1000-way episodes but there are only 688 classes" in err
    assert "val_n_way" in err and not (tmp_path / "run/checkpoint.pt").exists()


# --- pipeline files and settings -----------------------------------------------------------------------------------


@pytest.mark.parametrize("assignment, message", [
    ("n_ways=5", "unknown setting 'n_ways'; valid keys: dataset \\(str\\), .*n_way \\(int\\)"),
    ("n_way=5.5", "setting 'n_way' expects int, got '5.5'"),
    ("lr=fast", "setting 'lr' expects float, got 'fast'"),
    ("lr=nan", "setting 'lr' expects float, got 'nan' \\(expected a finite number"),
    ("channels_last=maybe", "setting 'channels_last' expects bool, got 'maybe'"),
    ("episodes", "--set expects key=value, got 'episodes'"),
], ids=["unknown", "float for int", "text for float", "nan", "bool", "no ="])
def test_bad_setting_exits_2_with_one_line_naming_it(tmp_path, capsys, assignment, message):
    code, err = _cli(capsys, "run", "pipelines/omniglot_protonet.py", "--out", tmp_path / "run", "--set",
                     assignment)
    assert code == 2 and err.count("\n") == 1 and re.match(f"hallucinate run: error: {message}", err), err
    assert not (tmp_path / "run").exists()  # refused before anything was read or written


PIPELINE = """from hallucinate.pipeline import run_episodic
from hallucinate.training import EpisodicConfig
CONFIG = EpisodicConfig({settings})
def run(config=CONFIG, **options):
    return run_episodic(config, **options)
"""


def test_missing_pipeline_file_and_one_without_config_are_named(tmp_path, capsys):
    code, err = _cli(capsys, "run", tmp_path / "nowhere.py")
    assert code == 2 and err.startswith(f"hallucinate run: error: no pipeline file at {tmp_path / 'nowhere.py'}; "
                                        f"the pipelines in ./pipelines: pipelines/")
    (tmp_path / "empty.py").write_text("x = 1\n")
    code, err = _cli(capsys, "run", tmp_path / "empty.py")
    assert code == 2 and err == f"hallucinate run: error: pipeline {tmp_path / 'empty.py'} must define CONFIG and run\n"


@pytest.mark.parametrize("settings", ["n_ways=5", "n_way='five', episodes=2, num_workers=0"],
                         ids=["unknown setting", "wrong type"])
def test_bad_setting_inside_a_pipeline_file_is_named(omniglot, data_root, cache, tmp_path, capsys, settings):
    (tmp_path / "pipeline.py").write_text(PIPELINE.format(settings=settings))
    code, err = _cli(capsys, "run", tmp_path / "pipeline.py", "--out", tmp_path / "run", "--data-root", data_root,
                     "--cache-dir", cache, "--no-progress")
    assert code == 2 and "n_way" in err


# --- data roots without the expected files -------------------------------------------------------------------------


def _no_network(url, destination):
    raise OSError("network unreachable")


@pytest.mark.parametrize("command", [["ingest", "omniglot"], ["run", "pipelines/omniglot_protonet.py"]],
                         ids=["ingest", "run"])
def test_empty_data_root_names_the_missing_files_and_the_folder(tmp_path, monkeypatch, capsys, command):
    monkeypatch.setattr(archive, "download", _no_network)
    code, err = _cli(capsys, *command, "--data-root", tmp_path / "empty", "--cache-dir", tmp_path / "cache")
    assert code == 2 and err == (
        f"hallucinate {command[0]}: error: Omniglot: missing images_background.zip, images_evaluation.zip, "
        f"splits/vinyals/train.txt, splits/vinyals/val.txt, splits/vinyals/test.txt in {tmp_path / 'empty/omniglot'} "
        "and the download failed (network unreachable). Put the official files there, or point --data-root / "
        "$HALLUCINATE_DATA at a folder holding them.\n")
    assert not (tmp_path / "cache").exists()


def test_empty_cifar_fs_root_names_the_files_and_how_to_make_them(tmp_path, monkeypatch, capsys):
    def unreachable(*args, **kwargs):  # torchvision fetches CIFAR-100 through urllib.request.urlopen
        raise OSError("network unreachable")

    monkeypatch.setattr("urllib.request.urlopen", unreachable)
    code, err = _cli(capsys, "ingest", "cifar_fs", "--data-root", tmp_path, "--cache-dir", tmp_path / "cache")
    assert code == 2
    assert err.startswith(f"hallucinate ingest: error: CIFAR-FS: no train.zip, val.zip, test.zip in "
                          f"{tmp_path / 'cifar_fs'}, and CIFAR-100 could not be fetched to build them "
                          "(https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz -> "
                          f"{tmp_path / 'cifar_fs/cifar-100-python.tar.gz'}: network unreachable). Download ")


def test_a_file_that_is_not_a_zip_is_named(tmp_path, capsys):
    """Before the fix: `zipfile.BadZipFile: File is not a zip file`, a traceback naming no file."""
    root = fake_omniglot(tmp_path / "data")
    (root / "omniglot/images_evaluation.zip").write_text("<html>404 Not Found</html>")
    code, err = _cli(capsys, "ingest", "omniglot", "--data-root", root, "--cache-dir", tmp_path / "cache")
    assert code == 2 and err.startswith(f"hallucinate ingest: error: Omniglot: "
                                        f"{root / 'omniglot/images_evaluation.zip'} is not a zip archive")


# --- archives with members that escape the target folder -----------------------------------------------------------


ESCAPING = ["..\\evil.png", "C:/evil.png", "C:evil.png", "\\\\server\\share\\evil.png", "//evil.png",
            "images_background/./../../evil.png", "images_background/Alpha/../../../evil.png"]
HARMLESS = ["images_background/a..b/0001_01.png", "images_background/..hidden/0001_01.png",
            "images_background/Alpha/./character01/0001_01.png", "images_background/x:y.png"]


def _zip(path: Path, names: list[str]) -> Path:
    with zipfile.ZipFile(path, "w") as zipped:
        for name in names:
            zipped.writestr(name, b"")
    return path


@pytest.mark.parametrize("name", ESCAPING)
def test_escaping_member_is_refused(tmp_path, name):
    with zipfile.ZipFile(_zip(tmp_path / "bad.zip", ["images_background/ok.png", name])) as zipped, \
            pytest.raises(UnsafeArchiveError, match="would be written outside the target folder"):
        checked_members(zipped)


def test_harmless_names_with_dots_and_colons_are_read(tmp_path):
    with zipfile.ZipFile(_zip(tmp_path / "good.zip", HARMLESS)) as zipped:
        assert [m.filename for m in checked_members(zipped)] == HARMLESS


def test_escaping_member_stops_the_ingest(tmp_path, capsys):
    root = fake_omniglot(tmp_path / "data", {"images_evaluation.zip": {"images_evaluation/../../evil.png": _png(0)}})
    code, err = _cli(capsys, "ingest", "omniglot", "--data-root", root, "--cache-dir", tmp_path / "cache")
    assert code == 2 and err == (f"hallucinate ingest: error: {root / 'omniglot/images_evaluation.zip'}: member "
                                 "'images_evaluation/../../evil.png' would be written outside the target folder; "
                                 "refusing to read this archive\n")
    assert not (tmp_path / "evil.png").exists() and list((tmp_path / "cache").iterdir()) == []


# --- checkpoints that carry code -----------------------------------------------------------------------------------


class _Payload:
    """Unpickling this calls ``Path(marker).touch()``: what a hostile checkpoint would do with os.system."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return pathlib.Path.touch, (pathlib.Path(self.marker),)


@pytest.fixture
def hostile_checkpoint(tmp_path) -> tuple[Path, Path]:
    path, marker = tmp_path / "checkpoint.pt", tmp_path / "code-ran"
    torch.save({"format": FORMAT, "config": {}, "best_model": {"w": torch.zeros(2)}, "payload": _Payload(marker)},
               path)
    return path, marker


def test_the_hostile_payload_is_live(hostile_checkpoint):
    """The control: loaded without weights_only, the file runs its code."""
    path, marker = hostile_checkpoint
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_checkpoint_carrying_code_is_refused_by_the_loaders(hostile_checkpoint):
    from hallucinate import load

    path, marker = hostile_checkpoint
    for loader in (load_checkpoint, load):
        with pytest.raises(CheckpointError, match=f"^{path} holds objects other than tensors and plain data, which "
                                                  "could run code when loaded; it was refused \\(Unsupported global"):
            loader(path)
    assert not marker.exists()


@pytest.mark.parametrize("command", [["eval", "{path}"], ["export", "{path}", "{out}"]], ids=["eval", "export"])
def test_checkpoint_carrying_code_is_refused_by_the_cli(hostile_checkpoint, tmp_path, capsys, command):
    path, marker = hostile_checkpoint
    code, err = _cli(capsys, *[part.format(path=path, out=tmp_path / "small.pt") for part in command])
    assert code == 2 and err.startswith(f"hallucinate {command[0]}: error: {path} holds objects other than tensors")
    assert "could run code when loaded; it was refused" in err and not marker.exists()


def test_resume_from_a_checkpoint_carrying_code_is_refused(hostile_checkpoint, data_root, cache, capsys):
    path, marker = hostile_checkpoint
    code, err = _cli(capsys, "run", "pipelines/omniglot_protonet.py", "--out", path.parent, "--resume",
                     "--data-root", data_root, "--cache-dir", cache, "--no-progress", "--set", "num_workers=0")
    assert code == 2 and f"{path} holds objects other than tensors" in err and not marker.exists()
