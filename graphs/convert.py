"""Schema graphs as networkx graphs, for inspection and graph algorithms."""

from __future__ import annotations

import networkx as nx
from torch_geometric.data import HeteroData

from graphs.schema import (
    HAS_OBJECT,
    NODE_TYPES,
    OBJECT,
    OBJECT_TO_RELATION,
    RELATED,
    RELATION,
    SUBJECT_OF,
    SUBJECT_TO_OBJECT,
    SUBJECT_TO_RELATION,
    TO_OBJECT,
    TO_PARTICIPANT,
    TO_RELATION,
    TO_SUBJECT,
    edge_schema_of,
    relation_names,
    schema_ranks,
)


def node_key(node_type: str, index: int) -> str:
    """The networkx node name of the `index`-th node of `node_type`: 'object:3'."""
    return f"{node_type}:{index}"


def to_networkx(data: HeteroData) -> nx.MultiDiGraph:
    """One schema graph -> a MultiDiGraph.

    Nodes are named ``'{type}:{index}'`` and carry ``type``, ``index``,
    ``label`` (category id for objects, predicate name for relations, None
    otherwise) and ``box`` (cx, cy, w, h). Edges carry ``type`` (the relation
    name), ``rank`` (as the graph's edge schema numbers it) and, for the edges
    of a triplet (`subject_of`, `has_object`, `related`; in the seed schema
    `subject_to_object`, `to_relation`, `to_participant`; in seed-directed
    `subject_to_object` and the four between a relation token and its
    subject or object), its ``predicate``.
    The graph attribute ``edge_schema`` names the schema.
    """
    schema = edge_schema_of(data)
    ranks = schema_ranks(schema)
    graph = nx.MultiDiGraph(edge_schema=schema)
    predicates = relation_names(data)
    for node_type in NODE_TYPES:
        store = data[node_type]
        for index in range(store.num_nodes):
            if node_type == OBJECT:
                label = int(store.label[index])
            elif node_type == RELATION:
                label = predicates[index]
            else:
                label = None
            box = tuple(float(v) for v in store.box[index])
            graph.add_node(node_key(node_type, index), type=node_type, index=index, label=label, box=box)
    if schema == "seed":
        subject, target = seed_participants(data)
    elif schema == "seed-directed":
        subject = dict(data[TO_SUBJECT].edge_index.t().tolist())
        target = dict(data[TO_OBJECT].edge_index.t().tolist())
    else:
        subject = dict(data[SUBJECT_OF].edge_index.flip(0).t().tolist())
        target = dict(data[HAS_OBJECT].edge_index.t().tolist())
    triplet_predicate = {(subject[r], target[r]): predicates[r] for r in subject.keys() & target.keys()}
    for edge_type in data.edge_types:
        src_type, relation, dst_type = edge_type
        for src, dst in data[edge_type].edge_index.t().tolist():
            attrs = {"type": relation, "rank": ranks[edge_type]}
            if edge_type in (SUBJECT_OF, TO_RELATION, SUBJECT_TO_RELATION, OBJECT_TO_RELATION):
                attrs["predicate"] = predicates[dst]
            elif edge_type in (HAS_OBJECT, TO_PARTICIPANT, TO_SUBJECT, TO_OBJECT):
                attrs["predicate"] = predicates[src]
            elif edge_type in (RELATED, SUBJECT_TO_OBJECT) and (src, dst) in triplet_predicate:
                attrs["predicate"] = triplet_predicate[src, dst]
            graph.add_edge(node_key(src_type, src), node_key(dst_type, dst), key=relation, **attrs)
    return graph


def seed_participants(data: HeteroData) -> tuple[dict[int, int], dict[int, int]]:
    """Relation -> subject and relation -> object of a seed-schema graph: the first and
    second `to_participant` edge of each relation token (the order `graphs.seed` writes)."""
    subject: dict[int, int] = {}
    target: dict[int, int] = {}
    for r, o in data[TO_PARTICIPANT].edge_index.t().tolist():
        (target if r in subject else subject)[r] = o
    return subject, target
