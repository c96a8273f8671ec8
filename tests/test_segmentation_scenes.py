"""Cluttered Omniglot from the Omniglot zips: the splits, the generator's determinism, and its scenes' make-up."""
import numpy as np
import pytest

from hallucinate.segmentation.scenes import (CLUTTER_LEVELS, REFERENCE_SIZE, SCENE_SCALE, SUBSETS, ClutteredOmniglot,
                                             augment_glyph, evaluation_scenes, load_glyphs, make_scene, scene_seed)

TEST_ONE_SHOT = ["Malayalam", "Manipuri", "Mongolian", "Old_Church_Slavonic_(Cyrillic)", "Oriya", "Sylheti",
                 "Syriac_(Serto)", "Tengwar", "Tibetan", "ULOG"]


@pytest.fixture(scope="module")
def glyphs(data_root):
    return {name: load_glyphs(name, data_root) for name in SUBSETS}


def _alphabets(glyphs) -> set[str]:
    return {character.split("/")[0] for character in glyphs.characters}


def test_splits_keep_alphabets_and_drawers_apart(glyphs):
    background = _alphabets(glyphs["train"])
    val_one_shot, test_one_shot = _alphabets(glyphs["val-one-shot"]), _alphabets(glyphs["test-one-shot"])
    assert len(background) == 30 and len(glyphs["train"].characters) == 964
    assert sorted(test_one_shot) == TEST_ONE_SHOT and len(glyphs["test-one-shot"].characters) == 352
    assert len(val_one_shot) == 10 and len(glyphs["val-one-shot"].characters) == 307
    assert not background & val_one_shot and not background & test_one_shot and not val_one_shot & test_one_shot
    # test-train: the train split's characters, drawn by its other ten drawers
    assert glyphs["test-train"].characters == glyphs["train"].characters
    assert set(glyphs["train"].drawers).isdisjoint(glyphs["test-train"].drawers)
    assert glyphs["train"].strokes.shape == (964, 10, 105, 105)
    assert not any(np.array_equal(glyphs["train"].strokes[0, i], glyphs["test-train"].strokes[0, j])
                   for i in range(10) for j in range(10))


def test_glyphs_are_strokes_on_an_empty_background(glyphs):
    strokes = glyphs["test-one-shot"].strokes
    assert strokes.dtype == bool
    assert 0 < strokes.mean() < 0.2  # strokes are the minority: inverted, white-on-black
    assert strokes[:, :, 0, :].mean() < strokes.mean() / 5  # little drawn on the frame's edge: not inverted twice


def test_scenes_are_deterministic_per_seed_and_index(glyphs):
    one = ClutteredOmniglot(glyphs["test-one-shot"], clutter=8, size=10, seed=1).scene(3)
    again = ClutteredOmniglot(glyphs["test-one-shot"], clutter=8, size=50, seed=1).scene(3)
    other = ClutteredOmniglot(glyphs["test-one-shot"], clutter=8, size=10, seed=2).scene(3)
    assert np.array_equal(one.image, again.image) and np.array_equal(one.references, again.references)
    assert not np.array_equal(one.image, other.image)


def test_fixed_sets_use_the_subsets_seed_and_the_reference_setting_leaves_the_scene_alone(glyphs):
    paper = evaluation_scenes(glyphs["test-one-shot"], clutter=4, size=5, same_drawer=True)
    class_level = evaluation_scenes(glyphs["test-one-shot"], clutter=4, size=5, same_drawer=False)
    assert paper.seed == SUBSETS["test-one-shot"].seed
    a, b = paper.scene(2), class_level.scene(2)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.mask, b.mask)
    assert not np.array_equal(a.references, b.references)
    with pytest.raises(ValueError, match="train subset has no fixed scenes"):
        evaluation_scenes(glyphs["train"], clutter=4, size=5)


@pytest.mark.parametrize("clutter", [4, 32])
def test_the_target_is_pasted_last_so_its_strokes_keep_one_colour(glyphs, clutter):
    dataset = ClutteredOmniglot(glyphs["val-train"], clutter=clutter, size=20, seed=0)
    for index in range(20):
        scene = dataset.scene(index)
        assert scene.mask.any()
        colours = np.unique(scene.image[scene.mask], axis=0)
        assert len(colours) == 1, f"scene {index}: the target's strokes are painted over"


def test_the_mask_is_exactly_the_targets_augmented_strokes_at_its_place(glyphs):
    """Replaying the scene's random draws for a lone target gives its glyph, colour and position: the mask is that
    glyph at that position, and those are the scene's only inked pixels."""
    subset = glyphs["test-one-shot"]
    for index in range(10):
        scene = make_scene(subset, scene_seed(7, 1, index), clutter=1)
        rng = scene_seed(7, 1, index)
        character, drawer = rng.integers(len(subset.characters)), rng.integers(len(subset.drawers))
        assert (character, drawer) == (scene.character, scene.drawer)
        while (glyph := augment_glyph(subset.strokes[character, drawer], rng, scale=SCENE_SCALE)) is None:
            pass
        colour = (255 * rng.random(3)).astype(np.uint8)
        left, top = rng.integers(0, 96 - glyph.shape[1] + 1), rng.integers(0, 96 - glyph.shape[0] + 1)
        expected = np.zeros((96, 96), dtype=bool)
        expected[top:top + glyph.shape[0], left:left + glyph.shape[1]] = glyph
        assert np.array_equal(scene.mask, expected)
        assert np.array_equal(scene.image[scene.mask], np.tile(colour, (scene.mask.sum(), 1)))
        if colour.any():
            assert np.array_equal(scene.image.any(axis=2), scene.mask)


def test_references_are_centred_32_pixel_crops_with_their_strokes_as_masks(glyphs):
    dataset = ClutteredOmniglot(glyphs["test-one-shot"], clutter=4, size=10, seed=0, k_shot=3, same_drawer=False)
    item = dataset[0]
    assert item["support"].shape == (3, 3, REFERENCE_SIZE, REFERENCE_SIZE)
    assert item["support_mask"].shape == (3, REFERENCE_SIZE, REFERENCE_SIZE) and item["query"].shape == (3, 96, 96)
    for index in range(10):
        scene = dataset.scene(index)
        for reference, mask in zip(scene.references, scene.reference_masks):
            assert mask.any()
            assert not reference[~mask].any()  # nothing but the strokes is drawn


def test_augmented_scene_glyphs_span_the_papers_sizes(glyphs):
    rng = np.random.default_rng(0)
    augmented = [augment_glyph(glyphs["train"].strokes[i % 50, 0], rng, scale=SCENE_SCALE) for i in range(300)]
    heights = np.array([glyph.shape[0] for glyph in augmented if glyph is not None])
    assert len(heights) > 290  # a glyph is rarely lost (squeezed to nothing)
    assert heights.max() > 40 and heights.min() < 16  # frames of about 16 to 64 pixels, cropped to the strokes
    assert heights.max() < 96


def test_unknown_clutter_levels_and_subsets_are_refused(glyphs):
    assert CLUTTER_LEVELS == (4, 8, 16, 32, 64, 128, 256)
    with pytest.raises(ValueError, match="no clutter level 5; valid: 4, 8, 16"):
        ClutteredOmniglot(glyphs["train"], clutter=5, size=1, seed=0)
    with pytest.raises(ValueError, match="unknown Cluttered Omniglot subset 'test'"):
        load_glyphs("test")
    with pytest.raises(ValueError, match="k_shot must be 1..9"):
        make_scene(glyphs["train"], np.random.default_rng(0), clutter=4, k_shot=10, same_drawer=False)
