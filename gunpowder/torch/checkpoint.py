"""Checkpoints of a training run: written atomically, found and loaded to resume.

A checkpoint is `{basename}_checkpoint_{iteration}`, a `torch.save`d dict with
`model_state_dict`, `optimizer_state_dict` (the keys gunpowder 1.x used) and `iteration`.
"""

from __future__ import annotations

import os
import re
import socket
import tempfile
import time
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
    """The (iteration, path) of the newest checkpoint of `basename`, or None.

    Called when a run starts, so it also removes the temporaries that a killed run left
    behind (`remove_stale_temporaries`).
    """
    remove_stale_temporaries(basename)
    found = list_checkpoints(basename)
    return found[-1] if found else None


# A temporary written by `save_atomic`: ".{name}.{host}-{pid}.{random}.tmp"; older versions
# wrote ".{name}.{random}.tmp" (no owner).
_TEMPORARY = r"\.(?P<name>.+_checkpoint_\d+)\.(?:(?P<host>[^.]*)-(?P<pid>\d+)\.)?[^.]+\.tmp$"

# A temporary of another host, or without owner, is stale once it has not been written to
# for this long (a writer in progress keeps changing it).
_STALE_SECONDS = 600.0


def _host() -> str:
    return socket.gethostname().replace(".", "_").replace("-", "_") or "host"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def remove_stale_temporaries(basename: str | os.PathLike) -> list[Path]:
    """Remove the checkpoint temporaries of `basename` whose writer is gone; the removed.

    A process killed while `save_atomic` writes leaves its temporary file. One written on
    this host is stale when its process no longer runs; one of another host (or of an older
    version, without owner) when it has not changed for ten minutes.
    """
    base = Path(os.fspath(basename))
    folder = base.parent if str(base.parent) else Path(".")
    if not folder.is_dir():
        return []
    pattern = re.compile(_TEMPORARY)
    host, me, now = _host(), os.getpid(), time.time()
    removed = []
    for entry in folder.iterdir():
        match = pattern.match(entry.name)
        if not match or not re.fullmatch(re.escape(base.name) + r"_checkpoint_\d+", match["name"]):
            continue
        try:
            if match["pid"] is not None and match["host"] == host:
                pid = int(match["pid"])
                stale = pid != me and not _alive(pid)
            else:
                stale = now - entry.stat().st_mtime > _STALE_SECONDS
            if stale:
                entry.unlink()
                removed.append(entry)
        except FileNotFoundError:  # removed meanwhile (another process starting)
            continue
    return removed


def save_atomic(obj: Any, path: str | os.PathLike) -> Path:
    """`torch.save(obj)` to a temporary file next to `path`, then rename it into place.

    A crash mid-write leaves the previous checkpoint intact and no half-written file; a
    kill leaves the temporary, which the next run's `latest_checkpoint` removes.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    owner = f"{_host()}-{os.getpid()}"  # so that a later run can tell when it is stale
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{owner}.", suffix=".tmp", dir=path.parent)
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
