"""Datasets of graphs that carry their own captions (`graph.captions`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset
from torch_geometric.data import Data, HeteroData

from data.cache import BadItem, GraphBuilder, GraphCache, build_uncached
from data.negatives import hard_negatives, held_out_in_text, statement_holds, twin_scenes
from data.store import GraphStore
from data.synthetic import DEFAULT_WORLD, WORLDS, Scene, check_world, make_scene
from graphs.build import build_graph, build_patch_graph
from graphs.features import square_pixels
from graphs.featurizers import Featurizer
from graphs.schema import DEFAULT_EDGE_SCHEMA, GRAPH_TYPES, IMAGE, check_edge_schema
from graphs.seed import ToEdgeSchema
from graphs.transforms import DropEdgeTypes, ToHomogeneous

DEFAULT_SIZES = {"train": 8000, "val": 1000, "test": 1000}


def graph_transform(
    graph_type: str, drop_edge_types: Sequence[str] = (), edge_schema: str = DEFAULT_EDGE_SCHEMA
) -> Callable | None:
    """What happens to a stored graph on access: the edge schema, ablation, then the homogeneous view."""
    if graph_type not in GRAPH_TYPES:
        raise ValueError(f"unknown graph type {graph_type!r}; valid: {', '.join(GRAPH_TYPES)}")
    steps = []
    if check_edge_schema(edge_schema) != DEFAULT_EDGE_SCHEMA:
        steps.append(ToEdgeSchema(edge_schema))
    if drop_edge_types:
        steps.append(DropEdgeTypes(drop_edge_types, edge_schema))
    if graph_type == "homo":
        steps.append(ToHomogeneous())
    if not steps:
        return None

    def transform(data: HeteroData) -> HeteroData | Data:
        for step in steps:
            data = step(data)
        return data

    return transform


def stored_graph_type(graph_type: str) -> str:
    """Homogeneous graphs are stored as schema graphs and converted on access."""
    return "patch" if graph_type == "patch" else "hetero"


def batch_transform(edge_schema: str = DEFAULT_EDGE_SCHEMA, drop_edge_types: Sequence[str] = ()) -> Callable | None:
    """What happens to a collated batch of stored graphs: the edge schema, then ablation."""
    return graph_transform("hetero", drop_edge_types, edge_schema)


def check_featurizer(featurizer: Featurizer, graph_type: str, dataset: str, has_features: bool = False) -> None:
    """Refuse a featurizer a builder cannot honour, before anything is built.

    Patch graphs have no object tokens (their tokens are pixel patches), and
    ``precomputed`` needs per-mask features, which only a tokens file gives.
    """
    if featurizer.kind == "pixels":
        return
    if stored_graph_type(graph_type) == "patch":
        raise ValueError(
            f"--featurizer {featurizer.kind} describes object tokens, and patch graphs have none "
            "(their tokens are pixel patches): use --featurizer pixels with --graph-type patch"
        )
    if featurizer.kind == "precomputed" and not has_features:
        raise ValueError(
            f"--featurizer precomputed reads per-mask features from a tokens file "
            f"(--dataset images --token-source tokens); {dataset} has none"
        )


def featurized_graph(
    image: np.ndarray, masks, labels, triplets, featurizer: Featurizer, max_relations: int | None = None
) -> HeteroData:
    """A schema graph whose object and image tokens carry `featurizer`'s features.

    `masks` is a bool array [n, H, W] or a `graphs.masks.Masks`; the pixel
    featurizer is build_graph's own (masked crops), the others are computed here.
    """
    object_x = image_x = None
    if featurizer.kind != "pixels":  # `Masks` stay boxed: mask_pool weighs the cells from the boxes
        object_x, image_x = featurizer(image, masks)
    return build_graph(image, masks, labels, triplets, max_relations=max_relations, object_x=object_x, image_x=image_x)


class GraphDataset(Dataset):
    """Graphs of a `GraphStore` as a run sees them: in the chosen edge schema,
    ablated, and homogeneous for `homo`.

    Args:
        store: the graphs as stored (semgraph schema graphs, or patch grids).
        graph_type: ``hetero``, ``homo`` or ``patch``.
        drop_edge_types: edge types (of `edge_schema`) emptied on access.
        edge_schema: ``semgraph`` (as stored) or ``seed`` (made on access).
    """

    def __init__(
        self,
        store: GraphStore,
        graph_type: str = "hetero",
        drop_edge_types: Sequence[str] = (),
        edge_schema: str = DEFAULT_EDGE_SCHEMA,
    ) -> None:
        self.store = store
        self.graph_type, self.drop_edge_types = graph_type, list(drop_edge_types)
        self.edge_schema = edge_schema
        self.transform = graph_transform(graph_type, drop_edge_types, edge_schema)

    def __len__(self) -> int:
        return len(self.store)

    def __getitem__(self, index: int) -> HeteroData | Data:
        graph = self.store[index]
        return self.transform(graph) if self.transform is not None else graph


class SyntheticBuilder(GraphBuilder):
    """Graphs of the embedded synthetic world (see data.synthetic): `world` "v3" or "v4";
    `held_out` keeps v4's held-out combinations out of every scene and hard negative."""

    def __init__(
        self,
        split: str,
        size: int,
        seed: int = 0,
        canvas: int = 96,
        graph_type: str = "hetero",
        patch_grid: int = 8,
        pixels: int = 0,
        negatives: Sequence[str] = (),
        featurizer: Featurizer | None = None,
        world: str = DEFAULT_WORLD,
        held_out: bool = False,
    ) -> None:
        check_world(world, held_out)
        self.split, self.size, self.seed, self.canvas, self.pixels = split, size, seed, canvas, pixels
        self.world, self.held_out = world, held_out
        self.negatives = tuple(negatives)
        self.graph_type, self.patch_grid = stored_graph_type(graph_type), patch_grid
        self.featurizer = featurizer or Featurizer()
        check_featurizer(self.featurizer, graph_type, "the synthetic world")

    def __len__(self) -> int:
        return self.size

    def fingerprint(self) -> dict:
        return {
            "source": "synthetic",
            "world_version": WORLDS[self.world],
            **({"held_out_combinations": True} if self.held_out else {}),
            "split": self.split,
            "size": self.size,
            "seed": self.seed,
            "canvas": self.canvas,
            "graph_type": self.graph_type,
            "patch_grid": self.patch_grid if self.graph_type == "patch" else None,
            "featurizer": self.featurizer.fingerprint(),
            "pixels": self.pixels,
            "negatives": list(self.negatives),
        }

    def scene(self, index: int) -> Scene:
        return make_scene(self.seed, self.split, index, self.canvas, self.world, self.held_out)

    def image_and_masks(self, index: int) -> tuple[np.ndarray, np.ndarray | None]:
        scene = self.scene(index)
        return scene.image, scene.masks if self.graph_type == "hetero" else None

    def scene_graph(self, scene: Scene) -> HeteroData:
        if self.graph_type == "patch":
            graph = build_patch_graph(scene.image, self.patch_grid)
        else:
            graph = featurized_graph(scene.image, scene.masks, scene.labels, scene.triplets, self.featurizer, None)
        if self.pixels:
            graph[IMAGE].pixels = square_pixels(scene.image, self.pixels)
        return graph

    def build(self, index: int) -> tuple[HeteroData, str]:
        scene = self.scene(index)
        graph = self.scene_graph(scene)
        graph.captions = scene.captions
        if self.negatives:
            graph.negatives = [
                [n for n in hard_negatives(scene, caption, self.negatives, index) if not self.leaks(n)]
                for caption in scene.captions
            ]
        return graph, f"{self.split}/{index}"

    def leaks(self, text: str) -> bool:
        """Whether a made-up text would show the model a held-out combination."""
        return self.held_out and held_out_in_text(text)


class SyntheticTwinBuilder(SyntheticBuilder):
    """Hard-negative images of the synthetic world: for scene k, the graph of its twin
    (`data.negatives.twin_scene`: one relation reversed), named like the scene.

    With `variants` K > 1, up to K twins per scene (`twin_scenes`, each reversing
    another relation): item k * K + v is twin v of scene k, named like the scene
    with `#v` after it from v = 1 on (`twin_name`). With K = 1 (the default) the
    items, names and cache key are the single twin's.

    The twin's one caption is true of it and false of the scene; its `negatives`
    hold the scene's own captions that are false of the twin (so those, and only
    those, may contrast the twin). A twin the scene does not have is a counted skip.
    """

    def __init__(self, *args, variants: int = 1, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if variants < 1:
            raise ValueError(f"twins per scene must be at least 1, not {variants}")
        self.variants = variants
        self._made: tuple[int, list] | None = None  # the last scene's twins (its K items are built in a row)

    def __len__(self) -> int:
        return self.size * self.variants

    def fingerprint(self) -> dict:
        fingerprint = {**super().fingerprint(), "source": "synthetic-twins", "negatives": []}
        if self.variants > 1:
            fingerprint["twins_per_scene"] = self.variants
        return fingerprint

    def twin(self, index: int) -> tuple[Scene, Scene, str, str]:
        """(scene, its twin, the twin's caption, the scene's caption of the relation the twin
        reverses) of item `index`; BadItem when the scene has no such twin."""
        scene_index, variant = divmod(index, self.variants)
        scene = self.scene(scene_index)
        if self._made is None or self._made[0] != scene_index:
            self._made = scene_index, twin_scenes(scene, self.seed, self.canvas, self.held_out, self.variants)
        made = self._made[1]
        if variant >= len(made):
            which = "no relation" if not made else f"only {len(made)} relation(s)"
            raise BadItem(f"{self.split}/{scene_index}: {which} can be reversed cleanly")
        twin, reversed_caption, twin_caption = made[variant]
        return scene, twin, twin_caption, reversed_caption

    def image_and_masks(self, index: int) -> tuple[np.ndarray, np.ndarray | None]:
        _, twin, _, _ = self.twin(index)
        return twin.image, twin.masks if self.graph_type == "hetero" else None

    def build(self, index: int) -> tuple[HeteroData, str]:
        scene, twin, twin_caption, reversed_caption = self.twin(index)
        graph = self.scene_graph(twin)
        # captions[1]: the scene's caption of the relation this twin reverses, true of the scene and
        # false of the twin (`--twin-caption-share` gives it to the scene in place of a drawn caption)
        graph.captions = [twin_caption, reversed_caption]
        false_of_twin = [c for c in scene.captions if not statement_holds(twin, c)]
        graph.negatives = [false_of_twin + [reversed_caption] * (reversed_caption not in false_of_twin), []]
        scene_index, variant = divmod(index, self.variants)
        return graph, twin_name(f"{self.split}/{scene_index}", variant)


def twin_name(name: str, variant: int) -> str:
    """The stored name of twin `variant` of the graph `name`: the graph's own for the first."""
    return name if variant == 0 else f"{name}#{variant}"


def twin_owner(name: str) -> tuple[str, int]:
    """(the graph's name, the variant) of a stored twin's name (`twin_name` undone)."""
    owner, mark, variant = name.rpartition("#")
    if mark and variant.isdigit():
        return owner, int(variant)
    return name, 0


def load_graphs(
    builder: GraphBuilder,
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
    workers: int = 0,
    on_bad: str = "error",
    progress: bool = True,
    mmap: bool = False,
) -> GraphStore:
    """The builder's graphs, from the cache when `use_cache` (building what is missing);
    `mmap` maps them from disk instead of loading them into memory."""
    if not use_cache:
        if mmap:
            raise ValueError("memory-mapped graphs live in the cache: --mmap needs the cache (drop --no-cache)")
        return build_uncached(builder, on_bad)
    store, _ = GraphCache(cache_dir).load_or_build(builder, workers, on_bad, progress, mmap=mmap)
    return store


class SyntheticGraphs(GraphDataset):
    """The synthetic world as a dataset (built in memory, no cache): tests and notebooks."""

    def __init__(
        self,
        split: str,
        size: int,
        seed: int = 0,
        graph_type: str = "hetero",
        drop_edge_types: Sequence[str] = (),
        canvas: int = 96,
        progress: bool = False,
        edge_schema: str = DEFAULT_EDGE_SCHEMA,
    ) -> None:
        store = build_uncached(SyntheticBuilder(split, size, seed, canvas, graph_type))
        super().__init__(store, graph_type, drop_edge_types, edge_schema)
