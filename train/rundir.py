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
        path: the directory; it must not exist or be empty, unless `resume`.
        resume: continue writing into an existing run.
    """

    def __init__(self, path: str | Path, resume: bool = False) -> None:
        self.path = Path(path)
        if not resume and self.path.exists() and any(self.path.iterdir()):
            raise FileExistsError(
                f"run directory {self.path} already exists and is not empty; choose another --out or --resume latest"
            )
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

    def truncate_results(self, step: int) -> int:
        """Drop results.jsonl records past `step` (a resumed run writes them again); return how many."""
        path = self.path / "results.jsonl"
        if not path.exists():
            return 0
        lines = [line for line in path.read_text().splitlines() if line.strip()]
        kept = [line for line in lines if json.loads(line).get("step", 0) <= step]
        if len(kept) != len(lines):
            tmp = path.with_suffix(".jsonl.tmp")
            tmp.write_text("".join(line + "\n" for line in kept))
            os.replace(tmp, path)
        return len(lines) - len(kept)

    def save_checkpoint(self, state: dict, name: str) -> Path:
        """Write checkpoints/NAME.pt (epoch_N, step_N) and atomically replace checkpoints/latest.pt."""
        folder = self.path / "checkpoints"
        numbered = folder / f"{name}.pt"
        _atomic_save(state, numbered)
        _atomic_save(state, folder / "latest.pt")
        return numbered


def _atomic_save(state: dict, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)
