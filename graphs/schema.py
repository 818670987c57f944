"""The graph schema: node types, the seven ranked edge types, predicates.

This module is the single place where type names are spelled out; every other
module imports them from here (see DESIGN.md, "The graph schema").
"""

from __future__ import annotations

import torch
from torch_geometric.data import HeteroData

SCHEMA_VERSION = 1

NodeType = str
EdgeType = tuple[str, str, str]

NODE_TYPES: tuple[NodeType, ...] = ("object", "relation", "image")
OBJECT, RELATION, IMAGE = NODE_TYPES

# Rank 1 (the strongest) first; the position in this tuple is rank - 1.
EDGE_TYPES: tuple[EdgeType, ...] = (
    (OBJECT, "subject_of", RELATION),
    (RELATION, "has_object", OBJECT),
    (OBJECT, "related", OBJECT),
    (RELATION, "shares", RELATION),
    (OBJECT, "overlaps", OBJECT),
    (OBJECT, "near", OBJECT),
    (IMAGE, "context", OBJECT),
)
SUBJECT_OF, HAS_OBJECT, RELATED, SHARES, OVERLAPS, NEAR, CONTEXT = EDGE_TYPES
EDGE_RANK: dict[EdgeType, int] = {et: rank for rank, et in enumerate(EDGE_TYPES, 1)}
EDGE_TYPE_BY_NAME: dict[str, EdgeType] = {et[1]: et for et in EDGE_TYPES}

# Predicates of relation tokens. Geometry extraction (graphs.relations) yields
# the first eleven; the rest are the 50 predicates of Visual Genome's common
# split (VG150), for triplets from VG or a scene-graph model. Anything else a
# token source names maps through PREDICATE_ALIASES or becomes "other".
# DRAWN_PREDICATES are relations drawn between objects (the synthetic world's
# arrows): nothing in either object's own pixels or position tells their direction.
GEOMETRIC_PREDICATES: tuple[str, ...] = (
    "left of",
    "right of",
    "above",
    "below",
    "on top of",
    "under",
    "inside",
    "contains",
    "next to",
    "overlapping",
    "near",
)
VG150_PREDICATES: tuple[str, ...] = (
    "across", "against", "along", "and", "at", "attached to", "behind", "belonging to", "between",
    "carrying", "covered in", "covering", "eating", "flying in", "for", "from", "growing on", "hanging from",
    "has", "holding", "in", "in front of", "laying on", "looking at", "lying on", "made of", "mounted on",
    "of", "on", "on back of", "over", "painted on", "parked on", "part of", "playing", "riding", "says",
    "sitting on", "standing on", "to", "using", "walking in", "walking on", "watching", "wearing", "wears",
    "with",
)  # fmt: skip
DRAWN_PREDICATES: tuple[str, ...] = ("points at",)
PREDICATES: tuple[str, ...] = (*GEOMETRIC_PREDICATES, *VG150_PREDICATES, *DRAWN_PREDICATES, "other")
PREDICATE_ALIASES: dict[str, str] = {
    "beneath": "under",
    "underneath": "under",
    "below of": "below",
    "inside of": "inside",
    "beside": "next to",
    "by": "next to",
    "next": "next to",
    "near by": "near",
    "have": "has",
    "wearing a": "wearing",
    "on top": "on top of",
    "in front": "in front of",
}
PREDICATE_ID: dict[str, int] = {p: i for i, p in enumerate(PREDICATES)}


def predicate_id(name: str, strict: bool = True) -> int:
    """The id of a predicate name (case and spacing normalised, aliases followed).

    Unknown names raise ValueError when `strict`, else map to "other".
    """
    key = " ".join(name.lower().split())
    key = PREDICATE_ALIASES.get(key, key)
    if key in PREDICATE_ID:
        return PREDICATE_ID[key]
    if strict:
        raise ValueError(f"unknown predicate {name!r}; known: {', '.join(PREDICATES)}")
    return PREDICATE_ID["other"]


# The same fact told from the other participant: (a, p, b) == (b, INVERSE[p], a).
INVERSE_PREDICATE: dict[str, str] = {
    "left of": "right of",
    "right of": "left of",
    "above": "below",
    "below": "above",
    "on top of": "under",
    "under": "on top of",
    "inside": "contains",
    "contains": "inside",
    "next to": "next to",
    "overlapping": "overlapping",
    "near": "near",
}

# Feature sizes of the default (pixel) featurizer, see graphs.features.
CROP_SIZE = 8
OBJECT_DIM = 4 * CROP_SIZE * CROP_SIZE  # masked RGB crop + mask shape
RELATION_GEOMETRY_DIM = 8
RELATION_DIM = len(PREDICATES) + RELATION_GEOMETRY_DIM
IMAGE_GRID = 8
IMAGE_DIM = 3 * IMAGE_GRID * IMAGE_GRID
FEATURE_DIMS: dict[NodeType, int] = {OBJECT: OBJECT_DIM, RELATION: RELATION_DIM, IMAGE: IMAGE_DIM}


# `--graph-type`: what an image becomes (DESIGN.md, "Data flow").
GRAPH_TYPES = ("hetero", "homo", "patch")
# The single node and edge type of a homogeneous graph (`--graph-type homo`).
HOMOGENEOUS_NODE = "node"


def encoder_inputs(graph_or_type) -> tuple[dict[str, int], int]:
    """Node feature sizes and number of ranked edge types an encoder needs.

    Give a graph (its feature sizes are read off it: other featurizers make
    other sizes) or a graph type name (the default pixel featurizer's sizes).
    """
    if isinstance(graph_or_type, str):
        if graph_or_type not in GRAPH_TYPES:
            raise ValueError(f"unknown graph type {graph_or_type!r}; valid: {', '.join(GRAPH_TYPES)}")
        if graph_or_type == "homo":
            return {HOMOGENEOUS_NODE: max(FEATURE_DIMS.values())}, 1
        return dict(FEATURE_DIMS), len(EDGE_TYPES)
    if isinstance(graph_or_type, HeteroData):
        return {t: graph_or_type[t].x.size(1) for t in NODE_TYPES}, len(EDGE_TYPES)
    return {HOMOGENEOUS_NODE: graph_or_type.x.size(1)}, 1


def resolve_edge_type(name: str | EdgeType) -> EdgeType:
    """Return the schema edge type given its relation name or its tuple."""
    if isinstance(name, tuple) and tuple(name) in EDGE_RANK:
        return tuple(name)  # type: ignore[return-value]
    if isinstance(name, str) and name in EDGE_TYPE_BY_NAME:
        return EDGE_TYPE_BY_NAME[name]
    valid = ", ".join(et[1] for et in EDGE_TYPES)
    raise ValueError(f"unknown edge type {name!r}; valid edge types: {valid}")


def empty_graph(feature_dims: dict[NodeType, int] | None = None) -> HeteroData:
    """A graph with every node and edge type present and empty, in schema order."""
    dims = feature_dims or FEATURE_DIMS
    data = HeteroData()
    for node_type in NODE_TYPES:
        data[node_type].x = torch.zeros(0, dims[node_type])
        data[node_type].box = torch.zeros(0, 4)
    data[OBJECT].label = torch.zeros(0, dtype=torch.long)
    data[OBJECT].area = torch.zeros(0)
    data[RELATION].predicate = torch.zeros(0, dtype=torch.long)
    for edge_type in EDGE_TYPES:
        data[edge_type].edge_index = torch.zeros(2, 0, dtype=torch.long)
    return data


def check_graph(data: HeteroData) -> None:
    """Raise ValueError unless `data` follows the schema (all types, valid indices)."""
    if tuple(data.node_types) != NODE_TYPES:
        raise ValueError(f"node types {data.node_types} differ from the schema {NODE_TYPES}")
    if tuple(data.edge_types) != EDGE_TYPES:
        raise ValueError(f"edge types {data.edge_types} differ from the schema {EDGE_TYPES}")
    for node_type in NODE_TYPES:
        store = data[node_type]
        if store.x.dim() != 2 or store.box.shape != (store.x.size(0), 4):
            raise ValueError(f"{node_type}: x {tuple(store.x.shape)} and box {tuple(store.box.shape)} disagree")
    for src, rel, dst in EDGE_TYPES:
        edge_index = data[src, rel, dst].edge_index
        if edge_index.dim() != 2 or edge_index.size(0) != 2:
            raise ValueError(f"{rel}: edge_index must be [2, E], got {tuple(edge_index.shape)}")
        if edge_index.numel() and (
            int(edge_index[0].max()) >= data[src].num_nodes or int(edge_index[1].max()) >= data[dst].num_nodes
        ):
            raise ValueError(f"{rel}: edge_index points past the last {src} or {dst} node")
