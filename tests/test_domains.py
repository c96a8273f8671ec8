import collections
import subprocess
import sys
import unicodedata
from pathlib import Path

import numpy as np
import pytest

from hallucinate.domains import DOMAIN_DATASETS, cifar_fs_gray, handwriting_fonts, hershey, noto_glyphs, render

FONT_DOMAINS = {"noto_glyphs": noto_glyphs, "handwriting_fonts": handwriting_fonts}
# Unicode blocks of the scripts noto_glyphs must never draw: those of Omniglot's Vinyals test alphabets, and
# Cyrillic, Syriac and Gurmukhi, which have alphabets in both its train and test lists
EXCLUDED_BLOCKS = {
    "Cyrillic": [(0x400, 0x52F), (0x1C80, 0x1C8F), (0x2DE0, 0x2DFF), (0xA640, 0xA69F), (0x1E030, 0x1E08F)],
    "Syriac": [(0x700, 0x74F), (0x860, 0x86F)],
    "Gurmukhi": [(0xA00, 0xA7F)],
    "Kannada": [(0xC80, 0xCFF)],
    "Malayalam": [(0xD00, 0xD7F)],
    "Oriya": [(0xB00, 0xB7F)],
    "Tibetan": [(0xF00, 0xFFF)],
    "Mongolian": [(0x1800, 0x18AF), (0x11660, 0x1167F)],
    "Meetei Mayek": [(0xAAE0, 0xAAFF), (0xABC0, 0xABFF)],
    "Syloti Nagri": [(0xA800, 0xA82F)],
}


def test_every_domain_is_registered_and_ci_installs_every_font_package():
    from hallucinate.data import DATASETS

    assert all(DATASETS[name] is module for name, module in DOMAIN_DATASETS.items())
    ci = (Path(__file__).parents[1] / ".ci" / "run").read_text()
    packages = {noto_glyphs.PACKAGE, hershey.PACKAGE, *handwriting_fonts.FONT_PACKAGES}
    assert packages <= set(ci.split('FONT_PACKAGES="')[1].split('"')[0].split())


@pytest.fixture(scope="module")
def noto_fonts():
    return render.FontSet(noto_glyphs.font_files())


@pytest.fixture(scope="module")
def handwriting():
    return render.FontSet(handwriting_fonts.font_files())


@pytest.fixture(scope="module")
def class_lists(noto_fonts, handwriting):
    return {"noto_glyphs": noto_glyphs.class_list(noto_fonts),
            "handwriting_fonts": handwriting_fonts.class_list(handwriting),
            "hershey": hershey.class_list()}


def _render(name, glyph, fonts, image_size=28):
    """One class's 20 images as its domain's `read_classes` renders them."""
    if name == "hershey":
        return hershey.render_class(glyph, image_size)
    module = DOMAIN_DATASETS[name]
    return fonts[name].render(glyph, module.SEED, image_size, module.JITTER, module.MAX_PEN)


@pytest.fixture(scope="module")
def fonts(noto_fonts, handwriting):
    return {"noto_glyphs": noto_fonts, "handwriting_fonts": handwriting}


def test_every_domain_has_the_dataset_contract():
    assert list(DOMAIN_DATASETS) == ["noto_glyphs", "handwriting_fonts", "hershey", "cifar_fs_gray"]
    for module in DOMAIN_DATASETS.values():
        assert module.CHANNELS == 1 and module.DEFAULT_IMAGE_SIZE == 28 and isinstance(module.RENDER_VERSION, int)
        assert callable(module.source_fingerprint) and callable(module.read_classes)


@pytest.mark.parametrize("name", ["noto_glyphs", "handwriting_fonts", "hershey"])
def test_class_counts_and_disjoint_splits(class_lists, name):
    classes = class_lists[name]
    assert collections.Counter(glyph.split for glyph in classes) == DOMAIN_DATASETS[name].EXPECTED_CLASSES
    assert len({glyph.name for glyph in classes}) == len(classes)
    if name == "hershey":
        drawn = {tuple(map(bytes, glyph.strokes)) for glyph in classes}
    else:
        drawn = {glyph.char for glyph in classes}
        assert all(glyph.fonts for glyph in classes)
    assert len(drawn) == len(classes)  # no glyph in two classes, so none in two splits


def test_noto_draws_only_clean_scripts(class_lists):
    classes = class_lists["noto_glyphs"]
    for glyph in classes:
        point = ord(glyph.char)
        for script, blocks in EXCLUDED_BLOCKS.items():
            assert not any(low <= point <= high for low, high in blocks), f"{glyph.name} is in {script}"
        script = glyph.name.split("/")[0]
        _, ranges, _ = (noto_glyphs.SCRIPTS | noto_glyphs.VAL_SCRIPTS)[script]
        assert any(low <= point <= high for low, high in ranges)
        assert unicodedata.category(glyph.char) in ({"So"} if script == "Braille" else {"Lu", "Ll", "Lt", "Lo"})
        assert (glyph.split == "val") == (script in noto_glyphs.VAL_SCRIPTS)
    assert {glyph.name.split("/")[0] for glyph in classes if glyph.split == "test"} == set(noto_glyphs.SCRIPTS)


def test_noto_scripts_stand_for_vinyals_alphabets(data_root):
    folder = data_root / "omniglot" / "splits" / "vinyals"
    alphabets = {split: {line.split("/")[0] for line in (folder / f"{split}.txt").read_text().split()}
                 for split in ("train", "val", "test")}
    for table, split in ((noto_glyphs.SCRIPTS, "train"), (noto_glyphs.VAL_SCRIPTS, "val")):
        for script, (names, _, _) in table.items():
            assert set(names) <= alphabets[split] and not set(names) & alphabets["test"], script


def test_notdef_and_empty_glyphs_are_not_covered(noto_fonts):
    sans, runic = (noto_glyphs.FONT_DIR / name for name in ("NotoSans-Regular.ttf", "NotoSansRunic-Regular.ttf"))
    assert noto_fonts.covering("A", [sans, runic]) == (sans,)
    assert noto_fonts.covering("\u16A0", [sans, runic]) == (runic,)  # RUNIC LETTER FEHU: NotoSans has .notdef
    assert noto_fonts.covering(" ", [sans, runic]) == ()
    assert noto_fonts.covering(render.UNASSIGNED, [sans, runic]) == ()


def test_check_ink_refuses_an_empty_rendering():
    canvas = np.zeros((render.CANVAS, render.CANVAS), dtype=np.uint8)
    canvas[:6, :6] = 255  # 36 ink pixels, not more than 40
    with pytest.raises(render.RenderError, match="36 ink pixels"):
        render.check_ink(canvas, "class 'x'")
    canvas[:7, :7] = 255
    assert render.check_ink(canvas, "class 'x'") is canvas


@pytest.mark.parametrize("name", ["noto_glyphs", "handwriting_fonts", "hershey"])
def test_renderings_are_deterministic_and_distinct(class_lists, fonts, name):
    glyph = class_lists[name][len(class_lists[name]) // 2]
    first = _render(name, glyph, fonts)
    fresh = {"noto_glyphs": render.FontSet(noto_glyphs.font_files()),
             "handwriting_fonts": render.FontSet(handwriting_fonts.font_files())}
    assert first.tobytes() == _render(name, glyph, fresh).tobytes()
    assert first.shape == (20, 28, 28, 1) and first.dtype == np.uint8
    assert len({image.tobytes() for image in first}) == 20


@pytest.mark.parametrize("name", ["noto_glyphs", "handwriting_fonts", "hershey"])
def test_renderings_are_bright_centred_strokes_on_dark(class_lists, fonts, name):
    rng = np.random.default_rng(0)
    by_split = collections.defaultdict(list)
    for glyph in class_lists[name]:
        by_split[glyph.split].append(glyph)
    for split, glyphs in by_split.items():
        for index in rng.choice(len(glyphs), 3, replace=False):
            for image in _render(name, glyphs[index], fonts)[:, :, :, 0]:
                border = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])
                assert border.max() < 128 and np.median(image) < 32  # a dark background, the glyph inside
                ys, xs = np.nonzero(image > 64)
                assert len(xs) >= 15  # bright ink
                side = max(xs.max() - xs.min(), ys.max() - ys.min()) + 1
                assert 0.45 * 28 <= side <= 0.95 * 28, (glyphs[index].name, side)
                assert abs(np.mean(xs) - 13.5) < 6 and abs(np.mean(ys) - 13.5) < 6


def test_handwriting_latin_classes_use_20_different_fonts(class_lists):
    latin = [glyph for glyph in class_lists["handwriting_fonts"] if glyph.name.startswith("Latin/")]
    assert len(latin) == 62 and all(len(glyph.fonts) == 32 for glyph in latin)
    kana = [glyph for glyph in class_lists["handwriting_fonts"] if not glyph.name.startswith("Latin/")]
    assert kana and all(" SMALL " not in unicodedata.name(glyph.char) for glyph in kana)


def test_split_by_permutation_is_a_seeded_cut():
    names = [f"c{i:02d}" for i in range(10)]
    splits = render.split_by_permutation(names, 7, {"train": 0.6, "val": 0.2, "test": 0.2})
    assert collections.Counter(splits.values()) == {"train": 6, "val": 2, "test": 2}
    assert splits == render.split_by_permutation(list(reversed(names)), 7, {"train": 0.6, "val": 0.2, "test": 0.2})
    assert splits != render.split_by_permutation(names, 8, {"train": 0.6, "val": 0.2, "test": 0.2})


def test_near_duplicates_are_dropped_in_order():
    ring = np.zeros((28, 28, 1), dtype=np.uint8)
    ring[6:22, 6:22] = 255
    ring[9:19, 9:19] = 0
    bar = np.zeros_like(ring)
    bar[4:24, 12:16] = 255
    assert render.drop_near_duplicates([ring, bar, ring.copy(), (ring * 0.5).astype(np.uint8)]) == [0, 1]


def test_jhf_records_are_parsed(tmp_path):
    path = tmp_path / "two.jhf"
    path.write_text("  501  9I[RFJ[ RRFZ[ RMTWT\n12345  3I[RF\nRJ\n")  # the second record continues on a new line
    first, second = hershey.read_jhf(path)
    assert [stroke.tolist() for stroke in hershey.strokes(first)] == [[[0, -12], [-8, 9]], [[0, -12], [8, 9]],
                                                                     [[-5, 2], [5, 2]]]
    assert [stroke.tolist() for stroke in hershey.strokes(second)] == [[[0, -12], [0, -8]]]
    path.write_text("  501  9I[RFJ[\n")
    with pytest.raises(ValueError, match="announces 9 coordinate pairs"):
        hershey.read_jhf(path)


@pytest.mark.parametrize("module, attribute, package", [
    (noto_glyphs, "FONT_DIR", "apt-get install fonts-noto-core"),
    (handwriting_fonts, "FONT_DIR", "fonts-humor-sans fonts-dkg-handwriting"),
    (hershey, "HERSHEY_DIR", "apt-get install hershey-fonts-data"),
])
def test_a_missing_font_package_is_named(monkeypatch, tmp_path, module, attribute, package):
    monkeypatch.setattr(module, attribute, tmp_path / "nothing-here")
    with pytest.raises(FileNotFoundError, match=package):
        module.source_fingerprint(tmp_path)
    with pytest.raises(FileNotFoundError, match=package):
        next(module.read_classes(tmp_path))


def test_fingerprint_follows_the_render_version(monkeypatch, tmp_path):
    before = hershey.source_fingerprint(tmp_path)
    monkeypatch.setattr(hershey, "RENDER_VERSION", hershey.RENDER_VERSION + 1)
    assert hershey.source_fingerprint(tmp_path) != before


def test_cifar_fs_gray_is_luminance_without_inversion(data_root):
    for colour, luminance in (((255, 0, 0), 76), ((0, 255, 0), 150), ((0, 0, 255), 29), ((10, 200, 90), 131)):
        gray = cifar_fs_gray.to_gray(np.full((32, 32, 3), colour, dtype=np.uint8), 28)
        assert gray.shape == (28, 28, 1) and np.all(gray == luminance)
    from hallucinate.data import cifar_fs

    split, name, rgb = next(cifar_fs.read_classes(data_root))
    gray_split, gray_name, gray = next(cifar_fs_gray.read_classes(data_root))
    assert (gray_split, gray_name) == (split, name) and gray.shape == (len(rgb), 28, 28, 1) and len(rgb) >= 500
    assert abs(gray.mean() - (rgb @ np.array([0.299, 0.587, 0.114])).mean()) < 2
    assert cifar_fs_gray.source_fingerprint(data_root) != cifar_fs.source_fingerprint(data_root)


def test_open_store_builds_a_domain(tmp_path, class_lists):
    from hallucinate.data import open_store

    store = open_store("hershey", image_size=16, root=tmp_path, cache=tmp_path)
    assert {split: len(entry["classes"]) for split, entry in store.meta["splits"].items()} == \
        hershey.EXPECTED_CLASSES
    test = store.split("test")
    assert np.bincount(test.labels).tolist() == [20] * hershey.EXPECTED_CLASSES["test"]
    glyph = next(glyph for glyph in class_lists["hershey"] if glyph.name == test.classes[1])
    stored = np.stack([test.image(int(index)) for index in np.flatnonzero(test.labels == 1)])
    assert np.array_equal(stored, hershey.render_class(glyph, 16))
    written = (store.path / "data.mdb").stat().st_mtime_ns
    open_store("hershey", image_size=16, root=tmp_path, cache=tmp_path)  # fresh: read, not rebuilt
    assert (store.path / "data.mdb").stat().st_mtime_ns == written


def test_either_package_imports_first():
    for first, second in (("hallucinate.domains", "hallucinate.data"), ("hallucinate.data", "hallucinate.domains")):
        code = f"import {first}, {second}; from hallucinate.domains import DOMAIN_DATASETS; print(len(DOMAIN_DATASETS))"
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        assert result.stdout.strip() == "4"
