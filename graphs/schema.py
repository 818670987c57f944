"""The graph schema: node types, the two edge schemas of seven ranked types, predicates.

This module is the single place where type names are spelled out; every other
module imports them from here (see docs/design.md, "The graph schema").

Edge schemas (`--edge-schema`): ``semgraph`` (ours, `EDGE_TYPES`, the form
graphs are built and stored in), ``seed`` (the seed paper's seven ranked
relationship types, `SEED_EDGE_TYPES`) and ``seed-directed`` (the seed's with
a triplet's subject and object told apart, nine types,
`SEED_DIRECTED_EDGE_TYPES`); both seed schemas are made from a stored graph
on access by `graphs.seed`. Each lists its types strongest first.
"""

from __future__ import annotations

import hashlib

import torch
from torch_geometric.data import HeteroData

SCHEMA_VERSION = 2  # 2: RAM's PSG predicates joined the vocabulary (relation features grew)

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

# The seed paper's seven ranked relationship types, strongest first. The paper
# numbers them 7 (strongest) down to 1; SEED_RANK keeps its numbers. For every
# relation token r of a triplet (s, p, o): s -> o (7), s -> r and o -> r (6),
# r -> s and r -> o (5); every object -> its 1st, 2nd, 3rd nearest object by
# box-centre distance (4, 3, 2), and its 4th only when the object itself is not
# among its 4 closest (1; ties at distance 0). No image-node edges.
SEED_EDGE_TYPES: tuple[EdgeType, ...] = (
    (OBJECT, "subject_to_object", OBJECT),
    (OBJECT, "to_relation", RELATION),
    (RELATION, "to_participant", OBJECT),
    (OBJECT, "nearest_1", OBJECT),
    (OBJECT, "nearest_2", OBJECT),
    (OBJECT, "nearest_3", OBJECT),
    (OBJECT, "nearest_4", OBJECT),
)
SUBJECT_TO_OBJECT, TO_RELATION, TO_PARTICIPANT, NEAREST_1, NEAREST_2, NEAREST_3, NEAREST_4 = SEED_EDGE_TYPES
SEED_RANK: dict[EdgeType, int] = {et: len(SEED_EDGE_TYPES) - k for k, et in enumerate(SEED_EDGE_TYPES)}

# The seed schema with the direction of a triplet told apart (ours, not the
# paper's): the paper gives a relation token's subject and object the same
# ranks (6 into it, 5 out of it), so which end is the subject rests on the
# one subject -> object edge. Here each gets its own rank, nine in all,
# numbered as the paper numbers (9 = strongest): s -> o (9), s -> r (8),
# o -> r (7), r -> s (6), r -> o (5), then the paper's four nearest (4..1).
SEED_DIRECTED_EDGE_TYPES: tuple[EdgeType, ...] = (
    SUBJECT_TO_OBJECT,
    (OBJECT, "subject_to_relation", RELATION),
    (OBJECT, "object_to_relation", RELATION),
    (RELATION, "to_subject", OBJECT),
    (RELATION, "to_object", OBJECT),
    NEAREST_1,
    NEAREST_2,
    NEAREST_3,
    NEAREST_4,
)
SUBJECT_TO_RELATION, OBJECT_TO_RELATION, TO_SUBJECT, TO_OBJECT = SEED_DIRECTED_EDGE_TYPES[1:5]
SEED_DIRECTED_RANK: dict[EdgeType, int] = {
    et: len(SEED_DIRECTED_EDGE_TYPES) - k for k, et in enumerate(SEED_DIRECTED_EDGE_TYPES)
}

EDGE_SCHEMAS: tuple[str, ...] = ("semgraph", "seed", "seed-directed")
DEFAULT_EDGE_SCHEMA = "semgraph"
SEED_SCHEMAS: tuple[str, ...] = ("seed", "seed-directed")  # made from a stored graph by `graphs.seed`
_SCHEMA_TYPES: dict[str, tuple[EdgeType, ...]] = {
    "semgraph": EDGE_TYPES,
    "seed": SEED_EDGE_TYPES,
    "seed-directed": SEED_DIRECTED_EDGE_TYPES,
}
# The rank each schema writes next to a type (GraphML, legend, tables): ours
# counts 1 = strongest, the paper's 7 = strongest (9 in seed-directed).
_SCHEMA_RANKS: dict[str, dict[EdgeType, int]] = {
    "semgraph": EDGE_RANK,
    "seed": SEED_RANK,
    "seed-directed": SEED_DIRECTED_RANK,
}


def check_edge_schema(schema: str) -> str:
    """`schema` if it names an edge schema, else ValueError listing the valid ones."""
    if schema not in _SCHEMA_TYPES:
        raise ValueError(f"unknown edge schema {schema!r}; valid: {', '.join(EDGE_SCHEMAS)}")
    return schema


def schema_edge_types(schema: str = DEFAULT_EDGE_SCHEMA) -> tuple[EdgeType, ...]:
    """The edge types of an edge schema, strongest first."""
    return _SCHEMA_TYPES[check_edge_schema(schema)]


def schema_ranks(schema: str = DEFAULT_EDGE_SCHEMA) -> dict[EdgeType, int]:
    """Each edge type's rank as its schema numbers it (semgraph: 1 strongest; seed: 7, seed-directed: 9 strongest)."""
    return _SCHEMA_RANKS[check_edge_schema(schema)]


def strength_order(schema: str = DEFAULT_EDGE_SCHEMA) -> dict[EdgeType, int]:
    """Each edge type's place in strength, 1 = strongest, in any schema (the encoder's rank)."""
    return {et: k for k, et in enumerate(schema_edge_types(schema), 1)}


def edge_schema_of(data: HeteroData) -> str:
    """The edge schema whose types a graph carries; ValueError if it carries neither's."""
    edge_types = tuple(data.edge_types)
    for name, types in _SCHEMA_TYPES.items():
        if edge_types == types:
            return name
    raise ValueError(f"edge types {edge_types} are those of no edge schema ({', '.join(EDGE_SCHEMAS)})")


# Predicates of relation tokens. Geometry extraction (graphs.relations) yields
# the first eleven; then the 50 predicates of Visual Genome's common split
# (VG150), for triplets from VG or a scene-graph model; then those of the 56
# of PSG (what RAM, the seed paper's relation model, predicts) not already
# there ("beside" is an alias of "next to"). Anything else a token source names
# maps through PREDICATE_ALIASES or has the id of "other" and keeps its name
# (open vocabulary: `name_key`, `open_predicates`, below).
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
PSG_PREDICATES: tuple[str, ...] = (
    "over", "in front of", "beside", "on", "in", "attached to", "hanging from", "on back of", "falling off",
    "going down", "painted on", "walking on", "running on", "crossing", "standing on", "lying on", "sitting on",
    "flying over", "jumping over", "jumping from", "wearing", "holding", "carrying", "looking at", "guiding",
    "kissing", "eating", "drinking", "feeding", "biting", "catching", "picking", "playing with", "chasing",
    "climbing", "cleaning", "playing", "touching", "pushing", "pulling", "opening", "cooking", "talking to",
    "throwing", "slicing", "driving", "riding", "parked on", "driving on", "about to hit", "kicking", "swinging",
    "entering", "exiting", "enclosing", "leaning on",
)  # fmt: skip
DRAWN_PREDICATES: tuple[str, ...] = ("points at",)
_PSG_ALIASED = {"beside"}  # PSG names that mean a predicate already listed (see PREDICATE_ALIASES)
_PSG_NEW = tuple(
    p for p in PSG_PREDICATES if p not in (*GEOMETRIC_PREDICATES, *VG150_PREDICATES) and p not in _PSG_ALIASED
)
PREDICATES: tuple[str, ...] = (*GEOMETRIC_PREDICATES, *VG150_PREDICATES, *_PSG_NEW, *DRAWN_PREDICATES, "other")
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
    "on the back of": "on back of",
    "leaning against": "leaning on",
    "flying above": "flying over",
    "jumping off": "jumping from",
    "talking with": "talking to",
}
PREDICATE_ID: dict[str, int] = {p: i for i, p in enumerate(PREDICATES)}


def normalise_predicate(name: str) -> str:
    """A predicate name as graphs keep it: lower case, single spaces, aliases followed."""
    key = " ".join(name.lower().split())
    return PREDICATE_ALIASES.get(key, key)


def predicate_id(name: str, strict: bool = True) -> int:
    """The id of a predicate name (case and spacing normalised, aliases followed).

    Unknown names raise ValueError when `strict`, else map to "other".
    """
    key = normalise_predicate(name)
    if key in PREDICATE_ID:
        return PREDICATE_ID[key]
    if strict:
        raise ValueError(f"unknown predicate {name!r}; known: {', '.join(PREDICATES)}")
    return PREDICATE_ID["other"]


# Open vocabulary: every relation token also keeps the name it was given, as `name_key` (a
# 63-bit hash of the normalised name, so that it stores and batches as a tensor); names
# outside PREDICATES travel as text beside it (a graph's `open_predicates`).
def predicate_key(name: str) -> int:
    """The stable 63-bit key of a predicate name (after `normalise_predicate`)."""
    digest = hashlib.blake2b(normalise_predicate(name).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


PREDICATE_KEYS: tuple[int, ...] = tuple(predicate_key(p) for p in PREDICATES)


def relation_names(data: HeteroData) -> list[str]:
    """The predicate name of every relation token of a graph (or batch): the vocabulary's,
    or the open-vocabulary name it was built with."""
    ids = data[RELATION].predicate.tolist()
    names = [PREDICATES[p] for p in ids]
    if "name_key" not in data[RELATION]:
        return names
    open_names = {predicate_key(n): normalise_predicate(n) for n in flat_open_predicates(data)}
    for r, key in enumerate(data[RELATION].name_key.tolist()):
        if key != PREDICATE_KEYS[ids[r]]:
            names[r] = open_names.get(key, names[r])
    return names


def flat_open_predicates(data) -> list[str]:
    """A graph's `open_predicates`, or a PyG batch's (one list per graph), as one list."""
    found = getattr(data, "open_predicates", None) or []
    out: list[str] = []
    for item in found:
        out.extend([item] if isinstance(item, str) else item)
    return out


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


# `--graph-type`: what an image becomes (docs/design.md, "Data flow").
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
        return {t: graph_or_type[t].x.size(1) for t in NODE_TYPES}, len(graph_or_type.edge_types)
    return {HOMOGENEOUS_NODE: graph_or_type.x.size(1)}, 1


def resolve_edge_type(name: str | EdgeType, schema: str = DEFAULT_EDGE_SCHEMA) -> EdgeType:
    """Return the edge type of `schema` given its relation name or its tuple."""
    edge_types = schema_edge_types(schema)
    if isinstance(name, tuple) and tuple(name) in edge_types:
        return tuple(name)  # type: ignore[return-value]
    by_name = {et[1]: et for et in edge_types}
    if isinstance(name, str) and name in by_name:
        return by_name[name]
    valid = ", ".join(by_name)
    raise ValueError(f"unknown edge type {name!r} in the {schema} edge schema; valid edge types: {valid}")


def empty_graph(feature_dims: dict[NodeType, int] | None = None, schema: str = DEFAULT_EDGE_SCHEMA) -> HeteroData:
    """A graph with every node and edge type present and empty, in schema order."""
    dims = feature_dims or FEATURE_DIMS
    data = HeteroData()
    for node_type in NODE_TYPES:
        data[node_type].x = torch.zeros(0, dims[node_type])
        data[node_type].box = torch.zeros(0, 4)
    data[OBJECT].label = torch.zeros(0, dtype=torch.long)
    data[OBJECT].area = torch.zeros(0)
    data[RELATION].predicate = torch.zeros(0, dtype=torch.long)
    data[RELATION].name_key = torch.zeros(0, dtype=torch.long)
    data.open_predicates = []
    for edge_type in schema_edge_types(schema):
        data[edge_type].edge_index = torch.zeros(2, 0, dtype=torch.long)
    return data


def check_graph(data: HeteroData, schema: str = DEFAULT_EDGE_SCHEMA) -> None:
    """Raise ValueError unless `data` follows the schema (all types, valid indices)."""
    if tuple(data.node_types) != NODE_TYPES:
        raise ValueError(f"node types {data.node_types} differ from the schema {NODE_TYPES}")
    edge_types = schema_edge_types(schema)
    if tuple(data.edge_types) != edge_types:
        raise ValueError(f"edge types {data.edge_types} differ from the {schema} edge schema {edge_types}")
    for node_type in NODE_TYPES:
        store = data[node_type]
        if store.x.dim() != 2 or store.box.shape != (store.x.size(0), 4):
            raise ValueError(f"{node_type}: x {tuple(store.x.shape)} and box {tuple(store.box.shape)} disagree")
    for src, rel, dst in edge_types:
        edge_index = data[src, rel, dst].edge_index
        if edge_index.dim() != 2 or edge_index.size(0) != 2:
            raise ValueError(f"{rel}: edge_index must be [2, E], got {tuple(edge_index.shape)}")
        if edge_index.numel() and (
            int(edge_index[0].max()) >= data[src].num_nodes or int(edge_index[1].max()) >= data[dst].num_nodes
        ):
            raise ValueError(f"{rel}: edge_index points past the last {src} or {dst} node")
