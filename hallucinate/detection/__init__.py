"""Few-shot object detection on Omniglot-Det: the canvases and their K-shot sets (`canvases`), Faster R-CNN with the
project's Conv-4 (`model`), base training (`training`), TFA's fine-tuning (`tfa`), AP (`metric`, `evaluation`) and
the detector users adapt to their own classes (`detector`)."""
from .canvases import (BASE_LABELS, K_SHOT_SEEDS, K_SHOTS, NOVEL_LABELS, NUM_BASE_CLASSES, NUM_CLASSES,
                       NUM_NOVEL_CLASSES, BaseCanvases, Canvas, FewShotCanvases, Glyphs, KShotCanvases, base_test_set,
                       benchmark_test_set, collate_canvases, load_glyphs)
from .config import DetectionConfig
from .detector import FewShotDetector
from .training import run_detection

__all__ = ["BASE_LABELS", "K_SHOTS", "K_SHOT_SEEDS", "NOVEL_LABELS", "NUM_BASE_CLASSES", "NUM_CLASSES",
           "NUM_NOVEL_CLASSES", "BaseCanvases", "Canvas", "FewShotCanvases", "DetectionConfig", "FewShotDetector",
           "Glyphs", "KShotCanvases", "base_test_set", "benchmark_test_set", "collate_canvases", "load_glyphs",
           "run_detection"]
