"""The run directory: params.json, out.log, results.jsonl, checkpoints/.

Every file but out.log and results.jsonl is written whole or not at all (a
temporary file of a unique name, then `os.replace`). results.jsonl is appended
one line per evaluation, before that epoch's checkpoint: the checkpoint is the
commit point, and a resumed run drops the lines past its checkpoint's step
(and a last line torn by a kill) and writes them again.
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path

import torch

from data.atomic import atomic_path, fault_point, write_text_atomic

LOG = logging.getLogger("semgraph")

STEP_FILE = re.compile(r"step_(\d+)\.pt")


class RunDir:
    """Create (never overwrite) a run directory and write into it.

    Args:
        path: the directory; it must not exist or be empty, unless `resume`.
        resume: continue writing into an existing run.
        keep_step_checkpoints: how many `step_N.pt` files to keep (the newest); 0 keeps all.
    """

    def __init__(self, path: str | Path, resume: bool = False, keep_step_checkpoints: int = 0) -> None:
        self.path = Path(path)
        self.keep_step_checkpoints = keep_step_checkpoints
        if not resume and self.path.exists() and any(self.path.iterdir()):
            raise FileExistsError(
                f"run directory {self.path} already exists and is not empty; choose another --out or --resume latest"
            )
        (self.path / "checkpoints").mkdir(parents=True, exist_ok=True)
        self._attach_log()
        if resume:  # temporary files of writes a kill interrupted; only this process writes this run
            for stale in [*self.path.glob(".*.tmp"), *(self.path / "checkpoints").glob(".*.tmp")]:
                stale.unlink(missing_ok=True)
                LOG.info("removed %s, left by an interrupted write", stale)

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
        write_text_atomic(self.path / "params.json", json.dumps(params, indent=2, sort_keys=True) + "\n")

    def append_result(self, record: dict) -> None:
        with open(self.path / "results.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())  # on disk before the checkpoint that commits it

    def truncate_results(self, step: int) -> int:
        """Drop results.jsonl records past `step` (a resumed run writes them again) and a torn
        last line; return how many records were dropped."""
        path = self.path / "results.jsonl"
        if not path.exists():
            return 0
        records, torn = read_results(path)
        kept = [record for record in records if record.get("step", 0) <= step]
        if torn:
            LOG.warning("%s: dropped its last line, torn by an interrupted write: %r", path, torn[:80])
        unterminated = not path.read_bytes().endswith(b"\n")  # the next line must not run on from it
        if torn or len(kept) != len(records) or (records and unterminated):
            write_text_atomic(path, "".join(json.dumps(record) + "\n" for record in kept))
        return len(records) - len(kept)

    def save_checkpoint(self, state: dict, name: str) -> Path:
        """Write checkpoints/NAME.pt (epoch_N, step_N), atomically replace checkpoints/latest.pt
        with the same state, then delete all but the newest `keep_step_checkpoints` step files."""
        folder = self.path / "checkpoints"
        numbered = folder / f"{name}.pt"
        _atomic_save(state, numbered)
        _atomic_save(state, folder / "latest.pt")
        if STEP_FILE.fullmatch(numbered.name):
            self._prune_step_checkpoints(numbered)
        return numbered

    def _prune_step_checkpoints(self, newest: Path) -> None:
        """Keep the newest step files up to `newest` (the one latest.pt was copied from); files of
        later steps (from before a resume to an earlier checkpoint) are left alone."""
        if not self.keep_step_checkpoints:
            return
        step = int(STEP_FILE.fullmatch(newest.name).group(1))
        older = sorted(
            (int(match.group(1)), path)
            for path in newest.parent.glob("step_*.pt")
            if (match := STEP_FILE.fullmatch(path.name)) and int(match.group(1)) <= step
        )
        for _, path in older[: -self.keep_step_checkpoints]:
            if path != newest:
                path.unlink(missing_ok=True)


def read_results(path: Path) -> tuple[list[dict], str]:
    """The records of a results.jsonl and its torn last line ('' when none).

    A last line with no newline that is not JSON was torn by a kill and is
    returned apart; any other line that is not a JSON object is an error
    naming the file and the line."""
    text = path.read_text()
    lines = text.split("\n")
    torn = ""
    if lines and lines[-1]:  # no newline at the end: the last write may have been cut short
        try:
            json.loads(lines[-1])
        except ValueError:
            torn = lines.pop()
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as error:
            raise ValueError(f"{path}: line {number} is not a JSON record ({error})") from None
        if not isinstance(record, dict):
            raise ValueError(f"{path}: line {number} is not a JSON object")
        records.append(record)
    return records, torn


def _atomic_save(state: dict, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
        fault_point("checkpoint_write")
