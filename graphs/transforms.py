"""PyG transforms over schema graphs."""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch_geometric.data import Data, HeteroData
from torch_geometric.transforms import BaseTransform

from graphs.schema import DEFAULT_EDGE_SCHEMA, NODE_TYPES, EdgeType, resolve_edge_type


class DropEdgeTypes(BaseTransform):
    """Empty the named edge types (the ablation of docs/design.md).

    The types stay in the graph with zero edges, so batches keep every type and
    the encoder reads the affected pairs as `none`.

    Args:
        names: relation names (``'near'``) or ``(src, rel, dst)`` tuples.
        schema: the edge schema the names belong to (``semgraph`` or ``seed``).
    """

    def __init__(self, names: Iterable[str | EdgeType], schema: str = DEFAULT_EDGE_SCHEMA) -> None:
        self.edge_types = tuple(dict.fromkeys(resolve_edge_type(name, schema) for name in names))

    def forward(self, data: HeteroData) -> HeteroData:
        for edge_type in self.edge_types:
            data[edge_type].edge_index = torch.zeros(2, 0, dtype=torch.long)
        return data

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({[et[1] for et in self.edge_types]})"


class ToHomogeneous(BaseTransform):
    """The same graph as one node type and one edge type (`--graph-type homo`).

    Node features are zero-padded to the widest type, then PyG's
    ``to_homogeneous`` concatenates nodes in schema order and merges all edges.
    The result carries ``x``, ``box``, ``edge_index`` and the captions.
    """

    def forward(self, data: HeteroData) -> Data:
        width = max(data[node_type].x.size(1) for node_type in NODE_TYPES)
        padded = data.clone()
        for node_type in NODE_TYPES:
            x = data[node_type].x
            padded[node_type].x = F.pad(x, (0, width - x.size(1)))
        for node_type in NODE_TYPES:
            for key in list(padded[node_type].keys()):
                if key not in ("x", "box"):
                    del padded[node_type][key]
        homo = padded.to_homogeneous(node_attrs=["x", "box"], edge_attrs=[], add_node_type=False, add_edge_type=False)
        if "captions" in data:
            homo.captions = data.captions
        return homo
