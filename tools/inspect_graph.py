"""Look at one graph: `python -m tools.inspect_graph --index 3`.

Finds the graph of one image (item --index of a dataset, its hard-negative
twin, or a single --image file), as a checkpoint's run built its graphs when
given --checkpoint, and shows it with `graphs.describe.show_graph`: a table of
its nodes and edges, the networkx graph as GraphML, and a PNG of the image with
the masks, boxes and typed edges over it. With `--edge-schema seed` the graph
carries the seed paper's seven ranked types (`seed-directed`: its nine with a
triplet's subject and object told apart) and the PNG shows its rank matrix
(queries x keys) beside the picture.

A command on top of the floors: it reads datasets (data), a checkpoint
(models) and the run's data settings (evaluate.run_config).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from data.cache import BadItem
from data.cli import edge_type_list
from data.coco import load_image
from data.datasets import SyntheticTwinBuilder
from data.images import TOKEN_SOURCES, TokenSource, dense_masks, tokens_to_graph
from data.sources import DATASETS, DataOptions, make_builder
from data.synthetic import SHAPES, make_scene
from evaluate.run_config import add_graph_arguments, run_params, settings_from_run
from graphs.build import build_patch_graph
from graphs.describe import show_graph
from graphs.featurizers import Featurizer
from graphs.schema import DEFAULT_EDGE_SCHEMA, EDGE_SCHEMAS, OBJECT, resolve_edge_type
from graphs.seed import to_edge_schema
from graphs.transforms import DropEdgeTypes
from models.checkpoint import load_checkpoint


def synthetic_colours(args: argparse.Namespace, num_objects: int) -> list[str] | None:
    """The colours of the synthetic scene's objects, in token order (None for other items)."""
    if args.image or args.dataset != "synthetic" or args.twin or args.graph_type != "hetero":
        return None
    objects = make_scene(args.seed, args.split, args.index).objects
    return [obj.colour for obj in objects] if len(objects) == num_objects else None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tools.inspect_graph",
        description="Print, save (GraphML) and draw (PNG) the graph of one image: item --index of a dataset, "
        "or a single --image file tokenized by --token-source. With --checkpoint, the graph as that run built "
        "its graphs: every flag but --split, --index and --image defaults to the run's, and one that "
        "contradicts how the run built its graphs is refused.",
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
    parser.add_argument(
        "--edge-schema",
        choices=EDGE_SCHEMAS,
        default=DEFAULT_EDGE_SCHEMA,
        help="the edge types shown: ours (semgraph), the seed paper's (seed) or the seed's with subject and "
        "object told apart (seed-directed); with a seed one, its rank matrix beside the picture",
    )
    parser.add_argument(
        "--drop-edge-types",
        type=edge_type_list,
        default=[],
        help="comma-separated edge types of --edge-schema to empty first",
    )
    parser.add_argument("--checkpoint", type=Path, help="show the graph as this checkpoint's run built its graphs")
    add_graph_arguments(parser, ("featurizer", "backbone", "backbone_weights", "max_objects"))
    parser.add_argument(
        "--on-bad-image",
        choices=("error", "skip"),
        default="error",
        help="a broken annotation elsewhere in the file (unknown image or category): stop with an error naming "
        "it, or leave it out, counted, and show the item",
    )
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
        featurizer=args.featurizer,
        backbone=args.backbone,
        backbone_weights=args.backbone_weights,
        max_objects=args.max_objects,
        max_relations=args.max_relations,
        train_size=args.index + 1,
        val_size=args.index + 1,
        on_bad=args.on_bad_image,
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
    # a twin stores its own caption, then the scene's caption it reverses (the training pair): show its own
    captions = graph.captions[:1] if args.twin else graph.captions
    return image, masks, graph, name, captions, label_names


def item_from_image(args: argparse.Namespace):
    image = load_image(args.image)
    if args.graph_type == "patch":
        return image, None, build_patch_graph(image), args.image.name, [], {}
    tokens = TokenSource(args.token_source, args.tokens_file, args.maskrcnn_weights)(args.image.name, image)
    featurizer = Featurizer(args.featurizer, args.backbone, args.backbone_weights)
    return (
        image,
        dense_masks(tokens.masks),
        tokens_to_graph(image, tokens, featurizer, args.max_relations),
        args.image.name,
        [],
        {},
    )


def apply_run_settings(parser: argparse.ArgumentParser, argv: list[str] | None, args: argparse.Namespace) -> None:
    """Fill the flags left out from the checkpoint's run (not --split: here it is the split shown)."""
    state = load_checkpoint(args.checkpoint)
    params, source = run_params(state, args.checkpoint)
    if params.get("graph_type") == "homo":  # shown as the schema graph it is converted from
        params["graph_type"] = "hetero"
    settings = settings_from_run(parser, argv, args, params, source, ignore=frozenset({"split"}))
    print(f"settings from {source}")
    if settings.report():
        print(settings.report())


def main(argv: list[str] | None = None) -> dict[str, Path]:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.checkpoint:
            apply_run_settings(parser, argv, args)
        dropped = [resolve_edge_type(name, args.edge_schema)[1] for name in args.drop_edge_types]
        image, masks, data, name, captions, label_names = (
            item_from_image(args) if args.image else item_from_dataset(args)
        )
    except (ValueError, FileNotFoundError, BadItem) as error:
        raise SystemExit(f"error: {error}") from None
    data = to_edge_schema(data, args.edge_schema)
    if dropped:
        data = DropEdgeTypes(dropped, args.edge_schema)(data)
    colours = synthetic_colours(args, data[OBJECT].num_nodes)
    return show_graph(data, image, args.out, masks, name, captions, label_names, colours)


if __name__ == "__main__":
    main()
