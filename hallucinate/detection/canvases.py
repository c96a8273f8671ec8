"""Omniglot-Det (``shared/anchors/detection.md`` §5): 96x96 one-channel canvases of Omniglot characters, white ink on
black, each annotated character with its tight ink box, for few-shot object detection in TFA's protocol.

Characters: 100 base characters drawn with a fixed seed from the background archive (``images_background.zip``), 20
novel ones from the evaluation archive (``images_evaluation.zip``), and a pool of distractors, 100 of the other
characters of each archive, pasted but never annotated. Distractors come from both archives so that an alphabet's
style tells nothing: a glyph in an evaluation alphabet is not thereby novel. A character's index into
`Glyphs.characters` is its class id: 0..99 base, 100..119 novel, 120 and up distractors. The detection targets
label class id ``c`` as ``c + 1`` (`BASE_LABELS`, `NOVEL_LABELS`): torchvision's detectors take label 0 for the
background.

Drawers 1-20 of each character are 0..19 here, sorted by file name: 0..9 draw the training canvases and the K-shot
sets (`DRAWERS["train"]`), 10..19 the test canvases (`DRAWERS["test"]`).

A box is ``(x1, y1, x2, y2)`` in pixel edges: the object's ink covers the pixel columns ``x1 .. x2 - 1`` and rows
``y1 .. y2 - 1``, and touches all four edges, so ``x2 > x1``, ``y2 > y1``, ``0 <= x1``, ``x2 <= 96``. The boxes of
all objects on a canvas, distractors included, overlap with an IoU of at most 0.2.

Each canvas is generated from its own seed, so any DataLoader worker makes any canvas, the same every time:
training canvases are made on the fly, and the fixed sets (the test set, the base test set, the K-shot sets) are
generated again whenever they are needed, not stored: the 1000 test canvases take 3-6 s on one busy CPU core."""
import numbers
import zipfile
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from ..data.archive import read_image
from ..data.omniglot import ARCHIVES, character_drawings, source_files, stroke_mask
from ..data.paths import data_root

CANVAS_SIZE = 96
GLYPH_SIZE = 105  # every Omniglot drawing is 105x105
CELL_SIZES = (24.0, 40.0)  # the 105x105 drawing is scaled to a cell of U(24, 40) pixels a side
MAX_ROTATION, MAX_SHEAR = 15.0, 10.0  # degrees
SUPERSAMPLING = 4  # glyphs are warped at 4x the canvas resolution, then averaged down: ink coverage per pixel
INK_THRESHOLD = 64  # coverage (of 255) below which a pixel is left black: no faint fringe widens a box
MAX_IOU = 0.2
LAYOUT_ATTEMPTS = 10  # fresh positions for a canvas's glyphs when one finds no free place

NUM_BASE_CLASSES, NUM_NOVEL_CLASSES = 100, 20
NUM_CLASSES = NUM_BASE_CLASSES + NUM_NOVEL_CLASSES
BASE_LABELS = range(1, NUM_BASE_CLASSES + 1)  # target labels: class id + 1
NOVEL_LABELS = range(NUM_BASE_CLASSES + 1, NUM_CLASSES + 1)
DISTRACTORS_PER_ARCHIVE = 100
INSTANCES = (2, 5)  # annotated characters on a base or test canvas, inclusive
DISTRACTORS = (0, 3)  # unannotated characters on any canvas, inclusive
K_SHOTS = (1, 2, 3, 5, 10)
K_SHOT_SEEDS = range(10)
TEST_CANVASES = 1000
BASE_TRAINING_CANVASES = 5000

DRAWERS = {"train": range(0, 10), "test": range(10, 20)}
BASE_SEED, NOVEL_SEED, DISTRACTOR_SEED = 2849601468, 930825637, 1049237169
VALIDATION_SEED = 2203970441  # novel validation canvases: neither the test set's nor any K-shot set's
TEST_SEED, BASE_TEST_SEED, K_SHOT_SEED = 1849243506, 3774561438, 2791812681


def select_characters(background: list[str], evaluation: list[str]) -> tuple[list[str], list[str], list[str]]:
    """``(base, novel, distractors)`` from the characters of the background and the evaluation archive, each by
    its fixed seed: 100 base from the background, 20 novel from the evaluation, and `DISTRACTORS_PER_ARCHIVE` of
    each archive's other characters."""
    for name, characters, needed in (("background", background, NUM_BASE_CLASSES),
                                     ("evaluation", evaluation, NUM_NOVEL_CLASSES)):
        if len(characters) < needed + DISTRACTORS_PER_ARCHIVE:
            raise ValueError(f"the {name} archive has {len(characters)} characters; Omniglot-Det needs at least "
                             f"{needed + DISTRACTORS_PER_ARCHIVE}")
    base = sorted(np.random.default_rng(BASE_SEED).choice(background, NUM_BASE_CLASSES, replace=False))
    novel = sorted(np.random.default_rng(NOVEL_SEED).choice(evaluation, NUM_NOVEL_CLASSES, replace=False))
    rng = np.random.default_rng(DISTRACTOR_SEED)
    distractors = [character for characters, chosen in ((background, base), (evaluation, novel))
                   for character in sorted(rng.choice(sorted(set(characters) - set(chosen)),
                                                      DISTRACTORS_PER_ARCHIVE, replace=False))]
    return [str(c) for c in base], [str(c) for c in novel], [str(c) for c in distractors]


@dataclass(frozen=True)
class Glyphs:
    """The drawings of Omniglot-Det's characters by one split's drawers: ``strokes[c, d]`` is drawer ``drawers[d]``
    of character ``characters[c]`` (``"images_background/Alphabet/characterNN"``), a bool ``[105, 105]`` array, True
    on the strokes. ``c`` is the class id: base, then novel characters, then the distractors."""

    split: str
    characters: tuple[str, ...]
    drawers: range
    strokes: np.ndarray


def load_glyphs(split: str, root=None) -> Glyphs:
    """The drawings of ``split``'s drawers (``"train"`` or ``"test"``, `DRAWERS`) of every Omniglot-Det character,
    from the Omniglot zips under ``root`` (default: the data root)."""
    if split not in DRAWERS:
        raise ValueError(f"unknown Omniglot-Det split {split!r}; valid: {', '.join(DRAWERS)}")
    folder = data_root(root) / "omniglot"
    source_files(data_root(root))
    archives = {name: zipfile.ZipFile(folder / name) for name in ARCHIVES}
    try:
        # keyed "images_background/Alphabet/characterNN": the archive's folder tells the two archives' characters apart
        drawings = {name: {f"{name.removesuffix('.zip')}/{character}": members
                           for character, members in character_drawings(archive).items()}
                    for name, archive in archives.items()}
        base, novel, distractors = select_characters(*(list(drawings[name]) for name in ARCHIVES))
        characters = base + novel + distractors
        strokes = np.zeros((len(characters), len(DRAWERS[split]), GLYPH_SIZE, GLYPH_SIZE), dtype=bool)
        for index, character in enumerate(characters):
            name = character.split("/")[0] + ".zip"
            archive = archives[name]
            for slot, drawer in enumerate(DRAWERS[split]):
                member = drawings[name][character][drawer]
                strokes[index, slot] = read_image(archive, member, stroke_mask, GLYPH_SIZE)
                if not strokes[index, slot].any():
                    raise ValueError(f"{archive.filename}: member {member.filename!r} has no strokes")
    finally:
        for archive in archives.values():
            archive.close()
    return Glyphs(split, tuple(characters), DRAWERS[split], strokes)


def augment_glyph(strokes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Scale a drawing to a cell of U(24, 40) pixels, rotate it by U(-15, 15) degrees and shear it by U(-10, 10),
    all about one point; return its ink coverage (uint8 ``[h, w]``, 0 below `INK_THRESHOLD`) cropped to the ink, so
    its first and last rows and columns hold ink."""
    cell = rng.uniform(*CELL_SIZES)
    phi, theta = np.radians(rng.uniform(-MAX_ROTATION, MAX_ROTATION)), np.radians(rng.uniform(-MAX_SHEAR, MAX_SHEAR))
    rotation = np.array([[np.cos(phi), -np.sin(phi)], [np.sin(phi), np.cos(phi)]])
    linear = cell / GLYPH_SIZE * rotation @ np.array([[1.0, np.tan(theta)], [0.0, 1.0]])
    corners = linear @ np.array([[0, 0, GLYPH_SIZE, GLYPH_SIZE], [0, GLYPH_SIZE, 0, GLYPH_SIZE]])
    low = corners.min(axis=1)
    width, height = (np.ceil(corners.max(axis=1) - low).astype(int) + 1) * SUPERSAMPLING
    forward = np.vstack([SUPERSAMPLING * np.hstack([linear, -low[:, None]]), [0, 0, 1]])
    # PIL's AFFINE maps output to input pixels: the inverse of the glyph's transform. Bilinear at about the
    # drawing's own scale keeps every stroke; averaging 4x4 blocks gives each canvas pixel its ink coverage.
    warped = Image.fromarray(strokes.astype(np.uint8) * 255).transform(
        (int(width), int(height)), Image.Transform.AFFINE, np.linalg.inv(forward)[:2].ravel(),
        resample=Image.Resampling.BILINEAR)
    coverage = np.array(warped.reduce(SUPERSAMPLING))
    coverage[coverage < INK_THRESHOLD] = 0
    rows, columns = np.flatnonzero(coverage.any(axis=1)), np.flatnonzero(coverage.any(axis=0))
    if len(rows) == 0:
        raise ValueError(f"a drawing of {strokes.sum()} stroke pixels kept no ink at a {cell:.1f}-pixel cell")
    return coverage[rows[0]:rows[-1] + 1, columns[0]:columns[-1] + 1]


def _free_position(shape: tuple[int, int], boxes: list[tuple[int, int, int, int]],
                   rng: np.random.Generator) -> tuple[int, int] | None:
    """A ``(top, left)`` drawn uniformly from those at which a ``shape`` box lies in the canvas with an IoU of at
    most `MAX_IOU` with each of ``boxes`` (what rejection sampling gives, without its unbounded retries); None when
    there is none."""
    height, width = shape
    lefts, tops = np.arange(CANVAS_SIZE - width + 1), np.arange(CANVAS_SIZE - height + 1)
    free = np.ones((len(tops), len(lefts)), dtype=bool)
    if boxes:
        placed = np.array(boxes)
        overlap_x = np.clip(np.minimum(lefts + width, placed[:, 2:3]) - np.maximum(lefts, placed[:, 0:1]), 0, None)
        overlap_y = np.clip(np.minimum(tops + height, placed[:, 3:4]) - np.maximum(tops, placed[:, 1:2]), 0, None)
        intersection = overlap_y[:, :, None] * overlap_x[:, None, :]
        areas = (placed[:, 2] - placed[:, 0]) * (placed[:, 3] - placed[:, 1])
        union = width * height + areas[:, None, None] - intersection
        free = (intersection <= MAX_IOU * union).all(axis=0)
    candidates = np.flatnonzero(free)
    if len(candidates) == 0:
        return None
    top, left = divmod(int(candidates[rng.integers(len(candidates))]), len(lefts))
    return top, left


def _layout(shapes: list[tuple[int, int]], rng: np.random.Generator) -> list[tuple[int, int, int, int]] | None:
    """Boxes for glyphs of ``shapes``, placed one after another; None when one finds no free place."""
    boxes: list[tuple[int, int, int, int]] = []
    for height, width in shapes:
        position = _free_position((height, width), boxes, rng)
        if position is None:
            return None
        top, left = position
        boxes.append((left, top, left + width, top + height))
    return boxes


@dataclass(frozen=True)
class Canvas:
    """One canvas and every object on it, in the order they were placed; the annotated ones are those whose
    character is a class (`labelled`)."""

    image: np.ndarray  # uint8 [96, 96]: ink coverage, white on black
    boxes: np.ndarray  # int64 [M, 4]: each object's tight ink box, xyxy in pixel edges
    characters: np.ndarray  # int64 [M]: index into Glyphs.characters, the class id when < NUM_CLASSES
    drawers: np.ndarray  # int64 [M]: the drawer, 0..19
    masks: np.ndarray  # bool [M, 96, 96]: each object's own ink

    @property
    def labelled(self) -> np.ndarray:
        return self.characters < NUM_CLASSES


def compose_canvas(glyphs: Glyphs, objects: list[tuple[int, int]], rng: np.random.Generator) -> Canvas:
    """A canvas of ``objects`` (``(character, index into glyphs.drawers)`` each), augmented and placed in a random
    order, each at a position drawn uniformly from those that keep its box's IoU with every box before it at most
    0.2. When one finds no place, all are placed afresh, up to `LAYOUT_ATTEMPTS` times."""
    objects = [objects[i] for i in rng.permutation(len(objects))]
    glyph_images = [augment_glyph(glyphs.strokes[character, drawer], rng) for character, drawer in objects]
    shapes = [glyph.shape for glyph in glyph_images]
    for _ in range(LAYOUT_ATTEMPTS):
        if (boxes := _layout(shapes, rng)) is not None:
            break
    else:
        raise RuntimeError(f"could not place glyphs of (height, width) {shapes} on a {CANVAS_SIZE}x{CANVAS_SIZE} "
                           f"canvas with pairwise box IoU <= {MAX_IOU} in {LAYOUT_ATTEMPTS} layouts")
    image = np.zeros((CANVAS_SIZE, CANVAS_SIZE), dtype=np.uint8)
    masks = np.zeros((len(objects), CANVAS_SIZE, CANVAS_SIZE), dtype=bool)
    for mask, glyph, (left, top, right, bottom) in zip(masks, glyph_images, boxes):
        region = image[top:bottom, left:right]
        np.maximum(region, glyph, out=region)  # ink on ink: the brighter wins
        mask[top:bottom, left:right] = glyph > 0
    return Canvas(image, np.array(boxes, dtype=np.int64).reshape(-1, 4),
                  np.array([character for character, _ in objects], dtype=np.int64),
                  np.array([glyphs.drawers[drawer] for _, drawer in objects], dtype=np.int64), masks)


def _any_drawers(glyphs: Glyphs, characters, rng: np.random.Generator) -> list[tuple[int, int]]:
    drawers = rng.integers(len(glyphs.drawers), size=len(characters))
    return [(int(character), int(drawer)) for character, drawer in zip(characters, drawers)]


def distractors(glyphs: Glyphs, rng: np.random.Generator) -> list[tuple[int, int]]:
    count = rng.integers(DISTRACTORS[0], DISTRACTORS[1] + 1)
    return _any_drawers(glyphs, rng.integers(NUM_CLASSES, len(glyphs.characters), size=count), rng)


def _check_split(glyphs: Glyphs, split: str, what: str) -> None:
    if glyphs.split != split:
        raise ValueError(f"{what} are drawn by the {split} drawers {DRAWERS[split].start + 1}-{DRAWERS[split].stop}: "
                         f"load_glyphs({split!r}), not {glyphs.split!r}")


def _check_size(size: int, largest: int | None = None) -> None:
    if not isinstance(size, numbers.Integral) or size < 1 or (largest is not None and size > largest):
        valid = f"1..{largest}" if largest is not None else "a positive integer"
        raise ValueError(f"a canvas set's size must be {valid}, got {size!r}")


def _item(canvas: Canvas) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    labelled = canvas.labelled
    return (torch.from_numpy(canvas.image).float().div_(255).unsqueeze(0),
            {"boxes": torch.from_numpy(canvas.boxes[labelled]).float(),
             "labels": torch.from_numpy(canvas.characters[labelled] + BASE_LABELS.start)})


class _Canvases(torch.utils.data.Dataset):
    """Canvases ``0 .. len - 1`` as torchvision's detectors take them: an image (float ``[1, 96, 96]`` in 0..1) and
    a target ``{"boxes": float32 [N, 4] xyxy, "labels": int64 [N]}`` of its annotated objects, labels class id + 1.
    A subclass gives ``__len__`` and ``canvas(index)``, the canvas itself, every object and its mask included."""

    def _checked(self, index: int) -> int:
        if not 0 <= index < len(self):
            raise IndexError(f"canvas {index} of {len(self)}")
        return int(index)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return _item(self.canvas(index))


class BaseCanvases(_Canvases):
    """Canvases of 2-5 base characters (all annotated) and 0-3 distractors, canvas ``i`` from the seed ``(seed,
    i)``: with the train drawers' glyphs the base detector's training canvases, with the test drawers' its test
    canvases (`base_test_set`)."""

    def __init__(self, glyphs: Glyphs, *, size: int = BASE_TRAINING_CANVASES, seed: int):
        _check_size(size)
        self.glyphs, self.size, self.seed = glyphs, size, seed

    def __len__(self) -> int:
        return self.size

    def canvas(self, index: int) -> Canvas:
        rng = np.random.default_rng([self.seed, self._checked(index)])
        count = rng.integers(INSTANCES[0], INSTANCES[1] + 1)
        instances = _any_drawers(self.glyphs, rng.integers(NUM_BASE_CLASSES, size=count), rng)
        return compose_canvas(self.glyphs, instances + distractors(self.glyphs, rng), rng)


class FewShotCanvases(_Canvases):
    """Test canvases of 2-5 annotated characters, one of them novel and the others of any of the 120 classes, and
    0-3 distractors, canvas ``i`` from the seed ``(seed, i)``, drawn by the test drawers."""

    def __init__(self, glyphs: Glyphs, *, size: int, seed: int):
        _check_split(glyphs, "test", "few-shot test canvases")
        _check_size(size)
        self.glyphs, self.size, self.seed = glyphs, size, seed

    def __len__(self) -> int:
        return self.size

    def canvas(self, index: int) -> Canvas:
        rng = np.random.default_rng([self.seed, self._checked(index)])
        count = rng.integers(INSTANCES[0], INSTANCES[1] + 1)
        classes = np.concatenate([rng.integers(NUM_BASE_CLASSES, NUM_CLASSES, size=1),
                                  rng.integers(NUM_CLASSES, size=count - 1)])
        instances = _any_drawers(self.glyphs, classes, rng)
        return compose_canvas(self.glyphs, instances + distractors(self.glyphs, rng), rng)


class KShotCanvases(_Canvases):
    """TFA's balanced fine-tuning set: for each of the 120 classes, ``k_shot`` canvases, each with one annotated
    character of that class, drawn by another of the train drawers, and 0-3 distractors (never a second class, so
    every annotation stays complete and each class has exactly ``k_shot`` instances). Item ``c * k_shot + j`` is
    shot ``j`` of class ``c``, made from the seed ``(seed, c, j)`` and the ``j``-th drawer of a per-class order that
    does not depend on ``k_shot``: each set holds the sets of smaller K of its seed."""

    def __init__(self, glyphs: Glyphs, *, k_shot: int, seed: int):
        if k_shot not in K_SHOTS:
            raise ValueError(f"Omniglot-Det has no {k_shot!r}-shot set; valid: {', '.join(map(str, K_SHOTS))}")
        if seed not in K_SHOT_SEEDS:
            raise ValueError(f"Omniglot-Det's K-shot sets have seeds {K_SHOT_SEEDS.start}..{K_SHOT_SEEDS.stop - 1}, "
                             f"got {seed!r}")
        _check_split(glyphs, "train", "K-shot canvases")
        self.glyphs, self.k_shot, self.seed = glyphs, k_shot, seed

    def __len__(self) -> int:
        return NUM_CLASSES * self.k_shot

    def canvas(self, index: int) -> Canvas:
        class_id, shot = divmod(self._checked(index), self.k_shot)
        drawer = np.random.default_rng([K_SHOT_SEED, self.seed, class_id]).permutation(len(self.glyphs.drawers))[shot]
        rng = np.random.default_rng([K_SHOT_SEED, self.seed, class_id, shot])
        return compose_canvas(self.glyphs, [(class_id, int(drawer))] + distractors(self.glyphs, rng), rng)


class NovelValidationCanvases(_Canvases):
    """Canvas ``i`` from the seed ``(seed, i)``: 2-5 annotated characters, one novel, the others of any of the
    120 classes, and 0-3 distractors, by the train drawers; an annotated character of class ``c`` by one of the
    drawers that none of ``k_shot_sets`` holds for ``c``."""

    def __init__(self, glyphs: Glyphs, *, size: int, seed: int, k_shot_sets: list[KShotCanvases]):
        held = np.zeros((NUM_CLASSES, len(glyphs.drawers)), dtype=bool)
        for k_shot_set in k_shot_sets:
            for index in range(len(k_shot_set)):
                canvas = k_shot_set.canvas(index)
                for character, drawer in zip(canvas.characters[canvas.labelled], canvas.drawers[canvas.labelled]):
                    held[character, glyphs.drawers.index(int(drawer))] = True
        self.free = [np.flatnonzero(~row) for row in held]
        if min(len(free) for free in self.free) == 0:
            raise ValueError("the K-shot sets hold every train drawer of some class: no new drawing is left")
        self.glyphs, self.size, self.seed = glyphs, size, seed

    def __len__(self) -> int:
        return self.size

    def canvas(self, index: int):
        rng = np.random.default_rng([self.seed, self._checked(index)])
        count = rng.integers(INSTANCES[0], INSTANCES[1] + 1)
        classes = np.concatenate([rng.integers(NUM_BASE_CLASSES, NUM_CLASSES, size=1),
                                  rng.integers(NUM_CLASSES, size=count - 1)])
        instances = [(int(c), int(rng.choice(self.free[c]))) for c in classes]
        return compose_canvas(self.glyphs, instances + distractors(self.glyphs, rng), rng)


def benchmark_test_set(glyphs: Glyphs, *, size: int = TEST_CANVASES) -> FewShotCanvases:
    """Omniglot-Det's test set: the first ``size`` of its 1000 canvases, by its fixed seed."""
    _check_size(size, TEST_CANVASES)
    return FewShotCanvases(glyphs, size=size, seed=TEST_SEED)


def base_test_set(glyphs: Glyphs, *, size: int = TEST_CANVASES) -> BaseCanvases:
    """The base detector's test set (its bAP50): the first ``size`` of 1000 base canvases by the test drawers, by a
    fixed seed."""
    _check_split(glyphs, "test", "base test canvases")
    _check_size(size, TEST_CANVASES)
    return BaseCanvases(glyphs, size=size, seed=BASE_TEST_SEED)


def collate_canvases(batch: list) -> tuple[list[torch.Tensor], list[dict[str, torch.Tensor]]]:
    """Items -> ``(images, targets)``, two lists, as torchvision's detectors take them."""
    images, targets = zip(*batch)
    return list(images), list(targets)
