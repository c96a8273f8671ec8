"""Omniglot-Det from the Omniglot zips: its characters and drawers, the generator's determinism, tight boxes, the
IoU limit, the K-shot sets' balance and nesting, the item format and the refusals."""
import numpy as np
import pytest
import torch

from hallucinate.detection.canvases import (BASE_LABELS, DRAWERS, K_SHOTS, NOVEL_LABELS, NUM_BASE_CLASSES,
                                            NUM_CLASSES, BaseCanvases, FewShotCanvases, KShotCanvases,
                                            NovelValidationCanvases,
                                            base_test_set, benchmark_test_set, collate_canvases, load_glyphs)


@pytest.fixture(scope="module")
def glyphs(data_root):
    return {split: load_glyphs(split, data_root) for split in DRAWERS}


@pytest.fixture(scope="module")
def canvases(glyphs):
    """A few canvases of every kind: training, base test, few-shot test and 5-shot fine-tuning."""
    return {"train": [BaseCanvases(glyphs["train"], seed=0).canvas(i) for i in range(20)],
            "base test": [base_test_set(glyphs["test"]).canvas(i) for i in range(20)],
            "test": [benchmark_test_set(glyphs["test"]).canvas(i) for i in range(40)],
            "5-shot": [KShotCanvases(glyphs["train"], k_shot=5, seed=0).canvas(i) for i in range(0, 600, 30)]}


def _all(canvases):
    return [canvas for kind in canvases.values() for canvas in kind]


def test_base_novel_and_distractor_characters_are_disjoint_and_from_their_archives(glyphs):
    characters = glyphs["train"].characters
    assert characters == glyphs["test"].characters
    base, novel, distractors = characters[:100], characters[100:120], characters[120:]
    assert len(set(base)) == 100 and len(set(novel)) == 20 and len(set(distractors)) == 200
    assert not set(base) & set(novel) and not set(base) & set(distractors) and not set(novel) & set(distractors)
    assert all(c.startswith("images_background/") for c in base)
    assert all(c.startswith("images_evaluation/") for c in novel)
    assert sum(c.startswith("images_background/") for c in distractors) == 100  # half from each archive


def test_train_and_test_drawers_are_apart(glyphs, canvases):
    assert list(glyphs["train"].drawers) == list(range(10)) and list(glyphs["test"].drawers) == list(range(10, 20))
    assert not any(np.array_equal(glyphs["train"].strokes[0, i], glyphs["test"].strokes[0, j])
                   for i in range(10) for j in range(10))
    for kind, drawers in (("train", range(10)), ("5-shot", range(10)), ("base test", range(10, 20)),
                          ("test", range(10, 20))):
        assert set(np.concatenate([canvas.drawers for canvas in canvases[kind]])) <= set(drawers), kind


def test_canvases_are_deterministic_per_seed_and_index(glyphs):
    one = BaseCanvases(glyphs["train"], size=10, seed=1).canvas(3)
    again = BaseCanvases(glyphs["train"], size=50, seed=1).canvas(3)
    assert np.array_equal(one.image, again.image) and np.array_equal(one.boxes, again.boxes)
    assert np.array_equal(one.characters, again.characters)
    assert not np.array_equal(one.image, BaseCanvases(glyphs["train"], size=10, seed=1).canvas(4).image)
    assert not np.array_equal(one.image, BaseCanvases(glyphs["train"], size=10, seed=2).canvas(3).image)
    first, second = benchmark_test_set(glyphs["test"], size=5), benchmark_test_set(glyphs["test"])
    assert np.array_equal(first.canvas(4).image, second.canvas(4).image)  # a smaller test set is its prefix


def test_dataloader_workers_make_the_same_canvases(glyphs):
    dataset = KShotCanvases(glyphs["train"], k_shot=1, seed=0)
    loader = torch.utils.data.DataLoader(torch.utils.data.Subset(dataset, range(4)), batch_size=2, num_workers=2,
                                         collate_fn=collate_canvases)
    images = [image for batch_images, _ in loader for image in batch_images]
    assert all(torch.equal(image, dataset[index][0]) for index, image in enumerate(images))


def test_boxes_are_the_tight_boxes_of_each_objects_ink(canvases):
    for canvas in _all(canvases):
        assert canvas.image.shape == (96, 96) and canvas.image.dtype == np.uint8
        assert np.array_equal(canvas.image > 0, canvas.masks.any(axis=0))  # nothing but the objects is drawn
        for (x1, y1, x2, y2), mask in zip(canvas.boxes, canvas.masks):
            assert 0 <= x1 < x2 <= 96 and 0 <= y1 < y2 <= 96
            rows, columns = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
            assert (rows[0], rows[-1] + 1, columns[0], columns[-1] + 1) == (y1, y2, x1, x2)


def test_no_two_objects_overlap_by_more_than_an_iou_of_0_2(canvases):
    for canvas in _all(canvases):
        for i, a in enumerate(canvas.boxes):
            for b in canvas.boxes[i + 1:]:
                width = max(0, min(a[2], b[2]) - max(a[0], b[0]))
                height = max(0, min(a[3], b[3]) - max(a[1], b[1]))
                intersection = width * height
                union = np.prod(a[2:] - a[:2]) + np.prod(b[2:] - b[:2]) - intersection
                assert intersection / union <= 0.2


def test_canvases_hold_what_their_kind_asks_for(canvases):
    for kind, canvases_of_kind in canvases.items():
        for canvas in canvases_of_kind:
            labelled, distractors = canvas.characters[canvas.labelled], canvas.characters[~canvas.labelled]
            assert 0 <= len(distractors) <= 3 and (distractors >= NUM_CLASSES).all()
            if kind == "5-shot":
                assert len(labelled) == 1
            elif kind == "test":
                assert 2 <= len(labelled) <= 5 and (labelled >= NUM_BASE_CLASSES).any()
            else:
                assert 2 <= len(labelled) <= 5 and (labelled < NUM_BASE_CLASSES).all()


def test_items_are_what_torchvision_detectors_take(glyphs):
    dataset = benchmark_test_set(glyphs["test"], size=4)
    images, targets = next(iter(torch.utils.data.DataLoader(dataset, batch_size=4, collate_fn=collate_canvases)))
    assert isinstance(images, list) and isinstance(targets, list) and len(images) == len(targets) == 4
    for index, (image, target) in enumerate(zip(images, targets)):
        canvas = dataset.canvas(index)
        assert image.shape == (1, 96, 96) and image.dtype == torch.float32 and 0 <= image.min() < image.max() <= 1
        assert target["boxes"].dtype == torch.float32 and target["labels"].dtype == torch.int64
        assert target["boxes"].tolist() == canvas.boxes[canvas.labelled].tolist()
        assert target["labels"].tolist() == (canvas.characters[canvas.labelled] + 1).tolist()  # 0: background
        assert set(target["labels"].tolist()) <= set(BASE_LABELS) | set(NOVEL_LABELS)
    assert list(BASE_LABELS) == list(range(1, 101)) and list(NOVEL_LABELS) == list(range(101, 121))


@pytest.mark.parametrize("k_shot", [1, 2, 3])
def test_k_shot_sets_have_exactly_k_instances_of_every_class(glyphs, k_shot):
    dataset = KShotCanvases(glyphs["train"], k_shot=k_shot, seed=3)
    assert len(dataset) == 120 * k_shot
    labels = torch.cat([dataset[index][1]["labels"] for index in range(len(dataset))])
    assert torch.equal(torch.bincount(labels, minlength=121)[1:], torch.full((120,), k_shot))


def test_k_shot_sets_are_nested_across_k_and_differ_across_seeds(glyphs):
    sets = {k: KShotCanvases(glyphs["train"], k_shot=k, seed=4) for k in K_SHOTS}
    for class_id in (0, 57, 100, 119):
        for smaller, larger in zip(K_SHOTS, K_SHOTS[1:]):
            for shot in range(smaller):
                a = sets[smaller].canvas(class_id * smaller + shot)
                b = sets[larger].canvas(class_id * larger + shot)
                assert np.array_equal(a.image, b.image) and np.array_equal(a.boxes, b.boxes)
        ten = [sets[10].canvas(class_id * 10 + shot) for shot in range(10)]
        assert sorted(int(canvas.drawers[canvas.labelled][0]) for canvas in ten) == list(range(10))  # each drawer once
    other_seed = KShotCanvases(glyphs["train"], k_shot=1, seed=5)
    assert not np.array_equal(sets[1].canvas(0).image, other_seed.canvas(0).image)


def test_bad_settings_are_refused_with_what_is_valid(glyphs):
    with pytest.raises(ValueError, match=r"no 4-shot set; valid: 1, 2, 3, 5, 10"):
        KShotCanvases(glyphs["train"], k_shot=4, seed=0)
    with pytest.raises(ValueError, match=r"seeds 0\.\.9, got 10"):
        KShotCanvases(glyphs["train"], k_shot=1, seed=10)
    with pytest.raises(ValueError, match=r"train drawers 1-10: load_glyphs\('train'\), not 'test'"):
        KShotCanvases(glyphs["test"], k_shot=1, seed=0)
    with pytest.raises(ValueError, match=r"test drawers 11-20"):
        FewShotCanvases(glyphs["train"], size=10, seed=0)
    with pytest.raises(ValueError, match=r"test drawers 11-20"):
        base_test_set(glyphs["train"])
    with pytest.raises(ValueError, match=r"size must be 1\.\.1000, got 1001"):
        benchmark_test_set(glyphs["test"], size=1001)
    with pytest.raises(ValueError, match=r"size must be a positive integer, got 0"):
        BaseCanvases(glyphs["train"], size=0, seed=0)
    with pytest.raises(IndexError, match="canvas 5 of 5"):
        BaseCanvases(glyphs["train"], size=5, seed=0).canvas(5)
    with pytest.raises(ValueError, match="unknown Omniglot-Det split 'val'; valid: train, test"):
        load_glyphs("val")



def test_novel_validation_canvases_draw_every_class_anew_by_the_train_drawers(glyphs):
    k_shot_sets = [KShotCanvases(glyphs["train"], k_shot=1, seed=seed) for seed in range(3)]
    held = {(int(c), int(d)) for k_shot_set in k_shot_sets for canvas in map(k_shot_set.canvas, range(len(k_shot_set)))
            for c, d in zip(canvas.characters[canvas.labelled], canvas.drawers[canvas.labelled])}
    validation = NovelValidationCanvases(glyphs["train"], size=30, seed=1, k_shot_sets=k_shot_sets)
    for canvas in map(validation.canvas, range(len(validation))):
        annotated = list(zip(canvas.characters[canvas.labelled].tolist(), canvas.drawers[canvas.labelled].tolist()))
        assert any(c >= NUM_BASE_CLASSES for c, _ in annotated)
        assert all(d in DRAWERS["train"] and (c, d) not in held for c, d in annotated)
    with pytest.raises(ValueError, match="no new drawing is left"):
        NovelValidationCanvases(glyphs["train"], size=1, seed=1,
                                k_shot_sets=[KShotCanvases(glyphs["train"], k_shot=10, seed=0)])
