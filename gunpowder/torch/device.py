"""Pick the torch device: CUDA when present, else CPU; the 1.x spelling `use_gpu=N` works too."""

from __future__ import annotations

import warnings

import torch


def resolve_device(
    device: str | torch.device | None = None, use_gpu: int | None = None
) -> torch.device:
    """`device` if given; `use_gpu=N` means "cuda:N"; otherwise CUDA when available, else CPU.

    A CUDA device asked for on a machine without CUDA falls back to the CPU with a warning,
    so scripts written for a GPU still run (slowly) on a laptop.
    """
    if device is not None and use_gpu is not None:
        raise ValueError(f"give either device ({device!r}) or use_gpu ({use_gpu!r}), not both")
    if use_gpu is not None:
        device = f"cuda:{int(use_gpu)}"
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        warnings.warn(
            f"{device} was asked for but CUDA is not available: using the CPU", stacklevel=3
        )
        return torch.device("cpu")
    return device
