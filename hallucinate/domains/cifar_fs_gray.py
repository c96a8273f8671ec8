"""D5: CIFAR-FS in greyscale at 28 px, with CIFAR-FS's own class split (Bertinetto et al.: 64 train, 16 val,
20 test classes) and all of each class's images (500 in the shared copy, 600 in a build from CIFAR-100).

Read through `hallucinate.data.cifar_fs.read_classes` at its native 32 px, each image converted to luminance (PIL's
"L": 0.299 R + 0.587 G + 0.114 B) and resized with Lanczos to the image size. Natural-image polarity is kept (no
inversion). The clean-split rule is CIFAR-FS's: its three class lists are disjoint.
"""
from pathlib import Path

import numpy as np
from PIL import Image

CHANNELS = 1
DEFAULT_IMAGE_SIZE = 28
RENDER_VERSION = 1


def to_gray(rgb: np.ndarray, image_size: int) -> np.ndarray:
    """uint8 ``[32, 32, 3]`` RGB -> uint8 ``[H, W, 1]`` luminance, Lanczos-resized."""
    gray = Image.fromarray(rgb).convert("L").resize((image_size, image_size), Image.Resampling.LANCZOS)
    return np.asarray(gray, dtype=np.uint8)[:, :, None]


def source_fingerprint(root: Path) -> str:
    """CIFAR-FS's own fingerprint (its zips and class lists) with `RENDER_VERSION`."""
    from ..data import cifar_fs  # here, not at the top: hallucinate.data imports this package

    return f"render-{RENDER_VERSION}-{cifar_fs.source_fingerprint(root)}"


def read_classes(root: Path, image_size: int = DEFAULT_IMAGE_SIZE):
    """Yield ``(split, class_name, images uint8 [n, H, W, 1])`` for every CIFAR-FS class, in its order."""
    from ..data import cifar_fs  # here, not at the top: hallucinate.data imports this package

    for split, class_name, images in cifar_fs.read_classes(root, cifar_fs.DEFAULT_IMAGE_SIZE):
        yield split, class_name, np.stack([to_gray(image, image_size) for image in images])
