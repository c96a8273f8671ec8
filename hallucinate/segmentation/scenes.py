"""Cluttered Omniglot (Michaelis, Bethge & Ecker, ICML 2018), generated from the Omniglot zips as the authors'
``dataset_utils.py`` does (``shared/anchors/segmentation.md`` §2): a 96x96 RGB scene of ``clutter`` characters in
random colours, the target pasted last, its stroke mask as the ground truth, and a 32x32 reference of the target.

Each scene is generated from its own seed (the subset's seed, the clutter level, its index), so any DataLoader worker
makes any scene, the same every time: training scenes are made on the fly, and a validation or test set is the first
N scenes of its subset, fixed by the subset's seed. The scene does not depend on ``k_shot`` or ``same_drawer`` (its
references are drawn after it), so those settings are compared on the same scenes. The random streams are not the
authors' (their per-job NumPy streams), so the images are not byte-identical to their released ``.npy`` files."""
import zipfile
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from ..data.archive import read_image
from ..data.omniglot import character_drawings, source_files, stroke_mask
from ..data.paths import data_root

SCENE_SIZE = 96
REFERENCE_SIZE = 32
GLYPH_SIZE = 105  # every Omniglot drawing is 105x105
CLUTTER_LEVELS = (4, 8, 16, 32, 64, 128, 256)  # characters in a scene, the target included
MAX_ROTATION, MAX_SHEAR = 20.0, 10.0  # degrees
SCENE_SCALE = 2.0  # each axis of a scene glyph is scaled by SCENE_SCALE ** U(-1, 1); references are not scaled


@dataclass(frozen=True)
class Subset:
    archive: str
    alphabets: slice  # of the archive's alphabets, sorted by name
    drawers: range  # 0-based indices into each character's 20 drawings, sorted by file name
    seed: int


SUBSETS = {
    "train": Subset("images_background.zip", slice(0, 30), range(0, 10), 2209944264),
    "val-train": Subset("images_background.zip", slice(0, 30), range(10, 20), 4020197800),
    "test-train": Subset("images_background.zip", slice(0, 30), range(10, 20), 1665765955),
    "val-one-shot": Subset("images_evaluation.zip", slice(0, 10), range(10, 20), 3755213170),
    "test-one-shot": Subset("images_evaluation.zip", slice(10, 20), range(10, 20), 2301871561),
}


@dataclass(frozen=True)
class Glyphs:
    """A subset's drawings: ``strokes[c, d]`` is drawer ``drawers[d]`` of character ``characters[c]``
    (``"Alphabet/characterNN"``), a bool ``[105, 105]`` array, True on the strokes."""

    subset: str
    characters: tuple[str, ...]
    drawers: range
    strokes: np.ndarray


def load_glyphs(subset: str, root=None) -> Glyphs:
    """The drawings of ``subset`` (a name in `SUBSETS`) from the Omniglot zips under ``root`` (default: the data
    root), its characters flattened into one list in sorted order."""
    if subset not in SUBSETS:
        raise ValueError(f"unknown Cluttered Omniglot subset {subset!r}; valid: {', '.join(SUBSETS)}")
    spec = SUBSETS[subset]
    folder = data_root(root) / "omniglot"
    source_files(data_root(root))
    with zipfile.ZipFile(folder / spec.archive) as archive:
        drawings = character_drawings(archive)
        alphabets = sorted({character.split("/")[0] for character in drawings})[spec.alphabets]
        characters = [character for character in drawings if character.split("/")[0] in alphabets]
        strokes = [[read_image(archive, drawings[character][d], stroke_mask, GLYPH_SIZE) for d in spec.drawers]
                   for character in characters]
    return Glyphs(subset, tuple(characters), spec.drawers, np.array(strokes, dtype=bool))


def augment_glyph(strokes: np.ndarray, rng: np.random.Generator, *, scale: float) -> np.ndarray | None:
    """``prepare_char`` then ``crop_image``: rotate by U(-20, 20) degrees, shear by U(-10, 10), scale each axis by
    ``scale ** U(-1, 1)``, resize by 32/105, and crop to the strokes' bounding box less its last row and column (the
    authors' off-by-one). None when nothing of the glyph is left (the authors' code retries on the exception)."""
    phi = np.radians(rng.uniform(-MAX_ROTATION, MAX_ROTATION))
    theta = np.radians(rng.uniform(-MAX_SHEAR, MAX_SHEAR))
    a, b = scale ** rng.uniform(-1, 1), scale ** rng.uniform(-1, 1)
    linear = np.array([[a * np.cos(phi + theta), b * np.sin(phi - theta)],
                       [-a * np.sin(phi + theta), b * np.cos(phi - theta)]])
    height, width = strokes.shape
    corners = linear @ np.array([[0, 0, width, width], [0, height, 0, height]])
    low, span = corners.min(axis=1), corners.max(axis=1) - corners.min(axis=1)
    forward = np.vstack([np.hstack([linear, -low[:, None]]), [0, 0, 1]])
    frame = (int(span[0]), int(span[1]))
    size = (int(REFERENCE_SIZE * span[0] / GLYPH_SIZE), int(REFERENCE_SIZE * span[1] / GLYPH_SIZE))
    if min(frame) < 1 or min(size) < 1:
        return None
    # PIL's AFFINE maps output to input pixels: the inverse of the glyph's transform; mode "1" resamples nearest.
    warped = Image.fromarray(strokes).transform(frame, Image.Transform.AFFINE, np.linalg.inv(forward)[:2].ravel())
    glyph = np.asarray(warped.resize(size))
    rows, columns = np.flatnonzero(glyph.any(axis=1)), np.flatnonzero(glyph.any(axis=0))
    if len(rows) == 0:
        return None
    cropped = glyph[rows[0]:rows[-1], columns[0]:columns[-1]]
    return cropped if cropped.any() else None


def _colour(rng: np.random.Generator) -> np.ndarray:
    return (255 * rng.random(3)).astype(np.uint8)


def _paste(canvas: np.ndarray, glyph: np.ndarray, colour: np.ndarray, top: int, left: int) -> np.ndarray:
    """Paint ``glyph``'s strokes in ``colour`` onto ``canvas`` at ``(top, left)``, clipped to the canvas; return the
    painted pixels as a mask of the canvas."""
    mask = np.zeros(canvas.shape[:2], dtype=bool)
    rows = slice(max(top, 0), min(top + glyph.shape[0], canvas.shape[0]))
    columns = slice(max(left, 0), min(left + glyph.shape[1], canvas.shape[1]))
    mask[rows, columns] = glyph[rows.start - top:rows.stop - top, columns.start - left:columns.stop - left]
    canvas[mask] = colour
    return mask


def _augmented(strokes: np.ndarray, rng: np.random.Generator, scale: float) -> np.ndarray:
    while (glyph := augment_glyph(strokes, rng, scale=scale)) is None:
        pass
    return glyph


def _place(canvas: np.ndarray, glyph: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    colour = _colour(rng)
    left = rng.integers(0, canvas.shape[1] - glyph.shape[1] + 1)
    top = rng.integers(0, canvas.shape[0] - glyph.shape[0] + 1)
    return _paste(canvas, glyph, colour, top, left)


@dataclass(frozen=True)
class Scene:
    image: np.ndarray  # uint8 [96, 96, 3]
    mask: np.ndarray  # bool [96, 96]: the target's strokes
    references: np.ndarray  # uint8 [K, 32, 32, 3]
    reference_masks: np.ndarray  # bool [K, 32, 32]: each reference's strokes
    character: int  # the target's index into Glyphs.characters
    drawer: int  # ... and into Glyphs.drawers


def make_scene(glyphs: Glyphs, rng: np.random.Generator, *, clutter: int, k_shot: int = 1,
               same_drawer: bool = True) -> Scene:
    """One scene of ``clutter`` characters (``clutter - 1`` distractors, of any character, the target's own
    included) and ``k_shot`` references of its target. ``same_drawer``: each reference is the target's own drawing,
    re-augmented (the paper's instance task); else a drawing of the same character by another drawer (the class
    task), a different one per shot."""
    n_characters, n_drawers = glyphs.strokes.shape[:2]
    if not same_drawer and not 1 <= k_shot < n_drawers:
        raise ValueError(f"same_drawer=false takes each of {k_shot} references from another of the subset's "
                         f"{n_drawers} drawers: k_shot must be 1..{n_drawers - 1}")
    character, drawer = rng.integers(n_characters), rng.integers(n_drawers)
    image = np.zeros((SCENE_SIZE, SCENE_SIZE, 3), dtype=np.uint8)
    for _ in range(clutter - 1):
        distractor = glyphs.strokes[rng.integers(n_characters), rng.integers(n_drawers)]
        _place(image, _augmented(distractor, rng, SCENE_SCALE), rng)
    mask = _place(image, _augmented(glyphs.strokes[character, drawer], rng, SCENE_SCALE), rng)

    if same_drawer:
        drawers = [drawer] * k_shot
    else:
        drawers = rng.choice([d for d in range(n_drawers) if d != drawer], size=k_shot, replace=False)
    references = np.zeros((k_shot, REFERENCE_SIZE, REFERENCE_SIZE, 3), dtype=np.uint8)
    reference_masks = np.zeros((k_shot, REFERENCE_SIZE, REFERENCE_SIZE), dtype=bool)
    for shot, reference_drawer in enumerate(drawers):
        while not reference_masks[shot].any():  # a glyph whose strokes all fall outside the centred crop: redraw
            glyph = _augmented(glyphs.strokes[character, reference_drawer], rng, 1.0)
            colour = _colour(rng)
            reference_masks[shot] = _paste(references[shot], glyph, colour, (REFERENCE_SIZE - glyph.shape[0]) // 2,
                                           (REFERENCE_SIZE - glyph.shape[1]) // 2)
    return Scene(image, mask, references, reference_masks, int(character), int(drawer))


def scene_seed(seed: int, clutter: int, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, clutter, index])


class ClutteredOmniglot(torch.utils.data.Dataset):
    """Scenes ``0 .. size - 1`` of a subset at one clutter level, scene ``i`` from the seed ``(seed, clutter, i)``.

    An item is a dict of uint8/bool tensors: ``query [3, 96, 96]``, ``query_mask [96, 96]``, ``support
    [K, 3, 32, 32]``, ``support_mask [K, 32, 32]``, ``character`` and ``drawer``."""

    def __init__(self, glyphs: Glyphs, *, clutter: int, size: int, seed: int, k_shot: int = 1,
                 same_drawer: bool = True):
        if clutter not in CLUTTER_LEVELS:
            raise ValueError(f"Cluttered Omniglot has no clutter level {clutter}; valid: "
                             f"{', '.join(map(str, CLUTTER_LEVELS))}")
        if k_shot < 1:
            raise ValueError(f"k_shot must be at least 1, got {k_shot}")
        self.glyphs, self.clutter, self.size, self.seed = glyphs, clutter, size, seed
        self.k_shot, self.same_drawer = k_shot, same_drawer

    def __len__(self) -> int:
        return self.size

    def scene(self, index: int) -> Scene:
        if not 0 <= index < self.size:
            raise IndexError(f"scene {index} of {self.size}")
        return make_scene(self.glyphs, scene_seed(self.seed, self.clutter, index), clutter=self.clutter,
                          k_shot=self.k_shot, same_drawer=self.same_drawer)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        scene = self.scene(index)
        return {"query": torch.from_numpy(scene.image).permute(2, 0, 1),
                "query_mask": torch.from_numpy(scene.mask),
                "support": torch.from_numpy(scene.references).permute(0, 3, 1, 2),
                "support_mask": torch.from_numpy(scene.reference_masks),
                "character": torch.tensor(scene.character), "drawer": torch.tensor(scene.drawer)}


def evaluation_scenes(glyphs: Glyphs, *, clutter: int, size: int, k_shot: int = 1,
                      same_drawer: bool = True) -> ClutteredOmniglot:
    """The fixed validation or test set of ``glyphs``' subset: its first ``size`` scenes, by the subset's seed."""
    if glyphs.subset == "train":
        raise ValueError("the train subset has no fixed scenes: evaluate on val-train, test-train, val-one-shot or "
                         "test-one-shot")
    return ClutteredOmniglot(glyphs, clutter=clutter, size=size, seed=SUBSETS[glyphs.subset].seed, k_shot=k_shot,
                             same_drawer=same_drawer)


@dataclass(frozen=True)
class FixedScenes:
    """Every scene of a data set generated once, in batches of `ClutteredOmniglot` items (a validation set is scored
    again and again), with what it is."""

    subset: str
    clutter: int
    k_shot: int
    same_drawer: bool
    batches: list[dict[str, torch.Tensor]]


def fixed_scenes(dataset: ClutteredOmniglot, *, batch_size: int = 250, num_workers: int = 0) -> FixedScenes:
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, num_workers=num_workers)
    return FixedScenes(dataset.glyphs.subset, dataset.clutter, dataset.k_shot, dataset.same_drawer, list(loader))


def model_inputs(batch: dict[str, torch.Tensor], device: torch.device) -> tuple[torch.Tensor, ...]:
    """A batch of items -> ``(support [B, K, 3, 32, 32], support_masks [B, K, 32, 32], query [B, 3, 96, 96],
    query_masks [B, 96, 96])`` on ``device``, images as floats in 0..1 (as `PrototypeSegmenter.transform` gives)."""
    return (batch["support"].to(device).float().div_(255), batch["support_mask"].to(device),
            batch["query"].to(device).float().div_(255), batch["query_mask"].to(device))
