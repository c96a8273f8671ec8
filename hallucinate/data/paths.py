"""Where data sets are read from and where derived stores and feature banks are written."""
import os
from pathlib import Path


def data_root(explicit: str | os.PathLike | None = None) -> Path:
    """``--data-root``, else ``$HALLUCINATE_DATA``, else ``./data``."""
    return Path(explicit or os.environ.get("HALLUCINATE_DATA") or "data")


def cache_dir(explicit: str | os.PathLike | None = None) -> Path:
    """``--cache-dir``, else ``$HALLUCINATE_CACHE``, else the user's cache directory."""
    if explicit or os.environ.get("HALLUCINATE_CACHE"):
        return Path(explicit or os.environ["HALLUCINATE_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "hallucinate"
