"""The run directory of DESIGN.md: params.json, out.log, results.jsonl, checkpoints/."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import torch

LOG = logging.getLogger("semgraph")


class RunDir:
    """Create (never overwrite) a run directory and write into it.

    Args:
        path: the directory; it must not exist or be empty.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if self.path.exists() and any(self.path.iterdir()):
            raise FileExistsError(f"run directory {self.path} already exists and is not empty; choose another --out")
        (self.path / "checkpoints").mkdir(parents=True, exist_ok=True)
        self._attach_log()

    def _attach_log(self) -> None:
        LOG.setLevel(logging.INFO)
        handler = logging.FileHandler(self.path / "out.log")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        LOG.addHandler(handler)
        self._handler = handler

    def close(self) -> None:
        LOG.removeHandler(self._handler)
        self._handler.close()

    def write_params(self, params: dict) -> None:
        (self.path / "params.json").write_text(json.dumps(params, indent=2, sort_keys=True) + "\n")

    def append_result(self, record: dict) -> None:
        with open(self.path / "results.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")

    def save_checkpoint(self, state: dict, epoch: int) -> Path:
        """Write checkpoints/epoch_N.pt and atomically replace checkpoints/latest.pt."""
        folder = self.path / "checkpoints"
        numbered = folder / f"epoch_{epoch}.pt"
        _atomic_save(state, numbered)
        _atomic_save(state, folder / "latest.pt")
        return numbered


def _atomic_save(state: dict, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)
