"""Images and their tokens as heterogeneous PyG graphs (schema in graphs.schema)."""

import warnings

# PyG scripts a few modules at import; torch 2.14 warns for each. Not ours to fix.
warnings.filterwarnings("ignore", message="`torch.jit.script` is deprecated", category=FutureWarning)

from graphs.build import build_graph, build_patch_graph
from graphs.convert import to_networkx
from graphs.schema import (
    EDGE_RANK,
    EDGE_TYPES,
    FEATURE_DIMS,
    GRAPH_TYPES,
    NODE_TYPES,
    PREDICATES,
    SCHEMA_VERSION,
    check_graph,
    empty_graph,
    encoder_inputs,
    resolve_edge_type,
)
from graphs.transforms import DropEdgeTypes, ToHomogeneous

__all__ = [
    "EDGE_RANK",
    "EDGE_TYPES",
    "FEATURE_DIMS",
    "GRAPH_TYPES",
    "NODE_TYPES",
    "PREDICATES",
    "SCHEMA_VERSION",
    "DropEdgeTypes",
    "ToHomogeneous",
    "build_graph",
    "build_patch_graph",
    "check_graph",
    "empty_graph",
    "encoder_inputs",
    "resolve_edge_type",
    "to_networkx",
]
