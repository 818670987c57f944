"""The seed paper's edge schema, made from a stored (``semgraph``) graph.

Graphs are built and cached in the ``semgraph`` schema; `to_edge_schema`
turns one graph, or a collated batch, into the ``seed`` schema (or its
``seed-directed`` variant, where a relation token's subject and object are
linked by types of their own) on access (as `ToHomogeneous` makes the
homogeneous view). Everything the seed's ranks need
is in a stored graph: the object boxes, and each relation token's subject
(``subject_of``) and object (``has_object``).

`rank_matrix` is the paper's [T, T] matrix (rows = queries, columns = keys,
tokens = objects then relation tokens, 0 = no relationship) read off a graph:
each pair keeps its highest rank.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.data import HeteroData
from torch_geometric.transforms import BaseTransform
from torch_geometric.utils import to_dense_batch

from graphs.schema import (
    DEFAULT_EDGE_SCHEMA,
    EDGE_TYPES,
    HAS_OBJECT,
    NEAREST_1,
    NEAREST_2,
    NEAREST_3,
    NEAREST_4,
    OBJECT,
    OBJECT_TO_RELATION,
    RELATION,
    SEED_SCHEMAS,
    SUBJECT_OF,
    SUBJECT_TO_OBJECT,
    SUBJECT_TO_RELATION,
    TO_OBJECT,
    TO_PARTICIPANT,
    TO_RELATION,
    TO_SUBJECT,
    check_edge_schema,
    edge_schema_of,
    strength_order,
)

NEAREST = (NEAREST_1, NEAREST_2, NEAREST_3, NEAREST_4)
CLOSEST = 4  # the paper looks among each object's 4 closest tokens, itself included


def _graph_ids(data: HeteroData, node_type: str) -> Tensor:
    store = data[node_type]
    if "batch" in store:
        return store.batch
    return torch.zeros(store.num_nodes, dtype=torch.long, device=store.box.device)


def nearest_edges(boxes: Tensor, graph: Tensor) -> list[Tensor]:
    """Edges object -> its k-th nearest object, k = 1..4, within each graph. [2, E] each.

    The objects of a graph are sorted by box-centre distance from each one,
    itself included at distance 0, ties broken by index (stable); of the first
    four, itself dropped, the k-th other one is its k-th nearest. So the 4th
    nearest appears only when four others tie with it at distance 0 ahead of it.
    `graph` gives each object's graph (sorted, as in a PyG batch).
    """
    empty = [torch.zeros(2, 0, dtype=torch.long, device=boxes.device) for _ in NEAREST]
    if boxes.size(0) < 2:
        return empty
    centres, valid = to_dense_batch(boxes[:, :2].double(), graph)  # [B, n, 2], [B, n]
    difference = centres[:, :, None, :] - centres[:, None, :, :]
    distance = (difference**2).sum(-1)  # exact 0 for equal centres
    distance = distance.masked_fill(~valid[:, None, :], float("inf"))
    closest = distance.sort(dim=-1, stable=True).indices[:, :, : min(CLOSEST, distance.size(-1))]  # [B, n, c]
    own = torch.arange(distance.size(1), device=boxes.device)[None, :, None]
    key_valid = torch.gather(valid[:, None, :].expand_as(distance), 2, closest)
    keep = (closest != own) & key_valid & valid[:, :, None]
    order = keep.long().cumsum(-1) - 1  # k - 1 among the kept
    start = torch.cumsum(valid.sum(1), 0) - valid.sum(1)  # first global index of each graph
    query = (start[:, None, None] + own).expand_as(closest)
    key = start[:, None, None] + closest
    return [torch.stack([query[keep & (order == k)], key[keep & (order == k)]]) for k in range(len(NEAREST))]


def triplet_participants(data: HeteroData) -> tuple[Tensor, Tensor]:
    """Each relation token's subject and object (object indices), [R] each."""
    count = data[RELATION].num_nodes
    device = data[SUBJECT_OF].edge_index.device
    subject = torch.full((count,), -1, dtype=torch.long, device=device)
    obj = torch.full((count,), -1, dtype=torch.long, device=device)
    subject[data[SUBJECT_OF].edge_index[1]] = data[SUBJECT_OF].edge_index[0]
    obj[data[HAS_OBJECT].edge_index[0]] = data[HAS_OBJECT].edge_index[1]
    if count and (subject.min() < 0 or obj.min() < 0):
        raise ValueError("a relation token without a subject or an object: not a semgraph graph")
    return subject, obj


def to_seed_schema(data: HeteroData, directed: bool = False) -> HeteroData:
    """The same graph (or collated batch) with the seed schema's edge types instead of ours
    (`directed`: the ``seed-directed`` schema's, subject and object on edges of their own)."""
    name = "seed-directed" if directed else "seed"
    if tuple(data.edge_types) != EDGE_TYPES:
        raise ValueError(f"the {name} edge schema is made from a semgraph graph, got edge types {data.edge_types}")
    subject, obj = triplet_participants(data)
    relation = torch.arange(subject.numel(), device=subject.device)
    nearest = nearest_edges(data[OBJECT].box, _graph_ids(data, OBJECT))
    for edge_type in EDGE_TYPES:
        del data[edge_type]
    pairs = torch.stack([subject, obj])
    data[SUBJECT_TO_OBJECT].edge_index = torch.unique(pairs, dim=1) if pairs.numel() else pairs
    if directed:
        data[SUBJECT_TO_RELATION].edge_index = torch.stack([subject, relation])
        data[OBJECT_TO_RELATION].edge_index = torch.stack([obj, relation])
        data[TO_SUBJECT].edge_index = torch.stack([relation, subject])
        data[TO_OBJECT].edge_index = torch.stack([relation, obj])
    else:
        data[TO_RELATION].edge_index = torch.cat([torch.stack([subject, relation]), torch.stack([obj, relation])], 1)
        data[TO_PARTICIPANT].edge_index = torch.cat([torch.stack([relation, subject]), torch.stack([relation, obj])], 1)
    for edge_type, edge_index in zip(NEAREST, nearest, strict=True):
        data[edge_type].edge_index = edge_index
    return data


def to_edge_schema(data: HeteroData, schema: str = DEFAULT_EDGE_SCHEMA) -> HeteroData:
    """A stored (semgraph) graph or batch in `schema`: unchanged for semgraph, converted for the seed schemas."""
    if check_edge_schema(schema) in SEED_SCHEMAS:
        return to_seed_schema(data, directed=schema == "seed-directed")
    return data


class ToEdgeSchema(BaseTransform):
    """`to_edge_schema` as a PyG transform."""

    def __init__(self, schema: str = DEFAULT_EDGE_SCHEMA) -> None:
        self.schema = check_edge_schema(schema)

    def forward(self, data: HeteroData) -> HeteroData:
        return to_edge_schema(data, self.schema)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.schema!r})"


def rank_matrix(data: HeteroData, node_types: tuple[str, ...] = (OBJECT, RELATION)) -> Tensor:
    """The [T, T] rank matrix of one graph over the tokens of `node_types` in that order
    (rows = queries = edge sources, columns = keys), each pair keeping its highest rank
    counted T = strongest for a schema of T types (7 in semgraph and seed, 9 in seed-directed),
    0 where none. For the seed schema these are the paper's ranks: this is its matrix
    (before its CLS token)."""
    order = strength_order(edge_schema_of(data))
    counts = [data[t].num_nodes for t in node_types]
    offsets = dict(zip(node_types, torch.tensor([0, *counts[:-1]]).cumsum(0).tolist(), strict=True))
    total = sum(counts)
    matrix = torch.zeros(total, total, dtype=torch.long)
    for edge_type in data.edge_types:
        src, _, dst = edge_type
        if src not in offsets or dst not in offsets:
            continue
        edge_index = data[edge_type].edge_index
        rows, cols = edge_index[0] + offsets[src], edge_index[1] + offsets[dst]
        rank = len(order) + 1 - order[edge_type]
        current = matrix[rows, cols]
        matrix[rows, cols] = torch.maximum(current, torch.full_like(current, rank))
    return matrix
