"""Many schema graphs as flat tensors with offsets.

A `GraphStore` keeps, for every node attribute, one tensor holding the rows of
all graphs, and for every edge type one [2, E] tensor of graph-local indices,
each with a pointer array of where each graph starts. It saves and loads with
`torch.load(weights_only=True)` (tensors, lists and strings only), slices one
graph back into a `HeteroData` on access, and collates a batch of graphs by
indexing, without building the graphs one by one.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch_geometric.data import HeteroData

from graphs.schema import EDGE_TYPES, NODE_TYPES, SCHEMA_VERSION, EdgeType, empty_graph

FORMAT = "semgraph-store"


def _node_key(node_type: str, attr: str) -> str:
    return f"{node_type}/{attr}"


def _edge_key(edge_type: EdgeType) -> str:
    return "/".join(edge_type)


def _pointer(counts: Sequence[int]) -> Tensor:
    return torch.tensor([0, *counts], dtype=torch.long).cumsum(0)


def _gather_rows(ptr: Tensor, index: Tensor, total: int | None = None) -> tuple[Tensor, Tensor]:
    """Row ids of the graphs `index` in a flat tensor with pointer `ptr`, and their counts.

    `total`, the number of rows (known on the host), spares a device store the
    read of `counts.sum()`: with it nothing here waits for the device."""
    starts, counts = ptr[index], ptr[index + 1] - ptr[index]
    offsets = counts.cumsum(0) - counts
    total = int(counts.sum()) if total is None else total
    within = torch.arange(total, device=ptr.device) - offsets.repeat_interleave(counts, output_size=total)
    return starts.repeat_interleave(counts, output_size=total) + within, counts


def host_to_device(host: np.ndarray | Tensor, device: torch.device) -> Tensor:
    """A host array on `device` without waiting: pinned first on CUDA (a copy from pageable
    memory may wait for the stream), then copied asynchronously."""
    tensor = torch.as_tensor(host)
    if device.type == "cuda":
        tensor = tensor.pin_memory()
    return tensor.to(device, non_blocking=True)


class GraphStore:
    """Flat storage of schema graphs with their captions.

    Args:
        nodes: ``'type/attr'`` -> rows of all graphs, concatenated.
        node_ptr: node type -> [G + 1] start of each graph's rows.
        edges: ``'src/rel/dst'`` -> [2, E] graph-local indices, concatenated.
        edge_ptr: the same key -> [G + 1] start of each graph's edges.
        captions: G lists of captions.
        names: G names saying where each graph came from (file name, scene id).
        meta: free-form provenance (token source, featurizer, ...).
        negatives: per graph, per caption, hard-negative texts (or None).
        open_predicates: per graph, the predicate names of its relation tokens outside the
            vocabulary (their `name_key` is the hash of one of them); default none.
    """

    def __init__(
        self,
        nodes: dict[str, Tensor],
        node_ptr: dict[str, Tensor],
        edges: dict[str, Tensor],
        edge_ptr: dict[str, Tensor],
        captions: list[list[str]],
        names: list[str] | None = None,
        meta: dict | None = None,
        negatives: list[list[list[str]]] | None = None,
        open_predicates: list[list[str]] | None = None,
    ) -> None:
        self.nodes, self.node_ptr, self.edges, self.edge_ptr = nodes, node_ptr, edges, edge_ptr
        self.captions = captions
        self.names = names if names is not None else [str(k) for k in range(len(captions))]
        if len(self.names) != len(captions):
            raise ValueError(f"{len(self.names)} names for {len(captions)} graphs")
        self.meta = meta or {}
        self.negatives = negatives
        self.open_predicates = open_predicates if open_predicates is not None else [[] for _ in captions]
        if len(self.open_predicates) != len(captions):
            raise ValueError(f"{len(self.open_predicates)} open-predicate lists for {len(captions)} graphs")
        self._bounds: dict[str, list[int]] | None = None
        self.on_device = False
        self._any_open: bool | None = None
        # Per-graph row counts of every pointer, on the host (numpy), for a device-resident store.
        self.host_counts: dict[str, np.ndarray] | None = None

    @classmethod
    def from_graphs(
        cls, graphs: Sequence[HeteroData], names: Sequence[str] | None = None, meta: dict | None = None
    ) -> GraphStore:
        template = graphs[0] if graphs else empty_graph()
        nodes, node_ptr, edges, edge_ptr = {}, {}, {}, {}
        for node_type in NODE_TYPES:
            node_ptr[node_type] = _pointer([g[node_type].num_nodes for g in graphs])
            for attr in template[node_type].keys():
                parts = [g[node_type][attr] for g in graphs] or [template[node_type][attr]]
                nodes[_node_key(node_type, attr)] = torch.cat(parts)
        for edge_type in EDGE_TYPES:
            parts = [g[edge_type].edge_index for g in graphs] or [torch.zeros(2, 0, dtype=torch.long)]
            edges[_edge_key(edge_type)] = torch.cat(parts, dim=1)
            edge_ptr[_edge_key(edge_type)] = _pointer([p.size(1) for p in parts] if graphs else [])
        captions = [list(getattr(g, "captions", [])) for g in graphs]
        has_negatives = bool(graphs) and all("negatives" in g for g in graphs)
        negatives = [g.negatives for g in graphs] if has_negatives else None
        names = list(names) if names is not None else None
        open_predicates = [list(getattr(g, "open_predicates", None) or []) for g in graphs]
        return cls(nodes, node_ptr, edges, edge_ptr, captions, names, meta, negatives, open_predicates)

    @classmethod
    def concat(cls, stores: Sequence[GraphStore]) -> GraphStore:
        """One store holding the graphs of `stores` in order."""
        if len(stores) == 1:
            return stores[0]
        first = stores[0]
        chain = cls.concat_pointers

        nodes = {k: torch.cat([s.nodes[k] for s in stores]) for k in first.nodes}
        edges = {k: torch.cat([s.edges[k] for s in stores], dim=1) for k in first.edges}
        node_ptr = {k: chain([s.node_ptr[k] for s in stores]) for k in first.node_ptr}
        edge_ptr = {k: chain([s.edge_ptr[k] for s in stores]) for k in first.edge_ptr}
        captions = [c for s in stores for c in s.captions]
        every = all(s.negatives is not None for s in stores)
        negatives = [n for s in stores for n in s.negatives] if every else None
        names = [n for s in stores for n in s.names]
        open_predicates = [p for s in stores for p in s.open_predicates]
        return cls(nodes, node_ptr, edges, edge_ptr, captions, names, dict(first.meta), negatives, open_predicates)

    @staticmethod
    def concat_pointers(pointers: Sequence[Tensor]) -> Tensor:
        """One pointer array for stores laid end to end."""
        out, offset = [torch.zeros(1, dtype=torch.long)], 0
        for ptr in pointers:
            out.append(ptr[1:] + offset)
            offset += int(ptr[-1])
        return torch.cat(out)

    def __len__(self) -> int:
        return len(self.captions)

    def num_nodes(self, node_type: str) -> Tensor:
        """Per-graph node counts of a type, [G]."""
        return self.node_ptr[node_type].diff()

    def __getitem__(self, index: int) -> HeteroData:
        if not -len(self) <= index < len(self):
            raise IndexError(f"graph {index} out of range for a store of {len(self)}")
        index %= len(self)
        if self._bounds is None:  # python ints slice tensors several times faster than 0-d tensors
            self._bounds = {key: ptr.tolist() for key, ptr in (*self.node_ptr.items(), *self.edge_ptr.items())}
        mapping: dict = {node_type: {} for node_type in NODE_TYPES}
        for key, values in self.nodes.items():
            node_type, attr = key.split("/")
            ptr = self._bounds[node_type]
            mapping[node_type][attr] = values[ptr[index] : ptr[index + 1]]
        for edge_type in EDGE_TYPES:
            key = _edge_key(edge_type)
            ptr = self._bounds[key]
            mapping[edge_type] = {"edge_index": self.edges[key][:, ptr[index] : ptr[index + 1]]}
        data = HeteroData.from_dict(mapping)
        data.captions = self.captions[index]
        if self.negatives is not None:
            data.negatives = self.negatives[index]
        data.name = self.names[index]
        data.open_predicates = self.open_predicates[index]
        return data

    def all_open_predicates(self) -> list[str]:
        """Every predicate name outside the vocabulary that some graph of the store uses, sorted."""
        return sorted({name for names in self.open_predicates for name in names})

    def _batch_open_predicates(self, host_indices) -> list[str]:
        if self._any_open is None:
            self._any_open = any(self.open_predicates)
        if not self._any_open:
            return []
        return sorted({name for k in host_indices for name in self.open_predicates[int(k)]})

    def collate(self, indices: Sequence[int] | Tensor) -> HeteroData:
        """The batch of graphs `indices`, as PyG's `Batch.from_data_list` would make it
        (node rows concatenated, a `batch` vector per node type, edge indices
        offset per graph), built by indexing the flat tensors: no per-graph work.

        The batch also carries `max_tokens`, a host int: the most tokens (nodes
        of all types) of one of its graphs, which sizes the encoder's padding
        without reading a device tensor. A device-resident store (`to`) takes
        its counts from host copies, so that assembling a batch never waits
        for the device.
        """
        if self.host_counts is not None:
            return self._collate_on_device(indices)
        device = self.node_ptr[NODE_TYPES[0]].device
        index = torch.as_tensor(indices, dtype=torch.long).to(device)
        num_graphs = len(index)
        mapping: dict = {}
        node_offsets = {}
        tokens = torch.zeros(num_graphs, dtype=torch.long)
        for node_type in NODE_TYPES:
            rows, counts = _gather_rows(self.node_ptr[node_type], index)
            tokens += counts
            mapping[node_type] = self._node_batch(node_type, rows, counts, num_graphs, None)
            node_offsets[node_type] = mapping[node_type]["ptr"][:-1]
        for edge_type in EDGE_TYPES:
            key = _edge_key(edge_type)
            columns, counts = _gather_rows(self.edge_ptr[key], index)
            mapping[edge_type] = {"edge_index": self._edge_index(edge_type, columns, counts, node_offsets, None)}
        batch = HeteroData.from_dict(mapping)
        batch.captions = [self.captions[k] for k in index.tolist()]
        batch.name = [self.names[k] for k in index.tolist()]
        batch.open_predicates = self._batch_open_predicates(index.tolist())
        batch.num_graphs = num_graphs
        batch.max_tokens = int(tokens.max()) if num_graphs else 0
        return batch

    def _collate_on_device(self, indices: Sequence[int] | Tensor | np.ndarray) -> HeteroData:
        """`collate` for a device-resident store: sizes from the host counts, no per-graph Python work."""
        device = self.node_ptr[NODE_TYPES[0]].device
        host = np.asarray(indices, dtype=np.int64)
        index = host_to_device(host, device)
        num_graphs = len(host)
        mapping: dict = {}
        node_offsets = {}
        tokens = np.zeros(num_graphs, dtype=np.int64)
        for node_type in NODE_TYPES:
            host_counts = self.host_counts[node_type][host]
            tokens += host_counts
            total = int(host_counts.sum())
            rows, counts = _gather_rows(self.node_ptr[node_type], index, total)
            mapping[node_type] = self._node_batch(node_type, rows, counts, num_graphs, total)
            node_offsets[node_type] = mapping[node_type]["ptr"][:-1]
        for edge_type in EDGE_TYPES:
            key = _edge_key(edge_type)
            total = int(self.host_counts[key][host].sum())
            columns, counts = _gather_rows(self.edge_ptr[key], index, total)
            mapping[edge_type] = {"edge_index": self._edge_index(edge_type, columns, counts, node_offsets, total)}
        batch = HeteroData.from_dict(mapping)
        batch.open_predicates = self._batch_open_predicates(host)
        batch.num_graphs = num_graphs
        batch.max_tokens = int(tokens.max()) if num_graphs else 0
        return batch

    def _node_batch(self, node_type: str, rows: Tensor, counts: Tensor, num_graphs: int, total: int | None) -> dict:
        out = {
            attr: self.nodes[_node_key(node_type, attr)][rows]
            for attr in (key.split("/")[1] for key in self.nodes if key.startswith(node_type + "/"))
        }
        graphs = torch.arange(num_graphs, device=counts.device)
        out["batch"] = graphs.repeat_interleave(counts, output_size=total)
        out["ptr"] = torch.cat([counts.new_zeros(1), counts.cumsum(0)])
        return out

    def _edge_index(
        self, edge_type: EdgeType, columns: Tensor, counts: Tensor, node_offsets: dict, total: int | None
    ) -> Tensor:
        """The batch's edge indices of a type: graph-local indices shifted by each graph's node offsets."""
        shift = torch.stack([node_offsets[edge_type[0]], node_offsets[edge_type[2]]])  # [2, B]
        return self.edges[_edge_key(edge_type)][:, columns] + shift.repeat_interleave(counts, dim=1, output_size=total)

    def to(self, device: torch.device | str) -> GraphStore:
        """The same graphs with every tensor on `device` (the GPU-resident token store)."""
        move = {key: value.to(device) for key, value in self.nodes.items()}
        store = GraphStore(
            move,
            {k: v.to(device) for k, v in self.node_ptr.items()},
            {k: v.to(device) for k, v in self.edges.items()},
            {k: v.to(device) for k, v in self.edge_ptr.items()},
            self.captions,
            self.names,
            self.meta,
            self.negatives,
            self.open_predicates,
        )
        store.on_device = True
        pointers = (*self.node_ptr.items(), *self.edge_ptr.items())
        store.host_counts = {key: ptr.diff().cpu().numpy() for key, ptr in pointers}
        return store

    def caption_tokens(self, tokenize, device: torch.device | str) -> tuple[Tensor, Tensor]:
        """Every caption tokenized once: (tokens [total, context] on device, pointer [G + 1] on device)."""
        flat = [caption for captions in self.captions for caption in captions]
        pointer = _pointer([len(captions) for captions in self.captions])
        return tokenize(flat).to(device), pointer.to(device)

    def state(self) -> dict:
        return {
            "format": FORMAT,
            "schema_version": SCHEMA_VERSION,
            "nodes": self.nodes,
            "node_ptr": self.node_ptr,
            "edges": self.edges,
            "edge_ptr": self.edge_ptr,
            # One JSON string: the weights-only unpickler is slow on many small objects.
            "texts": json.dumps(
                {
                    "captions": self.captions,
                    "names": self.names,
                    "negatives": self.negatives,
                    "open_predicates": self.open_predicates,
                }
            ),
            "meta": self.meta,
        }

    def save(self, path: str | Path) -> None:
        torch.save(self.state(), path)

    @classmethod
    def load(cls, path: str | Path) -> GraphStore:
        """Load a saved store; anything else, or another schema version, is a ValueError."""
        try:
            state = torch.load(path, weights_only=True, map_location="cpu")
        except Exception as error:  # truncated or foreign files fail in many ways
            raise ValueError(f"{path}: not a readable graph store ({type(error).__name__}: {error})") from None
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            raise ValueError(f"{path}: not a semgraph graph store")
        if state["schema_version"] != SCHEMA_VERSION:
            raise ValueError(f"{path}: schema version {state['schema_version']}, this code reads {SCHEMA_VERSION}")
        texts = json.loads(state["texts"])
        nodes, node_ptr, edges, edge_ptr = state["nodes"], state["node_ptr"], state["edges"], state["edge_ptr"]
        return cls(
            nodes,
            node_ptr,
            edges,
            edge_ptr,
            texts["captions"],
            texts["names"],
            state["meta"],
            texts.get("negatives"),
            texts.get("open_predicates"),
        )
