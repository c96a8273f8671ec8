"""hallucinate: few-shot image classification with data hallucination."""
from pathlib import Path

__version__ = "0.1.0"


def load(checkpoint: str | Path, *, device: str | None = None):
    """The trained few-shot classifier in ``checkpoint`` (best-on-validation weights), in eval mode; for a
    segmentation checkpoint, the `PrototypeSegmenter` (``model(support_images, support_masks, query_images) ->
    logits [Q, 2, H, W]``, ``transform``, ``set_hallucination``).

    It keeps the learner contract ``model(support, support_labels, query) -> logits``; ``model.transform`` turns a
    PIL image into the tensor it expects; ``model.set_hallucination(False)`` switches hallucination off.
    """
    from .device import resolve_device
    from .model import build_classifier
    from .training import CheckpointError, EpisodicConfig, load_checkpoint

    state = load_checkpoint(checkpoint)
    if state.get("task") == "segmentation":
        from .segmentation.model import load_segmenter

        return load_segmenter(state, checkpoint).to(resolve_device(device)).eval()
    config = EpisodicConfig.from_saved(state["config"])
    model = build_classifier(config)
    missing, unexpected = model.load_state_dict(state["best_model"], strict=False)
    missing = [name for name in missing if not name.startswith("hallucinator.critic.")]  # `export` drops the critic
    if missing or unexpected:
        raise CheckpointError(f"{checkpoint} does not match the model its config describes: missing {missing}, "
                              f"unexpected {unexpected}")
    model.config = config
    return model.to(resolve_device(device)).eval()
