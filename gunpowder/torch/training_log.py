"""Training logs: always a CSV of (iteration, loss, seconds); TensorBoard when it is installed."""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

CSV_HEADER = ("iteration", "loss", "seconds")


class TrainingLog:
    """Appends one CSV row per logged iteration and mirrors the loss to TensorBoard.

    Resuming appends to the existing CSV, so the file holds the whole run.
    """

    def __init__(
        self, csv_path: str | os.PathLike, tensorboard_dir: str | os.PathLike | None
    ) -> None:
        self.csv_path = Path(csv_path)
        self.csv_path.parent.mkdir(parents=True, exist_ok=True)
        new = not self.csv_path.exists() or self.csv_path.stat().st_size == 0
        self._file = open(self.csv_path, "a", newline="")  # noqa: SIM115 (closed in close())
        self._csv = csv.writer(self._file)
        if new:
            self._csv.writerow(CSV_HEADER)
            self._file.flush()
        self._tb: Any = None
        if tensorboard_dir is not None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard is optional
                pass
            else:
                self._tb = SummaryWriter(os.fspath(tensorboard_dir))

    @property
    def tensorboard(self) -> bool:
        return self._tb is not None

    def log(self, iteration: int, loss: float, seconds: float) -> None:
        self._csv.writerow((int(iteration), repr(float(loss)), f"{seconds:.6f}"))
        self._file.flush()
        if self._tb is not None:
            self._tb.add_scalar("loss", float(loss), int(iteration))

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()
        if self._tb is not None:
            self._tb.close()
            self._tb = None
