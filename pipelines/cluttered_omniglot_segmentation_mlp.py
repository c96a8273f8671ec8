"""pipelines/cluttered_omniglot_segmentation.py with hallucinated foreground features: Wang et al.'s MLP generator
makes 5 synthetic features from each scene's pooled reference features (noise of 64 numbers), weighing 1 in all
beside the real one, and the foreground prototype is their weighted mean; the generator trains with the segmenter,
by the segmentation loss alone, from the same seed and on the same scenes."""
from hallucinate.segmentation import SegmentationConfig, run_segmentation

CONFIG = SegmentationConfig(clutter=4, same_drawer=True, k_shot=1, width=32, steps=6000, batch_size=16, lr=3e-3,
                            hallucinator="mlp", n_synthetic=5, synthetic_mass=1.0)


def run(config: SegmentationConfig = CONFIG, **options) -> dict:
    return run_segmentation(config, **options)
