"""D3: Latin letters and digits and Japanese kana in the handwriting-style fonts Debian packages, 20 jittered
renderings a character, 1x28x28 like Omniglot.

Fonts (`FONT_PACKAGES`, under /usr/share/fonts): fonts-dkg-handwriting, fonts-humor-sans, fonts-breip,
fonts-femkeklaver, fonts-kristi, fonts-rufscript, fonts-sjfonts, fonts-bwht, fonts-comic-neue,
fonts-dancingscript, fonts-kaushanscript, fonts-ecolier-court, fonts-tomsontalks, fonts-klee, fonts-seto: 32
files that all draw the 62 alphanumerics; 3 of them (Klee One regular and semibold, Seto) draw 176 kana.
(setofont-ex.ttf holds kanji only and is not used.)

Classes: the code points of `GROUPS` (the 62 Latin alphanumerics; the hiragana and katakana letters) that some of
the group's fonts draw (not .notdef, more than 40 ink pixels at 105 px), less every near-duplicate of one kept
before it (`render.drop_near_duplicates` on un-jittered renderings in the group's first font that draws it, groups
and code points in order: katakana HE after hiragana HE). Small kana are left out: scaled like every other glyph,
each is its full-size letter. No
rotated copies: a letter turned by a half turn is often another letter (b and q, n and u, 6 and 9), which would put
one glyph in two classes and across splits. Each group is cut 60/20/20 into train, val and test by a permutation
seeded with `SPLIT_SEED` (`render.split_by_permutation`). Classes: 128 train, 43 val, 43 test
(62 Latin, 74 hiragana, 78 katakana) (`EXPECTED_CLASSES`).

Kana are in Omniglot's Vinyals train alphabets (Japanese hiragana and katakana) and Latin is too; no script of a
Vinyals test alphabet is drawn. Each class's 20 images go through its fonts in a seeded order (20 different fonts
for a Latin character, the 3 kana fonts in turn for a kana), each with its own pen width (0-3 px of outline at
96 px) and affine jitter (`render.Jitter`), drawn dark on white at 105 px and stored like Omniglot's drawings.
"""
import unicodedata
from pathlib import Path

from . import render

CHANNELS = 1
DEFAULT_IMAGE_SIZE = 28
RENDER_VERSION = 1
SEED = 2003  # of every class's renderings, with the class name
SPLIT_SEED = 3
FONT_DIR = Path("/usr/share/fonts")
JITTER = render.Jitter()
MAX_PEN = 3
EXPECTED_CLASSES = {"train": 128, "val": 43, "test": 43}

FONT_PACKAGES = {
    "fonts-humor-sans": ("truetype/humor-sans/Humor-Sans.ttf",),
    "fonts-dkg-handwriting": tuple(f"truetype/fifthhorseman/{name}.ttf" for name in ("dkg", "dkgBd", "dkgIt", "dkgBI")),
    "fonts-breip": ("truetype/breip/Breip.ttf", "truetype/breip/breipfont.ttf"),
    "fonts-femkeklaver": ("truetype/femkeklaver/femkeklaver.ttf",),
    "fonts-kristi": ("truetype/kristi/Kristi.ttf",),
    "fonts-rufscript": ("truetype/rufscript/Rufscript010.ttf",),
    "fonts-sjfonts": ("truetype/sjfonts/Delphine.ttf", "truetype/sjfonts/SteveHand.ttf"),
    "fonts-bwht": tuple(f"opentype/bwht/BecauseWe{name}-Regular.otf"
                        for name in ("Build", "Connect", "Create", "Learn", "Mentor", "Organize")),
    "fonts-comic-neue": tuple(f"opentype/comic-neue/ComicNeue-{style}.otf"
                              for style in ("Regular", "Bold", "Italic", "BoldItalic", "Light", "LightItalic")),
    "fonts-dancingscript": ("opentype/dancingscript/DancingScript-Regular.otf",
                            "opentype/dancingscript/DancingScript-Bold.otf"),
    "fonts-kaushanscript": ("opentype/kaushanscript/KaushanScript-Regular.otf",),
    "fonts-ecolier-court": ("truetype/ecolier-court/Ecolier-court.ttf",),
    "fonts-tomsontalks": ("truetype/tomsontalks/TomsonTalks.ttf",),
    "fonts-klee": ("truetype/klee/KleeOne-Regular.ttf", "truetype/klee/KleeOne-SemiBold.ttf"),
    "fonts-seto": ("truetype/seto/setofont.ttf",),
}
_KANA_FONTS = ("truetype/klee/KleeOne-Regular.ttf", "truetype/klee/KleeOne-SemiBold.ttf", "truetype/seto/setofont.ttf")


def _kana(low: int, high: int) -> list[int]:
    """The kana letters between ``low`` and ``high``, less the small ones: scaled to the size of every other
    glyph, a small kana is its full-size letter."""
    return [point for point in range(low, high + 1)
            if unicodedata.category(chr(point)) == "Lo" and " SMALL " not in unicodedata.name(chr(point))]


# name: (code points, font files relative to FONT_DIR)
GROUPS = {
    "Latin": ([*range(0x30, 0x3A), *range(0x41, 0x5B), *range(0x61, 0x7B)],
              tuple(name for names in FONT_PACKAGES.values() for name in names)),
    "Hiragana": (_kana(0x3041, 0x3096), _KANA_FONTS),
    "Katakana": (_kana(0x30A1, 0x30FA), _KANA_FONTS),
}


def font_files() -> list[Path]:
    """Every font file, in `FONT_PACKAGES` order; a missing one is an error naming its Debian package."""
    missing = {package: [FONT_DIR / name for name in names if not (FONT_DIR / name).is_file()]
               for package, names in FONT_PACKAGES.items()}
    missing = {package: paths for package, paths in missing.items() if paths}
    if missing:
        raise render.missing_fonts_error("handwriting_fonts", [path for paths in missing.values() for path in paths],
                                         " ".join(missing))
    return [FONT_DIR / name for names in FONT_PACKAGES.values() for name in names]


def class_list(fonts: render.FontSet | None = None) -> list[render.FontClass]:
    """Every class with its split and the fonts that draw it, by the module's rules, Latin first."""
    fonts = fonts or render.FontSet(font_files())
    drawn = render.drawn_code_points(fonts, {group: (points, [FONT_DIR / name for name in names])
                                             for group, (points, names) in GROUPS.items()})
    classes = []
    for group, glyphs in drawn.items():
        names = {f"{group}/U+{point:04X}": (point, covering) for point, covering in glyphs}
        splits = render.split_by_permutation(list(names), SPLIT_SEED, {"train": 0.6, "val": 0.2, "test": 0.2})
        classes += [render.FontClass(splits[name], name, chr(point), covering)
                    for name, (point, covering) in names.items()]
    return classes


def source_fingerprint(root: Path) -> str:
    """Of the font files and `RENDER_VERSION` (``root``, the data root, holds nothing this domain reads)."""
    return render.source_fingerprint(font_files(), RENDER_VERSION)


def read_classes(root: Path, image_size: int = DEFAULT_IMAGE_SIZE):
    """Yield ``(split, class_name, images uint8 [20, H, W, 1])`` for every class of `class_list`."""
    return render.read_font_classes(font_files(), class_list, SEED, JITTER, MAX_PEN, image_size)
