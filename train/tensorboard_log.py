"""The run in TensorBoard (`--report-to tensorboard`): every number of each epoch's record."""

from __future__ import annotations

from pathlib import Path


def tensorboard_writer(path: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise SystemExit("--report-to tensorboard needs the tensorboard package: pip install tensorboard") from None
    return SummaryWriter(str(path / "tensorboard"))


def write_record(writer, record: dict) -> None:
    """Each float of an epoch's record as a scalar at the record's step ('@' written '_at_')."""
    for key, value in record.items():
        if isinstance(value, float):
            writer.add_scalar(key.replace("@", "_at_"), value, record["step"])
    writer.flush()
