"""Continuing a run (`--resume`): which checkpoint it names, and the checks that it would continue
exactly, made before any data is built."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from models.checkpoint import load_checkpoint
from train.rundir import read_results


def resume_checkpoint(args: argparse.Namespace) -> Path:
    if args.resume == "latest":
        if args.out is None:
            raise ValueError("--resume latest needs --out RUN_DIR (the run to continue)")
        path = Path(args.out) / "checkpoints" / "latest.pt"
    else:
        path = Path(args.resume)
    if not path.is_file():
        hint = ""
        if args.resume == "latest" and path.parent.is_dir():
            hint = f" (it stopped before its first checkpoint: run it again with another --out, or delete {args.out})"
        raise FileNotFoundError(f"no checkpoint to resume from at {path}{hint}")
    return path


def check_resume(args: argparse.Namespace, params: dict, params_path: Path, checkpoint: Path) -> None:
    """Refuse a resume whose position would mean other batches, or whose files are damaged.

    Batch k of epoch e is a slice of the epoch's order of `batch_size *
    world_size` graphs, cut into one share per process: another process count or
    batch size would continue from other graphs. The checkpoint must be
    readable and results.jsonl must be JSON lines (a torn last line is allowed;
    the run drops it).
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if params.get("world_size", world_size) != world_size:
        raise ValueError(
            f"{params_path}: the run was trained by {params['world_size']} process(es) and this resume has "
            f"{world_size}; batch k of an epoch means other graphs in another world size: resume it with "
            f"{params['world_size']} process(es) (torchrun --nproc-per-node {params['world_size']})"
        )
    if params.get("batch_size", args.batch_size) != args.batch_size:
        raise ValueError(
            f"{params_path}: the run was trained with batch size {params['batch_size']} per process and this "
            f"resume asks for --batch-size {args.batch_size}; batch k of an epoch means other graphs with "
            "another batch size: leave --batch-size out to resume"
        )
    try:  # a damaged file is named here, before any data is built
        load_checkpoint(checkpoint, mmap=True)
    except ValueError as error:
        others = sorted(p.name for p in checkpoint.parent.glob("*.pt") if p != checkpoint)
        hint = f"; the run's other checkpoints: {', '.join(others)} (resume one with --resume PATH)" if others else ""
        raise ValueError(f"{error}{hint}") from None
    results = args.out / "results.jsonl"
    if results.is_file():
        read_results(results)
