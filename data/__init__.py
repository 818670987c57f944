"""Datasets: the synthetic world (default), COCO, image folders; the graph cache and store."""

import graphs  # noqa: F401  first: it silences PyG's import-time warnings before data.cache imports PyG
from data.cache import BadItem, GraphCache
from data.datasets import DEFAULT_SIZES, GraphDataset, SyntheticBuilder, SyntheticGraphs
from data.sources import DATASETS, DataOptions, open_dataset
from data.store import GraphStore
from data.synthetic import Scene, generate_scene, make_scene

__all__ = [
    "DATASETS",
    "DEFAULT_SIZES",
    "BadItem",
    "DataOptions",
    "GraphCache",
    "GraphDataset",
    "GraphStore",
    "Scene",
    "SyntheticBuilder",
    "SyntheticGraphs",
    "generate_scene",
    "make_scene",
    "open_dataset",
]
