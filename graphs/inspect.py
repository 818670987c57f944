"""Look at one graph: `python -m graphs.inspect --index 3`.

Prints a table of its nodes and edges, writes the networkx graph as GraphML
and draws a PNG of the image with the masks, boxes and typed edges over it.
"""

from __future__ import annotations

import argparse
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import networkx as nx

from data.cache import BadItem
from data.coco import load_image
from data.datasets import SyntheticTwinBuilder
from data.images import TOKEN_SOURCES, TokenSource, tokens_to_graph
from data.sources import DATASETS, DataOptions, make_builder
from data.synthetic import SHAPES
from graphs.build import build_patch_graph
from graphs.convert import to_networkx
from graphs.draw import save_graph_picture
from graphs.featurizers import Featurizer
from graphs.schema import EDGE_RANK, EDGE_TYPES, NODE_TYPES, OBJECT, resolve_edge_type
from graphs.transforms import DropEdgeTypes


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
        description="Print, save (GraphML) and draw (PNG) the graph of one image: item --index of a dataset, "
        "or a single --image file tokenized by --token-source.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--image", type=Path, help="one image file (instead of a dataset item)")
    parser.add_argument("--dataset", choices=DATASETS, default="synthetic")
    parser.add_argument("--split", default="train", help="synthetic: train/val/test; coco: e.g. val2017")
    parser.add_argument("--index", type=int, default=0, help="which item of the split")
    parser.add_argument("--seed", type=int, default=0, help="the synthetic world's seed")
    parser.add_argument("--world", choices=("v3", "v4"), default="v3", help="the synthetic world's version")
    parser.add_argument("--coco-root", help="COCO folder (annotations/, val2017/, ...)")
    parser.add_argument("--relations", choices=("geometry", "vg"), default="geometry")
    parser.add_argument("--vg-dir", help="Visual Genome folder for --relations vg")
    parser.add_argument("--images", help="--dataset images: the image folder")
    parser.add_argument("--captions", help="--dataset images: JSON lines {file_name, captions}")
    parser.add_argument("--token-source", choices=TOKEN_SOURCES, default="felzenszwalb")
    parser.add_argument("--tokens-file", help="JSON lines of masks and triplets (--token-source tokens)")
    parser.add_argument("--maskrcnn-weights", help="local Mask R-CNN weights (--token-source maskrcnn)")
    parser.add_argument("--max-relations", type=int, default=20, help="geometric relations, nearest pairs first")
    parser.add_argument("--graph-type", choices=("hetero", "patch"), default="hetero")
    parser.add_argument("--drop-edge-types", default="", help="comma-separated edge types to empty first")
    parser.add_argument(
        "--twin",
        action="store_true",
        help="synthetic: show the item's hard-negative twin instead (one relation reversed; --hard-negative-images)",
    )
    parser.add_argument("--out", type=Path, default=Path("inspect"), help="folder for graph.graphml and graph.png")
    return parser


def item_from_dataset(args: argparse.Namespace):
    """(image, masks, graph, name, captions, label names) of item --index."""
    options = DataOptions(
        dataset=args.dataset,
        graph_type=args.graph_type,
        seed=args.seed,
        world=args.world if args.dataset == "synthetic" else "v3",
        coco_root=args.coco_root,
        split=args.split,
        val_split=args.split,
        relations=args.relations,
        vg_dir=args.vg_dir,
        images=args.images,
        captions=args.captions,
        token_source=args.token_source,
        tokens_file=args.tokens_file,
        maskrcnn_weights=args.maskrcnn_weights,
        train_size=args.index + 1,
        val_size=args.index + 1,
    )
    split = args.split if args.dataset == "synthetic" else "train"
    if args.twin and args.dataset != "synthetic":
        raise ValueError("--twin shows the synthetic world's hard-negative images (--dataset synthetic)")
    builder = (
        SyntheticTwinBuilder(split, args.index + 1, args.seed, graph_type=args.graph_type, world=args.world)
        if args.twin
        else make_builder(options, split)
    )
    if not 0 <= args.index < len(builder):
        raise SystemExit(f"--index {args.index} is outside 0..{len(builder) - 1} of this {args.dataset} split")
    graph, name = builder.build(args.index)
    image, masks = builder.image_and_masks(args.index)
    label_names = SHAPES if args.dataset == "synthetic" else getattr(builder, "category_names", {})
    return image, masks, graph, name, graph.captions, label_names


def item_from_image(args: argparse.Namespace):
    image = load_image(args.image)
    if args.graph_type == "patch":
        return image, None, build_patch_graph(image), args.image.name, [], {}
    tokens = TokenSource(args.token_source, args.tokens_file, args.maskrcnn_weights)(args.image.name, image)
    return (
        image,
        tokens.masks,
        tokens_to_graph(image, tokens, Featurizer(), args.max_relations),
        args.image.name,
        [],
        {},
    )


def main(argv: list[str] | None = None) -> dict[str, Path]:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        dropped = [resolve_edge_type(n.strip())[1] for n in args.drop_edge_types.split(",") if n.strip()]
    except ValueError as error:
        parser.error(str(error))
    try:
        image, masks, data, name, captions, label_names = (
            item_from_image(args) if args.image else item_from_dataset(args)
        )
    except (ValueError, FileNotFoundError, BadItem) as error:
        raise SystemExit(f"error: {error}") from None
    if dropped:
        data = DropEdgeTypes(dropped)(data)
    graph = to_networkx(data)
    print(f"{name}: " + ", ".join(f"{data[t].num_nodes} {t}" for t in NODE_TYPES))
    if captions:
        print("captions:\n  " + "\n  ".join(captions))
    print(node_table(graph, label_names))
    print(edge_table(graph))
    args.out.mkdir(parents=True, exist_ok=True)
    paths = {"graphml": args.out / "graph.graphml", "png": args.out / "graph.png"}
    nx.write_graphml(graphml_ready(graph), paths["graphml"])
    title = captions[1] if len(captions) > 1 else (captions[0] if captions else name)
    save_graph_picture(image, data, str(paths["png"]), masks=masks, title=title)
    print(f"wrote {paths['graphml']} and {paths['png']}")
    return paths


if __name__ == "__main__":
    main()
