"""A graph store on disk, memory-mapped: datasets larger than host memory still train.

The shards of a cache entry are consolidated, one shard in memory at a time,
into one `.npy` file per tensor of the store (rows of all graphs, as in
`GraphStore`) plus a small index (pointers, captions, names). Loading maps
those files: the operating system pages in the rows a batch gathers and may
drop them again, so resident memory follows the batches, not the dataset.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import torch

from data.atomic import write_text_atomic
from data.store import GraphStore

INDEX = "index.json"


def _file(folder: Path, kind: str, key: str) -> Path:
    return folder / f"{kind}__{key.replace('/', '__')}.npy"


def consolidate(shards: list[Path], folder: Path, digests: list[str] | None = None, progress: bool = False) -> Path:
    """Write the shards' graphs as memory-mappable arrays under `folder` (a progress bar over the
    two passes through the shards when `progress`); returns `folder`."""
    from tqdm.auto import tqdm

    bar = tqdm(total=2 * len(shards), desc="mapping the cache", unit="shard", disable=not progress, leave=False)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / INDEX).unlink(missing_ok=True)  # incomplete until the index is written last
    shapes: dict[tuple[str, str], list] = {}
    pointers: dict[tuple[str, str], list[torch.Tensor]] = {}
    captions, names, negatives, open_predicates = [], [], [], []
    for path in shards:  # pass 1: sizes
        store = GraphStore.load(path)
        for kind, tensors in (("nodes", store.nodes), ("edges", store.edges)):
            for key, value in tensors.items():
                axis = 1 if kind == "edges" else 0
                entry = shapes.setdefault((kind, key), [list(value.shape), value.dtype, 0])
                entry[2] += value.shape[axis]
        for kind, ptrs in (("node_ptr", store.node_ptr), ("edge_ptr", store.edge_ptr)):
            for key, ptr in ptrs.items():
                pointers.setdefault((kind, key), []).append(ptr)
        captions += store.captions
        names += store.names
        open_predicates += store.open_predicates
        negatives = None if negatives is None or store.negatives is None else negatives + store.negatives
        bar.update()
    arrays = {}
    for (kind, key), (shape, dtype, total) in shapes.items():
        shape = list(shape)
        shape[1 if kind == "edges" else 0] = total
        numpy_dtype = torch.empty(0, dtype=dtype).numpy().dtype
        arrays[kind, key] = np.lib.format.open_memmap(
            _file(folder, kind, key), mode="w+", dtype=numpy_dtype, shape=tuple(shape)
        )
    filled = {k: 0 for k in arrays}
    for path in shards:  # pass 2: rows
        store = GraphStore.load(path)
        for kind, tensors in (("nodes", store.nodes), ("edges", store.edges)):
            for key, value in tensors.items():
                start = filled[kind, key]
                if kind == "edges":
                    arrays[kind, key][:, start : start + value.shape[1]] = value.numpy()
                    filled[kind, key] += value.shape[1]
                else:
                    arrays[kind, key][start : start + value.shape[0]] = value.numpy()
                    filled[kind, key] += value.shape[0]
        bar.update()
    bar.close()
    for array in arrays.values():
        array.flush()
    index = {
        "keys": [[kind, key] for kind, key in arrays],
        "pointers": {
            f"{kind}|{key}": GraphStore.concat_pointers(ptrs).tolist() for (kind, key), ptrs in pointers.items()
        },
        "captions": captions,
        "names": names,
        "negatives": negatives,
        "open_predicates": open_predicates,
        "shards": digests or [],
    }
    write_text_atomic(folder / INDEX, json.dumps(index))
    return folder


def is_consolidated(folder: Path, digests: list[str]) -> bool:
    """Consolidated from exactly these shard files (by their SHA-256)."""
    try:
        return json.loads((folder / INDEX).read_text())["shards"] == digests
    except (OSError, ValueError, KeyError):
        return False


def load_mmap(folder: Path, meta: dict | None = None) -> GraphStore:
    """A `GraphStore` whose node and edge tensors are memory maps of `folder`'s arrays."""
    index = json.loads((folder / INDEX).read_text())
    tensors: dict[str, dict] = {"nodes": {}, "edges": {}}
    with warnings.catch_warnings():  # read-only maps: torch warns that it cannot write them, and never does
        warnings.simplefilter("ignore", UserWarning)
        for kind, key in index["keys"]:
            tensors[kind][key] = torch.from_numpy(np.load(_file(folder, kind, key), mmap_mode="r"))
    pointers: dict[str, dict] = {"node_ptr": {}, "edge_ptr": {}}
    for name, values in index["pointers"].items():
        kind, key = name.split("|")
        pointers[kind][key] = torch.tensor(values, dtype=torch.long)
    return GraphStore(
        tensors["nodes"],
        pointers["node_ptr"],
        tensors["edges"],
        pointers["edge_ptr"],
        index["captions"],
        index["names"],
        meta,
        index.get("negatives"),
        index.get("open_predicates"),
    )
