"""Few-shot detection on Omniglot-Det with TFA (Wang et al., ICML 2020), its first stage: Faster R-CNN with a Conv-4
of 64 channels (stride 8) on canvases of the 100 base classes. First 2000 steps (Adam 1e-3) teach backbone, box head
and classifier to name the character in each ground-truth box, as a detector starts from a classifier; then 3000
steps train the whole detector: SGD 0.02 with momentum, 8 canvases a step, a 100-step warm-up and a tenfold decay
at 80% of the run. The second stage, fine-tuning the last layer on each K-shot set with a cosine classifier, is what
`hallucinate eval CHECKPOINT --k-shot K` runs, with this file's fine-tuning settings."""
from hallucinate.detection import DetectionConfig, run_detection

CONFIG = DetectionConfig(width=64, pretrain_steps=2000, steps=3000, batch_size=8, lr=0.02, warmup_steps=100,
                         lr_decay_at=0.8, predictor="cosine", finetune="last_layer",
                         # hallucinated RoI features, when switched on (set_hallucination(True) after naming
                         # hallucinator="calibration"): chosen on validation canvases of the train drawers at K = 1
                         # over 3 K-shot seeds (benchmarks/detection_hallucination_recipe.py), never on the test set
                         n_synthetic=5, synthetic_mass=2.0)


def run(config: DetectionConfig = CONFIG, **options) -> dict:
    return run_detection(config, **options)
