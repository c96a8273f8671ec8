"""Few-shot segmentation on Cluttered Omniglot (Michaelis et al. 2018) at 4 characters per scene, the paper's
instance task (each reference is the target's own drawing): a Conv-4 of 32 channels that keeps a 24x24 feature map,
foreground and background prototypes by masked average pooling of the reference, cosine similarity x 20 per scene
pixel, and a light decoder on the upsampled similarity maps and the scene; Adam 3e-3, 16 scenes a step, 6000 steps
(18 min on 2 cores); the best weights on 500 val-one-shot scenes (every 500 steps) are kept. Width 32 trains about
twice as fast as 64 here; it and the learning rate are what the CPU budget allowed, not a search."""
from hallucinate.segmentation import SegmentationConfig, run_segmentation

CONFIG = SegmentationConfig(clutter=4, same_drawer=True, k_shot=1, width=32, steps=6000, batch_size=16, lr=3e-3)


def run(config: SegmentationConfig = CONFIG, **options) -> dict:
    return run_segmentation(config, **options)
