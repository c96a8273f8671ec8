from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .config import EpisodicConfig, override
from .episodic import train_episodic

__all__ = ["CheckpointError", "EpisodicConfig", "load_checkpoint", "override", "save_checkpoint", "train_episodic"]
