"""Datasets of graphs that carry their own captions (`graph.captions`)."""

from __future__ import annotations

from collections.abc import Sequence

from torch.utils.data import Dataset
from torch_geometric.data import Data, HeteroData
from tqdm.auto import tqdm

from data.synthetic import make_scene
from graphs.build import build_typed_graph

DATASETS = ("synthetic",)
DEFAULT_SIZES = {"train": 8000, "val": 1000, "test": 1000}


class SyntheticGraphs(Dataset):
    """Graphs of the embedded synthetic world, built once in memory.

    Args:
        split: ``train``, ``val`` or ``test``; splits never share a scene.
        size: number of scenes.
        seed: the world's seed.
        graph_type: ``hetero``, ``homo`` or ``patch``.
        drop_edge_types: edge types emptied in every graph (ablation).
        canvas: image side in pixels.
        progress: show a progress bar while building.
    """

    def __init__(
        self,
        split: str,
        size: int,
        seed: int = 0,
        graph_type: str = "hetero",
        drop_edge_types: Sequence[str] = (),
        canvas: int = 96,
        progress: bool = True,
    ) -> None:
        self.split, self.seed, self.graph_type = split, seed, graph_type
        self.graphs: list[HeteroData | Data] = []
        for index in tqdm(
            range(size), desc=f"building {split} graphs ({graph_type})", disable=not progress, leave=False
        ):
            scene = make_scene(seed, split, index, canvas)
            graph = build_typed_graph(
                graph_type, scene.image, scene.masks, scene.labels, scene.triplets, drop_edge_types
            )
            graph.captions = scene.captions
            self.graphs.append(graph)

    def __len__(self) -> int:
        return len(self.graphs)

    def __getitem__(self, index: int) -> HeteroData | Data:
        return self.graphs[index]
