"""Files that appear whole or not at all, and the fault hook the tests use to kill a process mid-write.

The files a run or a cache replaces (checkpoints, params.json, cache shards and
their sidecars, k-means centroids) go through `atomic_path`: the bytes go to a
temporary file of a unique name in the target folder, are flushed to disk, and
the file then replaces the target in one `os.replace`. A reader sees the old
file or the new one, never half of one, and two processes writing the same
file at once each write their own temporary file (the last replace wins, and
what it leaves is one writer's whole file).

`fault_point(name)` is a test-only hook: with SEMGRAPH_FAULT=NAME:N in the
environment the process dies (`os._exit(137)`, as after kill -9) the N-th time
it reaches the point NAME. The points: `step` (after a step's backward pass,
before the optimiser step), `checkpoint_write` and `shard_write` (temporary
file written, not yet moved into place), `evaluate` (an epoch trained, its
validation pass begun, nothing of it written). Unset, it does nothing.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_FAULT = os.environ.get("SEMGRAPH_FAULT", "")
_FAULT_COUNTS: dict[str, int] = {}
_UMASK = os.umask(0)
os.umask(_UMASK)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A unique temporary path beside `path` to write; it replaces `path` when the block ends
    without error and is removed otherwise."""
    path = Path(path)
    handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    tmp = Path(name)
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes it private; the target gets the usual mode
        yield tmp
        with open(tmp, "rb+") as written:
            os.fsync(written.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def fault_point(name: str) -> None:
    """Die here, as after kill -9, when SEMGRAPH_FAULT names this point and count (tests only)."""
    if not _FAULT:
        return
    point, _, count = _FAULT.partition(":")
    if point != name:
        return
    _FAULT_COUNTS[name] = _FAULT_COUNTS.get(name, 0) + 1
    if _FAULT_COUNTS[name] == int(count or 1):
        os._exit(137)
