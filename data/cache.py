"""The graph cache: build graphs once, in parallel, and never use a stale one.

A cache entry is a folder named by a hash of everything the graphs depend on
(source file fingerprints, token source, featurizer, graph type, schema
version) and by the bytes of the code that makes them: the builder's module
and every project module it imports, found by reading their imports. Graphs
are built in shards by worker processes; each shard is written atomically as
a `GraphStore` file followed by a small JSON sidecar holding its SHA-256, its
count and the items it skipped. A shard without a sidecar, or whose bytes no
longer match it, is rebuilt, never loaded, so an interrupted build resumes
where it stopped and a corrupt file heals itself. Two processes opening one
entry at once take turns (`build_lock`): the second reuses the shards the
first built.
"""

from __future__ import annotations

import ast
import fcntl
import functools
import hashlib
import json
import logging
import multiprocessing
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch_geometric.data import HeteroData
from tqdm.auto import tqdm

from data.atomic import atomic_path, fault_point, write_text_atomic
from data.mmap_store import consolidate, is_consolidated, load_mmap
from data.store import GraphStore
from graphs.schema import SCHEMA_VERSION

LOG = logging.getLogger("semgraph")


def default_cache_dir() -> Path:
    """$SEMGRAPH_CACHE, else ~/.cache/semgraph/graphs."""
    return Path(os.environ.get("SEMGRAPH_CACHE", Path.home() / ".cache" / "semgraph" / "graphs"))


class BadItem(Exception):
    """An input item that cannot become a graph (unreadable image, broken annotation)."""


@dataclass
class BuildReport:
    built: int
    skipped: list[dict]
    reused_shards: int
    rebuilt_shards: int


class GraphBuilder:
    """What a cache builds: `len(builder)` items, item i -> (graph with captions, name).

    Subclasses must be picklable (they travel to worker processes) and must
    describe everything their graphs depend on in `fingerprint()`.
    """

    def __len__(self) -> int:
        raise NotImplementedError

    def fingerprint(self) -> dict:
        raise NotImplementedError

    def build(self, index: int) -> tuple[HeteroData, str]:
        raise NotImplementedError

    def image_and_masks(self, index: int) -> tuple[np.ndarray, np.ndarray | None]:
        """The image of item `index` and its object masks (for pictures, not for the cache)."""
        raise NotImplementedError

    def image_of(self, index: int) -> np.ndarray | None:
        """The image item `index` will featurize, read ahead so that a backbone featurizer sees
        several at once (`build_items`); None where a builder has no such image to hand."""
        return None


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file's bytes; a missing file is an error naming it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def folder_digest(path: str | Path) -> str:
    """A digest of a folder's listing (names, sizes, modification times), not its bytes."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path} is not a folder")
    digest = hashlib.sha256()
    for entry in sorted(os.scandir(path), key=lambda e: e.name):
        if entry.is_file():
            stat = entry.stat()
            digest.update(f"{entry.name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


PROJECT_ROOT = Path(__file__).resolve().parents[1]


def _module_file(name: str, root: Path) -> Path | None:
    """The file of project module `name` under `root` (None for other packages)."""
    base = root.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _imported_names(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside a function (lazy imports count too)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)  # `from pkg import module`
    return names


def project_modules(files: Iterable[Path], root: Path = PROJECT_ROOT) -> list[Path]:
    """`files` and every project file they import, directly or not: the code behind a graph."""
    todo, seen = [Path(f).resolve() for f in files], set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in _imported_names(path):
            found = _module_file(name, root)
            if found is not None:
                todo.append(found.resolve())
    return sorted(seen)


def builder_files(builder: GraphBuilder) -> list[Path]:
    """The project files that shape a builder's graphs: its classes' modules and all they import."""
    modules = [sys.modules.get(cls.__module__) for cls in type(builder).__mro__ if cls is not object]
    return project_modules({Path(m.__file__) for m in modules if getattr(m, "__file__", None)})


@functools.cache
def _digest_of(files: tuple[tuple[Path, int, int], ...], root: Path) -> str:
    digest = hashlib.sha256()
    for path, _, _ in files:
        name = path.relative_to(root) if path.is_relative_to(root) else path.name
        digest.update(str(name).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def code_digest(files: Iterable[Path], root: Path = PROJECT_ROOT) -> str:
    """A digest of these files' bytes (and names): any edit to one of them gives another key."""
    paths = sorted(Path(f).resolve() for f in files)
    stamped = tuple((path, path.stat().st_mtime_ns, path.stat().st_size) for path in paths)  # read each once
    return _digest_of(stamped, root.resolve())


def cache_key(fingerprint: dict, code: str) -> str:
    """The folder name of a cache entry: what the graphs depend on, the schema and the code (`code_digest`)."""
    keyed = {"schema_version": SCHEMA_VERSION, "code": code, **fingerprint}
    text = json.dumps(keyed, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


_WORKER_BUILDER: GraphBuilder | None = None


def _init_worker(builder: GraphBuilder) -> None:
    global _WORKER_BUILDER
    torch.set_num_threads(1)
    _WORKER_BUILDER = builder


def _ready(_: int) -> int:
    return 0


def build_shard_jobs(
    builder: GraphBuilder,
    jobs: list[tuple[int, int, int, str, str]],
    on_bad: str,
    workers: int,
    advance: Callable[[int], None],
) -> float:
    """Build the shards `jobs` ((shard, first, stop, folder, on_bad) each), in `workers`
    spawned processes when there are several, else here; `advance(graphs)` after each shard.

    Returns the seconds spent starting the workers (0 without them), so a caller can tell
    start-up from building."""
    if workers > 0 and len(jobs) > 1:
        began = time.perf_counter()
        context = multiprocessing.get_context("spawn")
        with context.Pool(workers, initializer=_init_worker, initargs=(builder,)) as pool:
            pool.map(_ready, range(workers), chunksize=1)  # every worker started and holding the builder
            started = time.perf_counter() - began
            for _, start, stop in pool.imap_unordered(_build_shard, jobs):
                advance(stop - start)
        return started
    for shard, start, stop, folder, _ in jobs:
        build_shard(builder, shard, start, stop, Path(folder), on_bad)
        advance(stop - start)
    return 0.0


def _build_shard(job: tuple[int, int, int, str, str]) -> tuple[int, int, int]:
    shard, start, stop, folder, on_bad = job
    build_shard(_WORKER_BUILDER, shard, start, stop, Path(folder), on_bad)
    return shard, start, stop


def read_ahead(builder: GraphBuilder, indices: range) -> None:
    """Hand a batching featurizer the images of `indices`, read ahead (one forward pass per
    `batch_size` images instead of one per image); an image that cannot be read is left to
    `build`, which reports it."""
    featurizer = getattr(builder, "featurizer", None)
    if featurizer is None or not getattr(featurizer, "batches", False):
        return
    images = []
    for index in indices:
        try:
            image = builder.image_of(index)
        except (BadItem, OSError, ValueError):
            image = None
        if image is not None:
            images.append(image)
    featurizer.prepare(images)


def build_items(builder: GraphBuilder, indices: range, on_bad: str) -> tuple[list, list[str], list[dict]]:
    """Build items; a `BadItem` raises, or with on_bad='skip' is recorded and passed over. A backbone
    featurizer gets the images of `batch_size` items at a time (`read_ahead`)."""
    graphs, names, skipped = [], [], []
    featurizer = getattr(builder, "featurizer", None)
    step = featurizer.batch_size if getattr(featurizer, "batches", False) else len(indices) or 1
    for first in range(0, len(indices), step):
        group = indices[first : first + step]
        read_ahead(builder, group)
        try:
            for index in group:
                try:
                    graph, name = builder.build(index)
                except BadItem as error:
                    if on_bad != "skip":
                        raise
                    skipped.append({"index": index, "reason": str(error)})
                    continue
                graphs.append(graph)
                names.append(name)
        finally:
            if featurizer is not None and hasattr(featurizer, "release"):
                featurizer.release()
    return graphs, names, skipped


def build_shard(
    builder: GraphBuilder, shard: int, start: int, stop: int, folder: Path, on_bad: str
) -> tuple[int, int, list[dict]]:
    """Build items [start, stop) into shard file `shard`; return (shard, count, skipped)."""
    graphs, names, skipped = build_items(builder, range(start, stop), on_bad)
    with atomic_path(folder / f"shard_{shard:05d}.pt") as tmp:
        GraphStore.from_graphs(graphs, names).save(tmp)
        digest = file_digest(tmp)  # of the bytes written here, whoever else writes the same shard
        fault_point("shard_write")
    sidecar = {"count": len(graphs), "sha256": digest, "start": start, "stop": stop, "skipped": skipped}
    _write_json(folder / f"shard_{shard:05d}.json", sidecar)
    return shard, len(graphs), skipped


def _write_json(path: Path, value: dict) -> None:
    write_text_atomic(path, json.dumps(value, indent=1))


@contextmanager
def build_lock(folder: Path) -> Iterator[None]:
    """Hold the build lock of a cache entry (an flock on `folder/.lock`, freed when the holder dies)."""
    with open(folder / ".lock", "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            LOG.info("waiting for another process building %s", folder)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _valid_shard(folder: Path, shard: int, start: int, stop: int) -> dict | None:
    """The sidecar of a complete, intact shard, else None."""
    sidecar_path, path = folder / f"shard_{shard:05d}.json", folder / f"shard_{shard:05d}.pt"
    try:
        sidecar = json.loads(sidecar_path.read_text())
        if (sidecar["start"], sidecar["stop"]) != (start, stop) or not path.is_file():
            return None
        if file_digest(path) != sidecar["sha256"]:
            LOG.warning("cache shard %s is corrupt (checksum mismatch); rebuilding it", path)
            return None
        return sidecar
    except (OSError, ValueError, KeyError):
        return None


class GraphCache:
    """Build-once storage of a builder's graphs under `root/<key>/`.

    Args:
        root: the cache folder (default ``$SEMGRAPH_CACHE`` or ~/.cache/semgraph/graphs).
        shard_size: graphs per shard file.
    """

    def __init__(self, root: str | Path | None = None, shard_size: int = 512) -> None:
        self.root = Path(root) if root is not None else default_cache_dir()
        self.shard_size = shard_size

    def folder(self, builder: GraphBuilder, fingerprint: dict | None = None) -> Path:
        fingerprint = fingerprint if fingerprint is not None else builder.fingerprint()
        return self.root / cache_key(fingerprint, code_digest(builder_files(builder)))

    def load_or_build(
        self,
        builder: GraphBuilder,
        workers: int = 0,
        on_bad: str = "error",
        progress: bool = True,
        description: str = "building graphs",
        mmap: bool = False,
    ) -> tuple[GraphStore, BuildReport]:
        """Return every graph of `builder`, building the shards that are missing or broken."""
        fingerprint = builder.fingerprint()
        folder = self.folder(builder, fingerprint)
        folder.mkdir(parents=True, exist_ok=True)
        with build_lock(folder):  # a second builder of this entry waits, then reuses the shards
            for stale in folder.glob(".shard_*.tmp"):  # left by a builder that died: none runs now
                stale.unlink(missing_ok=True)
            if not (folder / "fingerprint.json").exists():
                _write_json(folder / "fingerprint.json", {"schema_version": SCHEMA_VERSION, **fingerprint})
            total = len(builder)
            bounds = [(k, s, min(s + self.shard_size, total)) for k, s in enumerate(range(0, total, self.shard_size))]
            sidecars = {k: _valid_shard(folder, k, s, e) for k, s, e in bounds}
            todo = [(k, s, e, str(folder), on_bad) for k, s, e in bounds if sidecars[k] is None]
            bar = tqdm(total=total, desc=description, disable=not progress or not todo, leave=False, unit="graph")
            bar.update(sum(e - s for k, s, e in bounds if sidecars[k] is not None))
            build_shard_jobs(builder, todo, on_bad, workers, bar.update)
            bar.close()
            stores, skipped, digests = [], [], []
            opening = tqdm(bounds, desc="opening the cache", unit="shard", disable=not progress, leave=False)
            for k, start, stop in opening:  # each shard's checksum checked again, then loaded (unless mapped)
                sidecar = _valid_shard(folder, k, start, stop)
                if sidecar is None:
                    raise RuntimeError(f"cache shard {k} of {folder} did not build correctly")
                if not mmap:
                    stores.append(GraphStore.load(folder / f"shard_{k:05d}.pt"))
                skipped.extend(sidecar["skipped"])
                digests.append(sidecar["sha256"])
            if mmap and bounds:
                if not is_consolidated(folder / "mmap", digests):
                    shards = [folder / f"shard_{k:05d}.pt" for k, _, _ in bounds]
                    consolidate(shards, folder / "mmap", digests, progress)
                store = load_mmap(folder / "mmap", fingerprint)
            else:
                store = GraphStore.concat(stores) if stores else GraphStore.from_graphs([])
        store.meta = fingerprint
        if skipped:
            LOG.warning("skipped %d of %d items (%s); first: %s", len(skipped), total, folder, skipped[0]["reason"])
        report = BuildReport(len(store), skipped, len(bounds) - len(todo), len(todo))
        return store, report


def build_uncached(builder: GraphBuilder, on_bad: str = "error") -> GraphStore:
    """All graphs of a builder in memory, no files (small data, tests)."""
    graphs, names, skipped = build_items(builder, range(len(builder)), on_bad)
    for item in skipped:
        LOG.warning("skipped item %d: %s", item["index"], item["reason"])
    return GraphStore.from_graphs(graphs, names, builder.fingerprint())
