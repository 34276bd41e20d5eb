"""Checkpoints of a training run: written atomically, found and loaded to resume.

A checkpoint is `{basename}_checkpoint_{iteration}`, a `torch.save`d dict with
`model_state_dict`, `optimizer_state_dict` (the keys gunpowder 1.x used) and `iteration`.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any

import torch


def checkpoint_path(basename: str | os.PathLike, iteration: int) -> Path:
    return Path(f"{os.fspath(basename)}_checkpoint_{int(iteration)}")


def list_checkpoints(basename: str | os.PathLike) -> list[tuple[int, Path]]:
    """All (iteration, path) checkpoints of `basename`, oldest first."""
    base = Path(os.fspath(basename))
    folder = base.parent if str(base.parent) else Path(".")
    if not folder.is_dir():
        return []
    pattern = re.compile(re.escape(base.name) + r"_checkpoint_(\d+)$")
    found = []
    for entry in folder.iterdir():
        match = pattern.match(entry.name)
        if match and entry.is_file():
            found.append((int(match.group(1)), entry))
    return sorted(found)


def latest_checkpoint(basename: str | os.PathLike) -> tuple[int, Path] | None:
    """The (iteration, path) of the newest checkpoint of `basename`, or None."""
    found = list_checkpoints(basename)
    return found[-1] if found else None


def save_atomic(obj: Any, path: str | os.PathLike) -> Path:
    """`torch.save(obj)` to a temporary file next to `path`, then rename it into place.

    A crash mid-write leaves the previous checkpoint intact and no half-written file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private; keep the usual mode
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def load_checkpoint(path: str | os.PathLike, device: torch.device | str = "cpu") -> dict:
    """Load a checkpoint (or a bare model state dict) onto `device`."""
    state = torch.load(Path(path), map_location=device, weights_only=True)
    if not isinstance(state, dict):
        raise ValueError(f"{path} is not a checkpoint: expected a dict, got {type(state).__name__}")
    return state


def model_state(checkpoint: dict) -> dict:
    """The model's state dict inside a checkpoint (which may itself be a bare state dict)."""
    return checkpoint.get("model_state_dict", checkpoint)
