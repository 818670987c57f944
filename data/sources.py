"""From data options to datasets: which builder makes a split, through the cache."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field

import torch

from data.cache import GraphBuilder
from data.datasets import DEFAULT_SIZES, GraphDataset, SyntheticBuilder, SyntheticTwinBuilder, load_graphs
from data.loader import Twins
from data.store import GraphStore
from graphs.featurizers import Featurizer

LOG = logging.getLogger("semgraph")

DATASETS = ("synthetic", "coco", "images")


@dataclass
class DataOptions:
    """Everything that decides which graphs a run sees (the trainer fills it from its flags)."""

    dataset: str = "synthetic"
    graph_type: str = "hetero"
    edge_schema: str = "semgraph"  # applied on access: the cached graphs are the same for both
    drop_edge_types: list[str] = field(default_factory=list)
    seed: int = 0
    train_size: int = DEFAULT_SIZES["train"]
    val_size: int = DEFAULT_SIZES["val"]
    coco_root: str | None = None
    split: str = "train2017"
    val_split: str = "val2017"
    relations: str = "geometry"
    vg_dir: str | None = None
    karpathy: str | None = None
    max_objects: int = 30
    max_relations: int = 20
    images: str | None = None
    captions: str | None = None
    val_fraction: float = 0.1
    token_source: str = "felzenszwalb"
    tokens_file: str | None = None
    maskrcnn_weights: str | None = None
    featurizer: str = "pixels"
    backbone: str | None = None
    backbone_weights: str | None = None
    cache_dir: str | None = None
    use_cache: bool = True
    workers: int = 0
    on_bad: str = "error"
    pixels: int = 0  # also store each image at this side, for a pixel model (--vision)
    mmap: bool = False  # map the cached graphs from disk (datasets larger than memory)
    hard_negatives: list[str] = field(default_factory=list)  # kinds of hard-negative captions to make
    world: str = "v3"  # the synthetic world's version (data.synthetic.WORLDS)
    held_out_combinations: bool = False  # world v4: keep its held-out combinations out of every scene


def make_featurizer(options: DataOptions) -> Featurizer:
    return Featurizer(options.featurizer, options.backbone, options.backbone_weights)


def make_builder(options: DataOptions, split: str) -> GraphBuilder:
    """The builder of one split (``train``, ``val`` or ``test``) of the chosen dataset; a featurizer
    the dataset cannot honour is refused here, before anything is built."""
    if options.dataset != "synthetic" and (options.world != "v3" or options.held_out_combinations):
        raise ValueError("--world and --held-out-combinations are options of the synthetic world (--dataset synthetic)")
    if options.dataset == "synthetic":
        size = {"train": options.train_size, "val": options.val_size}.get(split, options.val_size)
        negatives = options.hard_negatives if split == "train" else ()
        return SyntheticBuilder(
            split,
            size,
            options.seed,
            graph_type=options.graph_type,
            pixels=options.pixels,
            negatives=negatives,
            featurizer=make_featurizer(options),
            world=options.world,
            held_out=options.held_out_combinations,
        )
    if options.dataset == "coco":
        from data.coco import CocoBuilder

        if not options.coco_root:
            raise ValueError("--dataset coco needs --coco-root DIR")
        coco_split = options.split if split == "train" else options.val_split
        return CocoBuilder(
            options.coco_root,
            coco_split,
            relations=options.relations,
            vg_dir=options.vg_dir,
            karpathy=options.karpathy,
            karpathy_split=split,
            max_objects=options.max_objects,
            max_relations=options.max_relations,
            graph_type=options.graph_type,
            on_bad=options.on_bad,
            pixels=options.pixels,
            featurizer=make_featurizer(options),
        )
    if options.dataset == "images":
        from data.images import ImageFolderBuilder, TokenSource

        if not options.images or not options.captions:
            raise ValueError("--dataset images needs --images DIR and --captions FILE")
        source = TokenSource(
            options.token_source, options.tokens_file, options.maskrcnn_weights, max_objects=options.max_objects
        )
        featurizer = make_featurizer(options)
        return ImageFolderBuilder(
            options.images,
            options.captions,
            source,
            featurizer,
            options.max_relations,
            options.graph_type,
            options.pixels,
        )
    raise ValueError(f"unknown dataset {options.dataset!r}; valid: {', '.join(DATASETS)}")


def in_validation(name: str, fraction: float) -> bool:
    """A stable, name-based choice of held-out images (same for every run and machine)."""
    return int(hashlib.sha1(name.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF < fraction


def hold_out(store: GraphStore, split: str, fraction: float) -> GraphStore:
    """The train or val part of a store split by `in_validation` on the graph names."""
    keep = [k for k, name in enumerate(store.names) if in_validation(name, fraction) == (split != "train")]
    return select_graphs(store, keep)


def _rows(ptr: torch.Tensor, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Row ids of the graphs `index` in a flat tensor with pointer `ptr`, and the new pointer."""
    starts, counts = ptr[index], ptr[index + 1] - ptr[index]
    offsets = counts.cumsum(0) - counts
    within = torch.arange(int(counts.sum())) - offsets.repeat_interleave(counts)
    return starts.repeat_interleave(counts) + within, torch.cat([counts.new_zeros(1), counts.cumsum(0)])


def select_graphs(store: GraphStore, keep: list[int]) -> GraphStore:
    """The graphs `keep` of a store, in that order, gathered a tensor at a time: no graph object is
    made (making each graph and stacking them again took 0.2 s per 1,183 graphs, ~20 s at 118k, and a
    second copy of every graph while stacking; this takes 0.012 s)."""
    index = torch.as_tensor(keep, dtype=torch.long)
    node_rows = {node_type: _rows(ptr, index) for node_type, ptr in store.node_ptr.items()}
    edge_rows = {key: _rows(ptr, index) for key, ptr in store.edge_ptr.items()}
    nodes = {key: value[node_rows[key.split("/")[0]][0]] for key, value in store.nodes.items()}
    edges = {key: value[:, edge_rows[key][0]] for key, value in store.edges.items()}
    negatives = [store.negatives[k] for k in keep] if store.negatives is not None else None
    return GraphStore(
        nodes,
        {node_type: rows[1] for node_type, rows in node_rows.items()},
        edges,
        {key: rows[1] for key, rows in edge_rows.items()},
        [store.captions[k] for k in keep],
        [store.names[k] for k in keep],
        store.meta,
        negatives,
        [store.open_predicates[k] for k in keep],
    )


def open_dataset(options: DataOptions, split: str, progress: bool = True) -> GraphDataset:
    """The graphs of one split, built or loaded from the cache, with the run's transform."""
    builder = make_builder(options, "train" if options.dataset == "images" else split)
    store = load_graphs(
        builder, options.cache_dir, options.use_cache, options.workers, options.on_bad, progress, options.mmap
    )
    if options.dataset == "images":
        store = hold_out(store, split, options.val_fraction)
    if len(store) == 0:
        raise ValueError(f"the {split} split of {options.dataset} holds no graphs")
    return GraphDataset(store, options.graph_type, options.drop_edge_types, options.edge_schema)


def open_twins(options: DataOptions, graphs: GraphStore, progress: bool = True, variants: int = 1) -> Twins:
    """The hard-negative images of the synthetic training split, up to `variants` per scene (each
    reversing another relation), paired with its graphs; a twin a scene does not have is a
    counted skip, and how many scenes have 0, 1, ..., `variants` twins is logged."""
    if options.dataset != "synthetic":
        raise ValueError("hard-negative images exist for the synthetic world only")
    builder = SyntheticTwinBuilder(
        "train",
        options.train_size,
        options.seed,
        graph_type=options.graph_type,
        pixels=options.pixels,
        featurizer=make_featurizer(options),
        world=options.world,
        held_out=options.held_out_combinations,
        variants=variants,
    )
    store = load_graphs(builder, options.cache_dir, options.use_cache, options.workers, "skip", progress)
    twins = Twins.align(store, graphs, variants)
    counts = twins.counts()
    LOG.info(
        "twins per scene (of %d scenes): %s",
        len(graphs),
        ", ".join(f"{n}: {count} ({100 * count / max(1, len(graphs)):.0f} %)" for n, count in enumerate(counts)),
    )
    return twins
