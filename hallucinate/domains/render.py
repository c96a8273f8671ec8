"""Rendering shared by the glyph domains: a class's seeded generator, Omniglot-like placement with affine jitter,
font glyphs with .notdef detection, the ink check, near-duplicate removal and the conversion to Omniglot's stored
form (strokes bright on a dark background)."""
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

CANVAS = 105  # the side of an Omniglot drawing, in pixels
MIN_INK = 40  # ink pixels a CANVAS-sized rendering must have; scaled by area for other canvases
IMAGES_PER_CLASS = 20  # Omniglot's 20 drawers
GLYPH_SIZE = 96  # font size, in pixels, glyphs are rasterised at before placement
UNASSIGNED = "\u0378"  # no font maps it, so a font draws its .notdef glyph for it
# Cosine similarity of two canonical 28-px renderings above which the later class is a near-duplicate (o and O,
# Latin A and Greek Alpha, Braille cells that differ by a translation)
DUPLICATE_SIMILARITY = 0.98


@dataclass(frozen=True)
class Jitter:
    """The random affine of one rendering: the longer side of the ink box as a fraction of the canvas, a rotation
    and a horizontal shear either way, and a translation either way as a fraction of the canvas."""
    box: tuple[float, float] = (0.6, 0.8)
    rotation_degrees: float = 10.0
    shear: float = 0.2
    shift: float = 0.05


CANONICAL = Jitter(box=(0.7, 0.7), rotation_degrees=0.0, shear=0.0, shift=0.0)


class RenderError(ValueError):
    pass


def class_rng(seed: int, class_name: str) -> np.random.Generator:
    """The generator of one class's renderings: seeded by the domain's constant and the class name (sha256, so the
    same in every process)."""
    words = np.frombuffer(hashlib.sha256(class_name.encode()).digest(), dtype=np.uint32)
    return np.random.default_rng([seed, *words.tolist()])


def random_affine(points: np.ndarray, rng: np.random.Generator | None, jitter: Jitter, canvas: int) -> np.ndarray:
    """The 3x3 matrix taking ``points`` ``[N, 2]`` (x, y) onto a ``canvas`` square: rotated and sheared, scaled so
    the longer side of their box is a random fraction of the canvas, centred, then shifted. ``rng=None`` draws the
    middle of every range."""
    def draw(low, high):
        return (low + high) / 2 if rng is None else rng.uniform(low, high)

    angle = np.deg2rad(draw(-jitter.rotation_degrees, jitter.rotation_degrees))
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    linear = rotation @ np.array([[1.0, draw(-jitter.shear, jitter.shear)], [0.0, 1.0]])
    moved = points @ linear.T
    low, high = moved.min(axis=0), moved.max(axis=0)
    scale = draw(*jitter.box) * canvas / max(float((high - low).max()), 1.0)
    shift = np.array([draw(-jitter.shift, jitter.shift), draw(-jitter.shift, jitter.shift)]) * canvas
    matrix = np.eye(3)
    matrix[:2, :2] = scale * linear
    matrix[:2, 2] = canvas / 2 + shift - scale * (low + high) / 2
    return matrix


def place(ink: np.ndarray, rng: np.random.Generator | None, jitter: Jitter, canvas: int = CANVAS) -> np.ndarray:
    """A uint8 ink image (ink bright) warped onto a ``canvas`` square by `random_affine` of its ink pixels."""
    ys, xs = np.nonzero(ink)
    if len(xs) == 0:
        return np.zeros((canvas, canvas), dtype=np.uint8)
    points = np.stack([xs, ys], axis=1) + 0.5
    inverse = np.linalg.inv(random_affine(points, rng, jitter, canvas))
    warped = Image.fromarray(ink).transform((canvas, canvas), Image.Transform.AFFINE, data=tuple(inverse[:2].ravel()),
                                            resample=Image.Resampling.BILINEAR, fillcolor=0)
    return np.asarray(warped, dtype=np.uint8)


def ink_pixels(canvas: np.ndarray) -> int:
    return int((canvas > 127).sum())


def enough_ink(canvas: np.ndarray) -> bool:
    return ink_pixels(canvas) > MIN_INK * (canvas.shape[0] / CANVAS) ** 2


def check_ink(canvas: np.ndarray, what: str) -> np.ndarray:
    if not enough_ink(canvas):
        raise RenderError(f"{what}: the rendering has {ink_pixels(canvas)} ink pixels at {canvas.shape[0]} px, "
                          f"expected more than {MIN_INK * (canvas.shape[0] / CANVAS) ** 2:.0f}")
    return canvas


def to_stored(canvas: np.ndarray, image_size: int) -> np.ndarray:
    """An ink canvas -> uint8 ``[H, W, 1]`` exactly as Omniglot stores a drawing: drawn dark on white, then
    `omniglot.prepare_image` (Lanczos resize, inverted)."""
    from ..data.omniglot import prepare_image  # here, not at the top: hallucinate.data imports this package

    return prepare_image(Image.fromarray(255 - canvas), image_size)


def load_font(path: Path) -> ImageFont.FreeTypeFont:
    # The basic layout draws a code point's nominal glyph from the cmap, the same with or without libraqm
    return ImageFont.truetype(str(path), size=GLYPH_SIZE, layout_engine=ImageFont.Layout.BASIC)


def glyph_ink(font: ImageFont.FreeTypeFont, char: str, pen: int = 0) -> np.ndarray:
    """``char`` rasterised in ``font`` as a uint8 ink image (ink bright), its outline widened by ``pen`` pixels."""
    left, top, right, bottom = font.getbbox(char, stroke_width=pen)
    if right <= left or bottom <= top:
        return np.zeros((1, 1), dtype=np.uint8)
    image = Image.new("L", (right - left + 2, bottom - top + 2), 0)
    ImageDraw.Draw(image).text((1 - left, 1 - top), char, font=font, fill=255, stroke_width=pen, stroke_fill=255)
    return np.asarray(image, dtype=np.uint8)


@dataclass(frozen=True)
class FontClass:
    """One class of a font domain: a code point drawn in each of ``fonts`` in turn (they all have a glyph for it)."""
    split: str
    name: str
    char: str
    fonts: tuple[Path, ...]


class FontSet:
    """The fonts of a domain, loaded once, with the .notdef glyph of each."""

    def __init__(self, paths: list[Path]):
        self.fonts = {path: load_font(path) for path in paths}
        self.notdef = {path: glyph_ink(font, UNASSIGNED) for path, font in self.fonts.items()}

    def covering(self, char: str, paths: list[Path]) -> tuple[Path, ...]:
        """The fonts among ``paths`` that draw ``char`` as a glyph of its own with enough ink (not .notdef, not
        empty), in the order given."""
        covered = []
        for path in paths:
            ink = glyph_ink(self.fonts[path], char)
            if not np.array_equal(ink, self.notdef[path]) and enough_ink(place(ink, None, CANONICAL)):
                covered.append(path)
        return tuple(covered)

    def canonical(self, char: str, path: Path) -> np.ndarray:
        """``char`` in the font at ``path``, centred without jitter, at 28 px: what near-duplicates are judged on."""
        return to_stored(place(glyph_ink(self.fonts[path], char), None, CANONICAL), 28)

    def render(self, glyph: FontClass, seed: int, image_size: int, jitter: Jitter, max_pen: int) -> np.ndarray:
        """The class's `IMAGES_PER_CLASS` renderings ``uint8 [20, H, W, 1]``: the fonts in a seeded order, cycled,
        each rendering with its own pen width (0 to ``max_pen`` pixels of outline) and affine jitter."""
        rng = class_rng(seed, glyph.name)
        order = rng.permutation(len(glyph.fonts))
        images = []
        for index in range(IMAGES_PER_CLASS):
            path = glyph.fonts[order[index % len(order)]]
            ink = glyph_ink(self.fonts[path], glyph.char, int(rng.integers(0, max_pen + 1)))
            canvas = check_ink(place(ink, rng, jitter), f"class {glyph.name!r}, rendering {index} in {path}")
            images.append(to_stored(canvas, image_size))
        return np.stack(images)


def drop_near_duplicates(images: list[np.ndarray]) -> list[int]:
    """Indices of the images to keep, in order: each one whose cosine similarity to an image kept before it exceeds
    `DUPLICATE_SIMILARITY` is dropped."""
    if not images:
        return []
    vectors = np.stack([image.astype(np.float64).ravel() for image in images])
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    kept, kept_vectors = [], np.empty_like(vectors)
    for index, vector in enumerate(vectors):
        if not kept or float(np.max(kept_vectors[:len(kept)] @ vector)) <= DUPLICATE_SIMILARITY:
            kept_vectors[len(kept)] = vector
            kept.append(index)
    return kept


def drawn_code_points(fonts: FontSet, groups: dict[str, tuple[list[int], list[Path]]]
                      ) -> dict[str, list[tuple[int, tuple[Path, ...]]]]:
    """For each group (a script, a set of characters) of ``(code points, font paths)``: the code points some of its
    fonts draw (`FontSet.covering`), with those fonts, less every near-duplicate (`drop_near_duplicates` of their
    canonical renderings in their first font) of one kept before it, groups and code points in the order given."""
    found = [(group, point, covering) for group, (points, paths) in groups.items() for point in points
             if (covering := fonts.covering(chr(point), paths))]
    kept = drop_near_duplicates([fonts.canonical(chr(point), covering[0]) for _, point, covering in found])
    drawn = {group: [] for group in groups}
    for index in kept:
        group, point, covering = found[index]
        drawn[group].append((point, covering))
    return drawn


def split_by_permutation(names: list[str], seed: int, fractions: dict[str, float]) -> dict[str, str]:
    """``name -> split``: ``names`` sorted, permuted by a generator seeded with ``seed``, cut in the order and
    fractions of ``fractions`` (rounded; the last split takes the rest)."""
    ordered = sorted(names)
    permuted = [ordered[i] for i in np.random.default_rng(seed).permutation(len(ordered))]
    assignment, start = {}, 0
    splits = list(fractions)
    for position, split in enumerate(splits):
        stop = len(permuted) if position == len(splits) - 1 else start + round(fractions[split] * len(permuted))
        assignment.update((name, split) for name in permuted[start:stop])
        start = stop
    return assignment


def read_font_classes(font_files: list[Path], class_list, seed: int, jitter: Jitter, max_pen: int,
                      image_size: int):
    """Yield a font domain's ``(split, class_name, images uint8 [20, H, W, 1])``: every class that
    ``class_list(fonts)`` gives, rendered from ``font_files``."""
    fonts = FontSet(font_files)
    for glyph in class_list(fonts):
        yield glyph.split, glyph.name, fonts.render(glyph, seed, image_size, jitter, max_pen)


def source_fingerprint(paths: list[Path], render_version: int) -> str:
    """The sha256 of the source files' bytes (`archive.fingerprint`) with the domain's rendering version."""
    from ..data.archive import fingerprint  # here, not at the top: hallucinate.data imports this package

    return f"render-{render_version}-{fingerprint(paths)}"


def missing_fonts_error(what: str, missing: list[Path], package: str) -> FileNotFoundError:
    return FileNotFoundError(f"{what}: missing {', '.join(str(path) for path in missing)}; install the Debian "
                             f"package with `apt-get install {package}`")
