"""Few-shot segmentation on Cluttered Omniglot: the scenes (`scenes`), the masked-pooling + cosine segmenter
(`model`), its metric (`metric`, `evaluation`), its settings (`config`) and its training loop (`training`)."""
from .config import SegmentationConfig
from .evaluation import evaluate
from .metric import SegmentationResult
from .model import PrototypeSegmenter, build_segmenter
from .scenes import CLUTTER_LEVELS, SUBSETS, ClutteredOmniglot, evaluation_scenes, fixed_scenes, load_glyphs
from .training import run_segmentation, train_segmenter

__all__ = ["CLUTTER_LEVELS", "SUBSETS", "ClutteredOmniglot", "PrototypeSegmenter", "SegmentationConfig",
           "SegmentationResult", "build_segmenter", "evaluate", "evaluation_scenes", "fixed_scenes", "load_glyphs",
           "run_segmentation", "train_segmenter"]
