"""Describe one graph: tables of its nodes and edges, its GraphML file, its picture.

`show_graph` prints the tables (and, in the seed edge schemas, the rank matrix),
writes `graph.graphml` and draws `graph.png` of the image with the masks, boxes
and typed edges over it (the rank matrix beside it in the seed schemas). Finding
the graph of a dataset item is the command's job: `python -m tools.inspect_graph`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import networkx as nx
import numpy as np
from torch_geometric.data import HeteroData

from graphs.convert import to_networkx
from graphs.draw import save_graph_picture
from graphs.schema import (
    DEFAULT_EDGE_SCHEMA,
    NODE_TYPES,
    OBJECT,
    RELATION,
    SEED_SCHEMAS,
    edge_schema_of,
    schema_ranks,
)
from graphs.seed import rank_matrix


def node_table(graph: nx.MultiDiGraph, label_names: Sequence[str] | dict[int, str] = ()) -> str:
    rows = [f"{'node':<14}{'label':<14}{'box (cx, cy, w, h)':<28}{'in':>4}{'out':>5}"]
    for key, attrs in graph.nodes(data=True):
        label = attrs["label"]
        if attrs["type"] == OBJECT and label is not None:
            if isinstance(label_names, dict):
                label = label_names.get(label, label)
            elif 0 <= label < len(label_names):
                label = label_names[label]
        box = ", ".join(f"{v:.2f}" for v in attrs["box"])
        label = "" if label is None else str(label)
        rows.append(f"{key:<14}{label:<14}{box:<28}{graph.in_degree(key):>4}{graph.out_degree(key):>5}")
    return "\n".join(rows)


def object_names(
    data: HeteroData, label_names: Sequence[str] | dict[int, str] = (), colours: Sequence[str] | None = None
) -> list[str | None]:
    """What each object token is, for the picture: its category's name (COCO's
    categories, the synthetic world's colour and shape), the bare id when the
    source gave ids without names, None when it gave none (segmenter tokens)."""
    labels = data[OBJECT].label.tolist() if "label" in data[OBJECT] else [-1] * data[OBJECT].num_nodes
    names: list[str | None] = []
    for k, label in enumerate(labels):
        if label < 0:
            names.append(None)
            continue
        if isinstance(label_names, dict):
            name = label_names.get(label, str(label))
        else:
            name = label_names[label] if label < len(label_names) else str(label)
        names.append(f"{colours[k]} {name}" if colours is not None else name)
    return names


def edge_table(graph: nx.MultiDiGraph) -> str:
    """Edges per type of the graph's edge schema, with the rank that schema gives the type."""
    schema = graph.graph.get("edge_schema", DEFAULT_EDGE_SCHEMA)
    counts = Counter(attrs["type"] for _, _, attrs in graph.edges(data=True))
    rows = [f"{schema} edge schema", f"{'rank':<6}{'edge type':<40}{'edges':>6}"]
    for edge_type, rank in schema_ranks(schema).items():
        rows.append(f"{rank:<6}{' -> '.join(edge_type):<40}{counts[edge_type[1]]:>6}")
    return "\n".join(rows)


def token_labels(data) -> list[str]:
    """Names of the rank matrix's tokens: o0, o1, ..., then r0, r1, ..."""
    return [f"o{k}" for k in range(data[OBJECT].num_nodes)] + [f"r{k}" for k in range(data[RELATION].num_nodes)]


def graphml_ready(graph: nx.MultiDiGraph) -> nx.MultiDiGraph:
    """GraphML holds scalars only: boxes become 'cx,cy,w,h' strings, None becomes ''."""
    out = graph.copy()
    for _, attrs in out.nodes(data=True):
        attrs["box"] = ",".join(f"{v:.4f}" for v in attrs["box"])
        attrs["label"] = "" if attrs["label"] is None else attrs["label"]
    return out


def show_graph(
    data: HeteroData,
    image: np.ndarray,
    out: Path,
    masks: np.ndarray | None = None,
    name: str = "",
    captions: Sequence[str] = (),
    label_names: Sequence[str] | dict[int, str] = (),
    colours: Sequence[str] | None = None,
) -> dict[str, Path]:
    """Print the graph's tables, write `out/graph.graphml` and draw `out/graph.png`; return both paths.

    `label_names` name the object tokens' labels; `colours` (one per object token) go before them.
    """
    graph = to_networkx(data)
    print(f"{name}: " + ", ".join(f"{data[t].num_nodes} {t}" for t in NODE_TYPES))
    if captions:
        print("captions:\n  " + "\n  ".join(captions))
    print(node_table(graph, label_names))
    print(edge_table(graph))
    out.mkdir(parents=True, exist_ok=True)
    paths = {"graphml": out / "graph.graphml", "png": out / "graph.png"}
    nx.write_graphml(graphml_ready(graph), paths["graphml"])
    title = captions[1] if len(captions) > 1 else (captions[0] if captions else name)
    matrix = None
    if edge_schema_of(data) in SEED_SCHEMAS:
        ranks = rank_matrix(data)
        print("rank matrix (rows = queries, columns = keys, objects then relation tokens):")
        print("\n".join(" ".join(f"{v}" for v in row) for row in ranks.tolist()))
        matrix = (ranks.numpy(), token_labels(data))
    save_graph_picture(
        image,
        data,
        str(paths["png"]),
        masks=masks,
        title=title,
        rank_matrix=matrix,
        object_labels=object_names(data, label_names, colours),
    )
    print(f"wrote {paths['graphml']} and {paths['png']}")
    return paths
