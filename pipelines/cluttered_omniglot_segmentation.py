"""Few-shot segmentation on Cluttered Omniglot (Michaelis et al. 2018) at 4 characters per scene, the paper's
instance task (each reference is the target's own drawing): a Conv-4 that keeps a 24x24 feature map, foreground and
background prototypes by masked average pooling of the reference, cosine similarity x 20 per scene pixel (PANet's
matching, no decoder); Adam 1e-3, 16 scenes a step; the best weights on val-one-shot are kept."""
from hallucinate.segmentation import SegmentationConfig, run_segmentation

CONFIG = SegmentationConfig(clutter=4, same_drawer=True, k_shot=1, steps=3000, batch_size=16, lr=1e-3)


def run(config: SegmentationConfig = CONFIG, **options) -> dict:
    return run_segmentation(config, **options)
