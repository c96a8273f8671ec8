"""Extra classification domains for cross-domain few-shot learning, each a data set module with the contract of
`hallucinate.data.omniglot` (``CHANNELS``, ``DEFAULT_IMAGE_SIZE``, ``source_fingerprint(root)``,
``read_classes(root, image_size)``), all 1x28x28: Noto printed glyphs (D2), handwriting fonts (D3), Hershey
strokes (D4) and CIFAR-FS in greyscale (D5). `hallucinate.data` registers `DOMAIN_DATASETS` in its ``DATASETS``;
these modules import nothing from `hallucinate.data` at import time, so either package can be imported first."""
from . import cifar_fs_gray, handwriting_fonts, hershey, noto_glyphs

DOMAIN_DATASETS = {
    "noto_glyphs": noto_glyphs,
    "handwriting_fonts": handwriting_fonts,
    "hershey": hershey,
    "cifar_fs_gray": cifar_fs_gray,
}
