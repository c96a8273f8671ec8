"""D2: printed glyphs of the scripts of Omniglot's Vinyals train and val alphabets, rendered from Debian's
`fonts-noto-core` (/usr/share/fonts/truetype/noto), 20 jittered renderings a code point, 1x28x28 like Omniglot.

Clean-split rule: only scripts Omniglot contains; `SCRIPTS` names the Vinyals *train* alphabets each one stands for
and `VAL_SCRIPTS` the Vinyals *val* ones. No script of a Vinyals test alphabet is rendered, nor any script that has
an alphabet in both train and test lists: never Cyrillic (test: Old Church Slavonic), Syriac (test: Serto),
Gurmukhi, Kannada, Malayalam, Oriya, Tibetan, Mongolian, Meetei Mayek (Manipuri), Syloti Nagri (Sylheti). Japanese
and Korean are train alphabets too, but their fonts are in `fonts-noto-cjk`, which is not used.

A class is a code point of a script's ranges whose Unicode category is a letter (Lu, Ll, Lt, Lo; So for Braille
patterns). A code point is left out, by these rules in this order: (1) none of the script's fonts draws it, that
is every font gives its .notdef glyph (the one it draws for the unassigned U+0378) or fewer than 40 ink pixels at
105 px; (2) its un-jittered 28-px rendering in its first font is a near-duplicate (`render.drop_near_duplicates`)
of a code point kept before it, scripts in `SCRIPTS` order, then `VAL_SCRIPTS`, code points in order: this drops
the 14 Greek capitals and omicron that Latin letters already draw, Runic and Tifinagh letters shaped like Latin
ones, Armenian O, S, U-shaped letters (so no val class repeats a train one) and 72 Braille cells that are
translations of others.

Splits: ``val`` = the code points of `VAL_SCRIPTS` (Armenian, Bengali, Hebrew, Imperial Aramaic, Georgian
Mkhedruli); the code points of each train script are cut 80/20 into ``train`` and ``test`` by a permutation seeded
with `SPLIT_SEED` (`render.split_by_permutation`), so D2 can also be left out and tested on. Classes: 1,453 train,
365 test, 207 val (`EXPECTED_CLASSES`; with Debian 12's fonts-noto-core 20201225).

Each class's 20 images cycle over the script's fonts that draw it (Sans and Serif, regular and bold, display and
italic styles for Latin and Greek, the 12 regional Tifinagh fonts), in a seeded order, each with its own pen width
(0-3 px of outline at 96 px), scale (ink box 60-80% of the image), rotation (+-10 degrees), shear (+-0.2) and shift
(+-5%), drawn dark on white at 105 px and stored like Omniglot's drawings (`omniglot.prepare_image`).
"""
import unicodedata
from pathlib import Path

from . import render

CHANNELS = 1
DEFAULT_IMAGE_SIZE = 28
RENDER_VERSION = 1
SEED = 2002  # of every class's renderings, with the class name
SPLIT_SEED = 2
PACKAGE = "fonts-noto-core"
FONT_DIR = Path("/usr/share/fonts/truetype/noto")
JITTER = render.Jitter()
MAX_PEN = 3
EXPECTED_CLASSES = {"train": 1453, "test": 365, "val": 207}

_LATIN_GREEK = tuple(f"Noto{family}-{style}.ttf" for family in ("Sans", "Serif", "SansDisplay", "SerifDisplay")
                     for style in ("Regular", "Bold", "Italic", "BoldItalic"))


def _families(*names: str) -> tuple[str, ...]:
    return tuple(f"Noto{name}-{style}.ttf" for name in names for style in ("Regular", "Bold"))


_TIFINAGH = ("NotoSansTifinagh-Regular.ttf",) + tuple(
    f"NotoSansTifinagh{region}-Regular.ttf" for region in (
        "APT", "Adrar", "AgrawImazighen", "Ahaggar", "Air", "Azawagh", "Ghat", "Hawad", "RhissaIxa", "SIL",
        "Tawellemmet"))

# name: (Omniglot alphabets it stands for, code point ranges (inclusive), font files)
SCRIPTS = {
    "Latin": (("Latin",), ((0x41, 0x5A), (0x61, 0x7A)), _LATIN_GREEK),
    "Greek": (("Greek",), ((0x391, 0x3A9), (0x3B1, 0x3C9)), _LATIN_GREEK),
    "Runic": (("Anglo-Saxon_Futhorc",), ((0x16A0, 0x16F8),), ("NotoSansRunic-Regular.ttf",)),
    "Georgian Asomtavruli": (("Asomtavruli_(Georgian)",), ((0x10A0, 0x10CD),),
                             _families("SansGeorgian", "SerifGeorgian")),
    "Avestan": (("Avesta",), ((0x10B00, 0x10B35),), ("NotoSansAvestan-Regular.ttf",)),
    "Balinese": (("Balinese",), ((0x1B05, 0x1B4C),), _families("SansBalinese") + ("NotoSerifBalinese-Regular.ttf",)),
    "Canadian Aboriginal": (("Blackfoot_(Canadian_Aboriginal_Syllabics)", "Inuktitut_(Canadian_Aboriginal_Syllabics)",
                             "Ojibwe_(Canadian_Aboriginal_Syllabics)"), ((0x1401, 0x167F),),
                            _families("SansCanadianAboriginal")),
    "Braille": (("Braille",), ((0x2801, 0x28FF),), ("NotoSansSymbols2-Regular.ttf",)),
    "Myanmar": (("Burmese_(Myanmar)",), ((0x1000, 0x102A),), _families("SansMyanmar", "SerifMyanmar")),
    "Ethiopic": (("Ge_ez",), ((0x1200, 0x137F),), _families("SansEthiopic", "SerifEthiopic")),
    "Glagolitic": (("Glagolitic",), ((0x2C00, 0x2C2F),), ("NotoSansGlagolitic-Regular.ttf",)),
    "Grantha": (("Grantha",), ((0x11305, 0x11339),), ("NotoSansGrantha-Regular.ttf", "NotoSerifGrantha-Regular.ttf")),
    "Gujarati": (("Gujarati",), ((0xA85, 0xAB9),), _families("SansGujarati", "SerifGujarati")),
    "Arabic": (("Malay_(Jawi_-_Arabic)",), ((0x620, 0x64A),), _families("SansArabic", "NaskhArabic", "KufiArabic")),
    "N'Ko": (("N_Ko",), ((0x7CA, 0x7EA),), ("NotoSansNKo-Regular.ttf",)),
    "Devanagari": (("Sanskrit",), ((0x904, 0x939),), _families("SansDevanagari", "SerifDevanagari")),
    "Tagalog": (("Tagalog",), ((0x1700, 0x171F),), ("NotoSansTagalog-Regular.ttf",)),
    "Tifinagh": (("Tifinagh",), ((0x2D30, 0x2D67),), _TIFINAGH),
}
VAL_SCRIPTS = {
    "Armenian": (("Armenian",), ((0x531, 0x556), (0x561, 0x587)), _families("SansArmenian", "SerifArmenian")),
    "Bengali": (("Bengali",), ((0x985, 0x9B9),), _families("SansBengali", "SerifBengali")),
    "Hebrew": (("Hebrew",), ((0x5D0, 0x5EA),), _families("SansHebrew", "SerifHebrew")),
    "Imperial Aramaic": (("Early_Aramaic",), ((0x10840, 0x10855),), ("NotoSansImperialAramaic-Regular.ttf",)),
    "Georgian Mkhedruli": (("Mkhedruli_(Georgian)",), ((0x10D0, 0x10FA),), _families("SansGeorgian", "SerifGeorgian")),
}
_LETTERS = {"Lu", "Ll", "Lt", "Lo"}


def font_files() -> list[Path]:
    """Every font file the scripts use, once each, in table order; a missing one is an error naming the package."""
    names = dict.fromkeys(name for table in (SCRIPTS, VAL_SCRIPTS) for _, _, fonts in table.values() for name in fonts)
    paths = [FONT_DIR / name for name in names]
    missing = [path for path in paths if not path.is_file()]
    if missing:
        raise render.missing_fonts_error("noto_glyphs", missing, PACKAGE)
    return paths


def candidates(script: str) -> list[int]:
    """The code points of ``script``'s ranges that are letters (Braille: the patterns, which are symbols)."""
    _, ranges, _ = (SCRIPTS | VAL_SCRIPTS)[script]
    wanted = {"So"} if script == "Braille" else _LETTERS
    return [point for low, high in ranges for point in range(low, high + 1)
            if unicodedata.category(chr(point)) in wanted]


def class_list(fonts: render.FontSet | None = None) -> list[render.FontClass]:
    """Every class with its split and the fonts that draw it, by the module's rules, train scripts first."""
    fonts = fonts or render.FontSet(font_files())
    scripts = SCRIPTS | VAL_SCRIPTS
    drawn = render.drawn_code_points(fonts, {script: (candidates(script), [FONT_DIR / name for name in names])
                                             for script, (_, _, names) in scripts.items()})
    classes = []
    for script, glyphs in drawn.items():
        names = {f"{script}/U+{point:04X}": (point, covering) for point, covering in glyphs}
        splits = (dict.fromkeys(names, "val") if script in VAL_SCRIPTS
                  else render.split_by_permutation(list(names), SPLIT_SEED, {"train": 0.8, "test": 0.2}))
        classes += [render.FontClass(splits[name], name, chr(point), covering)
                    for name, (point, covering) in names.items()]
    return classes


def source_fingerprint(root: Path) -> str:
    """Of the font files and `RENDER_VERSION` (``root``, the data root, holds nothing this domain reads)."""
    return render.source_fingerprint(font_files(), RENDER_VERSION)


def read_classes(root: Path, image_size: int = DEFAULT_IMAGE_SIZE):
    """Yield ``(split, class_name, images uint8 [20, H, W, 1])`` for every class of `class_list`."""
    return render.read_font_classes(font_files(), class_list, SEED, JITTER, MAX_PEN, image_size)
