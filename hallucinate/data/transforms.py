"""Training augmentations (albumentations, chosen per pipeline by name) and the transform a trained model expects."""
import numpy as np
import torch
from PIL import Image


def _omniglot_affine():
    import albumentations as A

    return A.Compose([A.Affine(translate_percent=(-0.1, 0.1), rotate=(-10, 10), scale=(0.9, 1.1), p=0.8)])


def _cifar_crop_flip():
    import albumentations as A

    return A.Compose([A.PadIfNeeded(40, 40, border_mode=0), A.RandomCrop(32, 32), A.HorizontalFlip()])


AUGMENTATIONS = {"none": None, "omniglot_affine": _omniglot_affine, "cifar_crop_flip": _cifar_crop_flip}


def build_augmentation(name: str):
    if name not in AUGMENTATIONS:
        raise KeyError(f"unknown augmentation {name!r}; valid names: {', '.join(AUGMENTATIONS)}")
    return AUGMENTATIONS[name]() if AUGMENTATIONS[name] else None


class ImageTransform:
    """PIL image -> float tensor ``[C, H, W]`` in [0, 1], prepared exactly as the store prepared training images."""

    def __init__(self, prepare, image_size: int):
        self.prepare, self.image_size = prepare, image_size

    def __call__(self, image: Image.Image) -> torch.Tensor:
        array = np.ascontiguousarray(self.prepare(image, self.image_size))
        return torch.from_numpy(array).permute(2, 0, 1).float().div_(255)
