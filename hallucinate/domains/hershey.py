"""D4: the symbol and kana glyphs of the Hershey stroke fonts (Debian's `hershey-fonts-data`,
/usr/share/hershey-fonts/*.jhf), drawn as pen strokes by 20 jittered "drawers", 1x28x28 like Omniglot.

Classes: the distinct glyphs (identical stroke data in several files is one glyph) of `SYMBOL_SETS` (astrology,
Japanese kana, markers, the two mathematics sets, meteorology, music, symbolic) that (1) no letter font of the
package (`LETTER_SETS`: Roman, script, Gothic, Times, Futura, Greek and Cyrillic) also holds, which leaves out
digits, punctuation and Latin or Greek letters, so the domain is symbols and kana only and no Cyrillic is drawn;
(2) have ink (more than 40 ink pixels at 105 px, scaled by area) when drawn without jitter; (3) are no
near-duplicate (`render.drop_near_duplicates`) of a glyph kept before them, files in `SYMBOL_SETS` order, glyphs in
file order. A class is named ``<file>/<position in the file>`` after its first occurrence. Cut 60/20/20 into train,
val and test by a permutation seeded with `SPLIT_SEED` (`render.split_by_permutation`). Classes: 211 train,
70 val, 71 test (`EXPECTED_CLASSES`).

Each of a class's 20 renderings draws the strokes on a 128-px canvas after an affine jitter (`render.Jitter`: ink
box 60-80% of the image, rotation, shear, shift), each vertex moved by Gaussian noise of `POINT_JITTER` px, with a
round pen of 3-5 px, then is stored like Omniglot's drawings (`omniglot.prepare_image`: Lanczos resize, bright
strokes on a dark background).

The .jhf format: one glyph a record, columns 0-4 the glyph number, 5-7 the number of coordinate pairs (the first
pair is the left and right margin), then each pair as two characters, a coordinate being its character's code minus
ord("R"); the pair " R" lifts the pen. A record longer than a line continues on the next lines.
"""
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from . import render

CHANNELS = 1
DEFAULT_IMAGE_SIZE = 28
RENDER_VERSION = 1
SEED = 2004  # of every class's renderings, with the class name
SPLIT_SEED = 4
PACKAGE = "hershey-fonts-data"
HERSHEY_DIR = Path("/usr/share/hershey-fonts")
CANVAS = 128
PENS = (3, 4, 5)  # pen widths, px at CANVAS
POINT_JITTER = 1.0  # standard deviation of each vertex's offset, px at CANVAS
JITTER = render.Jitter()
SYMBOL_SETS = ("astrology", "japanese", "markers", "mathlow", "mathupp", "meteorology", "music", "symbolic")
LETTER_SETS = ("cursive", "cyrilc_1", "cyrillic", "futural", "futuram", "gothgbt", "gothgrt", "gothiceng", "gothicger",
               "gothicita", "gothitt", "greek", "greekc", "greeks", "rowmand", "rowmans", "rowmant", "scriptc",
               "scripts", "timesg", "timesi", "timesib", "timesr", "timesrb")
EXPECTED_CLASSES = {"train": 211, "val": 70, "test": 71}


@dataclass(frozen=True)
class StrokeClass:
    split: str
    name: str
    strokes: tuple[np.ndarray, ...]  # each [n, 2] (x, y), y down


def font_files() -> list[Path]:
    paths = [HERSHEY_DIR / f"{name}.jhf" for name in SYMBOL_SETS + LETTER_SETS]
    missing = [path for path in paths if not path.is_file()]
    if missing:
        raise render.missing_fonts_error("hershey", missing, PACKAGE)
    return paths


def read_jhf(path: Path) -> list[str]:
    """The coordinate text of each glyph of a .jhf file, margins pair first, in file order."""
    lines = path.read_text(encoding="ascii").splitlines()
    glyphs, index = [], 0
    while index < len(lines):
        if not lines[index].strip():
            index += 1
            continue
        record, start = lines[index], index
        index += 1
        try:
            pairs = int(record[5:8])
        except ValueError:
            raise ValueError(f"{path}, line {start + 1}: columns 5-7 should hold the number of coordinate pairs, "
                             f"found {record[5:8]!r}") from None
        while len(record) - 8 < 2 * pairs and index < len(lines):
            record += lines[index]
            index += 1
        if len(record) - 8 != 2 * pairs:
            raise ValueError(f"{path}, line {start + 1}: the record announces {pairs} coordinate pairs but holds "
                             f"{(len(record) - 8) / 2:g}")
        glyphs.append(record[8:])
    return glyphs


def strokes(coordinates: str) -> tuple[np.ndarray, ...]:
    """A glyph's coordinate text (margins first) -> its pen strokes."""
    result, current = [], []
    for position in range(2, len(coordinates), 2):
        pair = coordinates[position:position + 2]
        if pair == " R":
            result.append(current)
            current = []
        else:
            current.append((ord(pair[0]) - ord("R"), ord(pair[1]) - ord("R")))
    result.append(current)
    return tuple(np.asarray(stroke, dtype=np.float64) for stroke in result if stroke)


def draw(glyph: tuple[np.ndarray, ...], rng: np.random.Generator | None, jitter: render.Jitter,
         pen: int = PENS[1]) -> np.ndarray:
    """The strokes on a `CANVAS` square as uint8 ink (bright), after `render.random_affine` and, with ``rng``, the
    per-vertex noise."""
    matrix = render.random_affine(np.concatenate(glyph), rng, jitter, CANVAS)
    image = Image.new("L", (CANVAS, CANVAS), 0)
    pencil = ImageDraw.Draw(image)
    for stroke in glyph:
        points = stroke @ matrix[:2, :2].T + matrix[:2, 2]
        if rng is not None:
            points = points + rng.normal(0.0, POINT_JITTER, points.shape)
        if len(points) > 1:
            pencil.line([tuple(point) for point in points], fill=255, width=pen, joint="curve")
        for x, y in points:  # round ends, and the dot of a one-point stroke
            pencil.ellipse((x - pen / 2, y - pen / 2, x + pen / 2, y + pen / 2), fill=255)
    return np.asarray(image, dtype=np.uint8)


def class_list() -> list[StrokeClass]:
    """Every class with its split, by the module's rules."""
    font_files()
    letters = {coordinates for name in LETTER_SETS for coordinates in read_jhf(HERSHEY_DIR / f"{name}.jhf")}
    found = {}
    for name in SYMBOL_SETS:
        for position, coordinates in enumerate(read_jhf(HERSHEY_DIR / f"{name}.jhf")):
            glyph = strokes(coordinates)
            if coordinates in letters or coordinates in found.values() or not glyph:
                continue
            if render.enough_ink(draw(glyph, None, render.CANONICAL)):
                found[f"{name}/{position:03d}"] = coordinates
    names = list(found)
    canonical = [render.to_stored(draw(strokes(found[name]), None, render.CANONICAL), 28) for name in names]
    names = [names[index] for index in render.drop_near_duplicates(canonical)]
    splits = render.split_by_permutation(names, SPLIT_SEED, {"train": 0.6, "val": 0.2, "test": 0.2})
    return [StrokeClass(splits[name], name, strokes(found[name])) for name in names]


def source_fingerprint(root: Path) -> str:
    """Of the .jhf files and `RENDER_VERSION` (``root``, the data root, holds nothing this domain reads)."""
    return render.source_fingerprint(font_files(), RENDER_VERSION)


def render_class(glyph: StrokeClass, image_size: int = DEFAULT_IMAGE_SIZE) -> np.ndarray:
    """The class's 20 drawings ``uint8 [20, H, W, 1]``, each with its own pen, affine and vertex noise."""
    rng = render.class_rng(SEED, glyph.name)
    images = []
    for index in range(render.IMAGES_PER_CLASS):
        canvas = draw(glyph.strokes, rng, JITTER, int(rng.choice(PENS)))
        images.append(render.to_stored(render.check_ink(canvas, f"class {glyph.name!r}, drawing {index}"), image_size))
    return np.stack(images)


def read_classes(root: Path, image_size: int = DEFAULT_IMAGE_SIZE):
    """Yield ``(split, class_name, images uint8 [20, H, W, 1])`` for every class of `class_list`."""
    for glyph in class_list():
        yield glyph.split, glyph.name, render_class(glyph, image_size)
