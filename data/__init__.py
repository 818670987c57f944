"""Datasets: the embedded synthetic world (default)."""

from data.datasets import DATASETS, DEFAULT_SIZES, SyntheticGraphs
from data.synthetic import Scene, generate_scene, make_scene

__all__ = ["DATASETS", "DEFAULT_SIZES", "Scene", "SyntheticGraphs", "generate_scene", "make_scene"]
