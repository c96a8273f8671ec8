"""What the speed benchmarks share to run easyfsl, the peer, on the data hallucinate uses: Omniglot's PNGs
extracted as easyfsl's folder dataset reads them, that dataset, and easyfsl's task sampler and loader."""
import zipfile
from pathlib import Path

import numpy as np
import torch
from easyfsl.samplers import TaskSampler
from PIL import Image

PEER_WORKERS = 2


def extract_omniglot_pngs(omniglot: Path, split_lines: dict[str, list[str]], png_root: Path) -> None:
    """Write the PNGs of the characters the splits use under ``png_root/<alphabet>/<character>/`` (rotations are
    applied when an image is read, since the release holds each character once)."""
    characters = {line.rsplit("/", 1)[0] for lines in split_lines.values() for line in lines}
    for archive_name in ("images_background.zip", "images_evaluation.zip"):
        with zipfile.ZipFile(omniglot / archive_name) as archive:
            for member in archive.infolist():
                parts = member.filename.split("/")
                if len(parts) == 4 and parts[3].endswith(".png") and f"{parts[1]}/{parts[2]}" in characters:
                    target = png_root / parts[1] / parts[2] / parts[3]
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(archive.read(member))


class OmniglotFolder(torch.utils.data.Dataset):
    """A Vinyals split (character x rotation classes) read from PNG files, one file opened per item, as an
    easyfsl user's folder dataset does; images prepared like hallucinate's store (strokes bright, 28x28 Lanczos)."""

    def __init__(self, root: Path, lines: list[str], image_size: int = 28):
        self.items, self.labels, self.image_size = [], [], image_size
        for label, line in enumerate(lines):
            character, rotation = line.rsplit("/", 1)
            for path in sorted((root / character).glob("*.png")):
                self.items.append((path, int(rotation.removeprefix("rot"))))
                self.labels.append(label)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        path, angle = self.items[index]
        with Image.open(path) as image:
            image = image.convert("L").rotate(angle).resize((self.image_size, self.image_size),
                                                            Image.Resampling.LANCZOS)
        array = 255 - np.asarray(image, dtype=np.uint8)
        return torch.from_numpy(array).float().div_(255).unsqueeze(0), self.labels[index]

    def get_labels(self) -> list[int]:
        return self.labels


def task_sampler(dataset, n_way: int, k_shot: int, q_query: int, tasks: int) -> TaskSampler:
    # easyfsl 1.5.0's TaskSampler calls Sampler.__init__(data_source=None), which torch >= 2.2 rejects.
    original = torch.utils.data.Sampler.__init__
    torch.utils.data.Sampler.__init__ = lambda self, data_source=None: None
    try:
        return TaskSampler(dataset, n_way=n_way, n_shot=k_shot, n_query=q_query, n_tasks=tasks)
    finally:
        torch.utils.data.Sampler.__init__ = original


def task_loader(dataset, sampler: TaskSampler):
    return torch.utils.data.DataLoader(dataset, batch_sampler=sampler, num_workers=PEER_WORKERS,
                                       collate_fn=sampler.episodic_collate_fn)
