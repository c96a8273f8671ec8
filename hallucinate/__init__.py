"""hallucinate: few-shot image classification with data hallucination."""
from pathlib import Path

__version__ = "0.1.0"


def load(checkpoint: str | Path, *, device: str | None = None, data_root: str | Path | None = None,
         cache_dir: str | Path | None = None):
    """The trained few-shot classifier in ``checkpoint`` (best-on-validation weights), in eval mode; for a
    segmentation checkpoint, the `PrototypeSegmenter` (``model(support_images, support_masks, query_images) ->
    logits [Q, 2, H, W]``, ``transform``, ``set_hallucination``); for a detection checkpoint, the
    `FewShotDetector` (``model.adapt(support_images, support_targets)`` -> a detector of those classes, ``model(images)
    -> [{"boxes", "labels", "scores"}]``, ``transform``); for an Attention-RPN checkpoint, its
    `AttentionRPNDetector` (the same two calls: ``adapt`` keeps the support's class prototypes, no weight changes).

    It keeps the learner contract ``model(support, support_labels, query) -> logits``; ``model.transform`` turns a
    PIL image into the tensor it expects; ``model.set_hallucination(False)`` switches hallucination off.

    A hallucinator whose base-class statistics were left out of the checkpoint (``calibration_in_checkpoint=False``)
    gets them again from the train split's features, read from ``data_root`` (else ``$HALLUCINATE_DATA``, else
    ``./data``); the features are cached under ``cache_dir``.
    """
    from .device import resolve_device
    from .model import build_classifier, fit_base_statistics
    from .training import CheckpointError, EpisodicConfig, load_checkpoint

    state = load_checkpoint(checkpoint)
    if state.get("task") == "segmentation":
        from .segmentation.model import load_segmenter

        return load_segmenter(state, checkpoint).to(resolve_device(device)).eval()
    if state.get("task") == "detection_attention_rpn":
        from .detection.attention_rpn import load_attention_rpn

        return load_attention_rpn(state, checkpoint).to(resolve_device(device)).eval()
    if state.get("task") == "detection":
        from .detection.detector import load_detector

        return load_detector(state, checkpoint).to(resolve_device(device)).eval()
    config = EpisodicConfig.from_saved(state["config"])
    model = build_classifier(config)
    missing, unexpected = model.load_state_dict(state["best_model"], strict=False)
    missing = [name for name in missing if not name.startswith("hallucinator.critic.")]  # `export` drops the critic
    if missing or unexpected:
        raise CheckpointError(f"{checkpoint} does not match the model its config describes: missing {missing}, "
                              f"unexpected {unexpected}")
    model.config = config
    if hasattr(model.learner, "precision"):  # as model(...) embeds: in float32 (`evaluate` chooses its own)
        model.learner.precision = "fp32"
    model = model.to(resolve_device(device)).eval()
    if model.hallucinator is not None and model.hallucinator.needs_base_statistics:
        from .data import open_store
        from .data.paths import cache_dir as resolve_cache

        store = open_store(config.dataset, image_size=config.image_size, root=data_root, cache=cache_dir)
        fit_base_statistics(model, store.split("train"), precision=config.precision, cache=resolve_cache(cache_dir))
    return model
