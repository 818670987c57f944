"""Look at one graph: `python -m graphs.inspect --index 3`.

Prints a table of its nodes and edges, writes the networkx graph as GraphML
and draws a PNG of the image with the masks, boxes and typed edges over it.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

import networkx as nx

from data.synthetic import SHAPES, make_scene
from graphs.build import build_typed_graph
from graphs.convert import to_networkx
from graphs.draw import save_graph_picture
from graphs.schema import EDGE_RANK, EDGE_TYPES, NODE_TYPES, OBJECT, resolve_edge_type


def node_table(graph: nx.MultiDiGraph, label_names: tuple[str, ...] = ()) -> str:
    rows = [f"{'node':<14}{'label':<14}{'box (cx, cy, w, h)':<28}{'in':>4}{'out':>5}"]
    for key, attrs in graph.nodes(data=True):
        label = attrs["label"]
        if attrs["type"] == OBJECT and label is not None and 0 <= label < len(label_names):
            label = label_names[label]
        box = ", ".join(f"{v:.2f}" for v in attrs["box"])
        label = "" if label is None else str(label)
        rows.append(f"{key:<14}{label:<14}{box:<28}{graph.in_degree(key):>4}{graph.out_degree(key):>5}")
    return "\n".join(rows)


def edge_table(graph: nx.MultiDiGraph) -> str:
    counts = Counter(attrs["type"] for _, _, attrs in graph.edges(data=True))
    rows = [f"{'rank':<6}{'edge type':<40}{'edges':>6}"]
    for edge_type in EDGE_TYPES:
        rows.append(f"{EDGE_RANK[edge_type]:<6}{' -> '.join(edge_type):<40}{counts[edge_type[1]]:>6}")
    return "\n".join(rows)


def graphml_ready(graph: nx.MultiDiGraph) -> nx.MultiDiGraph:
    """GraphML holds scalars only: boxes become 'cx,cy,w,h' strings, None becomes ''."""
    out = graph.copy()
    for _, attrs in out.nodes(data=True):
        attrs["box"] = ",".join(f"{v:.4f}" for v in attrs["box"])
        attrs["label"] = "" if attrs["label"] is None else attrs["label"]
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m graphs.inspect",
        description="Print, save (GraphML) and draw (PNG) the graph of one image.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--dataset", choices=("synthetic",), default="synthetic")
    parser.add_argument("--split", default="train", choices=("train", "val", "test"))
    parser.add_argument("--index", type=int, default=0, help="which image of the split")
    parser.add_argument("--seed", type=int, default=0, help="the synthetic world's seed")
    parser.add_argument("--graph-type", choices=("hetero", "patch"), default="hetero")
    parser.add_argument("--drop-edge-types", default="", help="comma-separated edge types to empty first")
    parser.add_argument("--out", type=Path, default=Path("inspect"), help="folder for graph.graphml and graph.png")
    return parser


def main(argv: list[str] | None = None) -> dict[str, Path]:
    args = build_parser().parse_args(argv)
    dropped = [name.strip() for name in args.drop_edge_types.split(",") if name.strip()]
    try:
        dropped = [resolve_edge_type(name)[1] for name in dropped]
    except ValueError as error:
        build_parser().error(str(error))
    scene = make_scene(args.seed, args.split, args.index)
    data = build_typed_graph(args.graph_type, scene.image, scene.masks, scene.labels, scene.triplets, dropped)
    graph = to_networkx(data)
    print(f"{args.dataset} {args.split}[{args.index}]: " + ", ".join(f"{data[t].num_nodes} {t}" for t in NODE_TYPES))
    print("captions:\n  " + "\n  ".join(scene.captions))
    print(node_table(graph, SHAPES))
    print(edge_table(graph))
    args.out.mkdir(parents=True, exist_ok=True)
    paths = {"graphml": args.out / "graph.graphml", "png": args.out / "graph.png"}
    nx.write_graphml(graphml_ready(graph), paths["graphml"])
    masks = scene.masks if args.graph_type == "hetero" else None
    save_graph_picture(scene.image, data, str(paths["png"]), masks=masks, title=scene.captions[1])
    print(f"wrote {paths['graphml']} and {paths['png']}")
    return paths


if __name__ == "__main__":
    main()
