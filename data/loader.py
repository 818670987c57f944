"""Batches of graphs for training and evaluation.

Schema and patch graphs are collated straight from the flat store by
indexing (`GraphStore.collate`); homogeneous graphs go through PyG's collate.
"""

from __future__ import annotations

import torch
from torch_geometric.data import Batch, HeteroData

from data.datasets import GraphDataset
from graphs.transforms import DropEdgeTypes


class GraphLoader:
    """Iterate a `GraphDataset` in batches.

    Args:
        dataset: the graphs.
        batch_size: graphs per batch.
        shuffle: a new order every pass, drawn from `generator`.
        drop_last: leave out a last, smaller batch.
        generator: the random source of the order (seed it for exact runs).
    """

    def __init__(
        self,
        dataset: GraphDataset,
        batch_size: int,
        shuffle: bool = False,
        drop_last: bool = False,
        generator: torch.Generator | None = None,
    ) -> None:
        self.dataset, self.batch_size = dataset, batch_size
        self.shuffle, self.drop_last, self.generator = shuffle, drop_last, generator
        self.drop = DropEdgeTypes(dataset.drop_edge_types) if dataset.drop_edge_types else None

    def __len__(self) -> int:
        full, rest = divmod(len(self.dataset), self.batch_size)
        return full if self.drop_last or rest == 0 else full + 1

    def batch(self, indices: torch.Tensor) -> HeteroData:
        if self.dataset.graph_type == "homo":
            return Batch.from_data_list([self.dataset[k] for k in indices.tolist()])
        batch = self.dataset.store.collate(indices)
        return self.drop(batch) if self.drop is not None else batch

    def __iter__(self):
        n = len(self.dataset)
        order = torch.randperm(n, generator=self.generator) if self.shuffle else torch.arange(n)
        for k in range(len(self)):
            yield self.batch(order[k * self.batch_size : (k + 1) * self.batch_size])
