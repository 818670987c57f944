"""The data flags every command shares (train/run.py, evaluate.*), and DataOptions from them."""

from __future__ import annotations

import argparse

from data.datasets import DEFAULT_SIZES
from data.images import TOKEN_SOURCES
from data.sources import DATASETS, DataOptions
from data.synthetic import DEFAULT_WORLD, WORLDS
from graphs.featurizers import FEATURIZERS
from graphs.schema import DEFAULT_EDGE_SCHEMA, EDGE_SCHEMAS, GRAPH_TYPES, resolve_edge_type, schema_edge_types


def edge_type_list(value: str) -> list[str]:
    """'near,overlaps' -> ['near', 'overlaps']; a name of no edge schema lists the valid ones.

    Whether the names belong to the run's --edge-schema is checked by `data_options`.
    """
    names = [name.strip() for name in value.split(",") if name.strip()]
    known = {et[1] for schema in EDGE_SCHEMAS for et in schema_edge_types(schema)}
    unknown = [name for name in names if name not in known]
    if unknown:
        valid = "; ".join(
            f"{schema}: {', '.join(et[1] for et in schema_edge_types(schema))}" for schema in EDGE_SCHEMAS
        )
        raise argparse.ArgumentTypeError(f"unknown edge type {unknown[0]!r}; valid edge types: {valid}")
    return names


def check_drop_edge_types(names: list[str], edge_schema: str) -> list[str]:
    """`names` if each is an edge type of `edge_schema`, else ValueError naming the schema's types."""
    return [resolve_edge_type(name, edge_schema)[1] for name in names]


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the data group (dataset, graph type, ablation, sources, cache) to a parser."""
    data = parser.add_argument_group("data")
    data.add_argument("--dataset", choices=DATASETS, default="synthetic", help="where images and captions come from")
    data.add_argument(
        "--graph-type",
        choices=GRAPH_TYPES,
        default="hetero",
        help="what an image becomes: hetero = object/relation/image tokens with 7 edge types; "
        "homo = the same graph with one node and one edge type; patch = a grid of patch tokens (ViT baseline)",
    )
    data.add_argument(
        "--edge-schema",
        choices=EDGE_SCHEMAS,
        default=DEFAULT_EDGE_SCHEMA,
        help="the ranked edge types: semgraph = ours (7); seed = the seed paper's 7 (subject -> object, "
        "participants <-> relation token, 1st..4th nearest object); seed-directed = the seed's with the "
        "subject and the object of a relation token on types of their own (9); the seed ones are made "
        "from the cached graphs on access",
    )
    data.add_argument(
        "--drop-edge-types",
        type=edge_type_list,
        default=[],
        metavar="NAMES",
        help="comma-separated edge types of --edge-schema to empty in every graph (ablation), "
        "e.g. near,overlaps (semgraph) or nearest_4 (seed)",
    )
    data.add_argument("--train-size", type=int, default=DEFAULT_SIZES["train"], help="synthetic training scenes")
    data.add_argument(
        "--world",
        choices=tuple(WORLDS),
        default=DEFAULT_WORLD,
        help="version of the synthetic world: v3 (canonical shapes, two radii, fixed shades, 2-5 objects) or v4 "
        "(rotated and stretched shapes, a continuum of radii, varied shades and backgrounds, 2-6 objects, "
        "neighbours off the axis, several arrow styles); it keys the graph cache, and evaluate.compositional "
        "draws its synthetic suites in the checkpoint's world",
    )
    data.add_argument(
        "--held-out-combinations",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="--world v4: keep its held-out (shape, colour) and (predicate, subject shape) combinations out of "
        "every scene, twin and hard negative, for the heldout-* suites",
    )
    data.add_argument("--val-size", type=int, default=DEFAULT_SIZES["val"], help="synthetic validation scenes")
    data.add_argument("--coco-root", help="COCO folder with annotations/, train2017/, val2017/")
    data.add_argument("--split", default="train2017", help="COCO split to train on")
    data.add_argument("--val-split", default="val2017", help="COCO split to validate on")
    data.add_argument(
        "--relations",
        choices=("geometry", "vg"),
        default="geometry",
        help="COCO relations: from mask geometry, or Visual Genome triplets (--vg-dir)",
    )
    data.add_argument("--vg-dir", help="folder with Visual Genome image_data.json and relationships.json")
    data.add_argument("--karpathy", help="Karpathy split file (dataset_coco.json): its images and sentences")
    data.add_argument(
        "--max-objects", type=int, default=30, help="objects per image of COCO or a tokens file, largest kept"
    )
    data.add_argument("--max-relations", type=int, default=20, help="geometric relations per image, nearest first")
    data.add_argument("--images", help="--dataset images: the image folder")
    data.add_argument("--captions", help="--dataset images: JSON lines {file_name, captions}")
    data.add_argument("--val-fraction", type=float, default=0.1, help="--dataset images: share held out")
    data.add_argument(
        "--token-source",
        choices=TOKEN_SOURCES,
        default="felzenszwalb",
        help="--dataset images: a segmenter (felzenszwalb, slic, quickshift), a tokens file, or Mask R-CNN; "
        "evaluate.compositional: also what tokenizes the synthetic suites' drawn images (default: exact masks)",
    )
    data.add_argument("--tokens-file", help="JSON lines of masks (COCO RLE) and triplets per image")
    data.add_argument("--maskrcnn-weights", help="local torchvision Mask R-CNN weights")
    data.add_argument(
        "--featurizer",
        choices=FEATURIZERS,
        default="pixels",
        help="what object tokens carry on every dataset: masked pixel crops, a --backbone mask-pooled, or a "
        "tokens file's features (precomputed: --dataset images --token-source tokens only; patch graphs: pixels only)",
    )
    data.add_argument("--backbone", help="timm:NAME or open_clip:NAME for --featurizer backbone")
    data.add_argument("--backbone-weights", help="local weights of the backbone")
    data.add_argument("--cache-dir", help="graph cache folder (default $SEMGRAPH_CACHE or ~/.cache/semgraph/graphs)")
    data.add_argument("--no-cache", action="store_true", help="build graphs in memory, write nothing")
    data.add_argument(
        "--mmap",
        action="store_true",
        help="memory-map the cached graphs instead of loading them: datasets larger than memory train "
        "(needs the cache; not with --dataset images, whose hold-out copies every graph)",
    )
    data.add_argument("--workers", type=int, default=0, help="processes building graphs (0: this one)")
    data.add_argument(
        "--on-bad-image",
        choices=("error", "skip"),
        default="error",
        help="a corrupt image or broken annotation: stop with an error, or skip it and count it",
    )


def data_options(args: argparse.Namespace) -> DataOptions:
    """DataOptions from parsed data flags; --drop-edge-types outside --edge-schema stops with an error."""
    names = set(DataOptions.__dataclass_fields__)
    values = {k: v for k, v in vars(args).items() if k in names}
    schema = values.get("edge_schema", DEFAULT_EDGE_SCHEMA)
    try:
        values["drop_edge_types"] = check_drop_edge_types(values.get("drop_edge_types") or [], schema)
    except ValueError as error:
        raise SystemExit(f"error: --drop-edge-types: {error}") from None
    return DataOptions(**values, use_cache=not args.no_cache, on_bad=args.on_bad_image)
