"""Batches of graphs for training and evaluation.

Schema and patch graphs are collated straight from the flat store by
indexing (`GraphStore.collate`); homogeneous graphs go through PyG's collate.
The order of an epoch and the caption drawn for each graph are functions of
(seed, epoch) alone, so a resumed run and a run split over several processes
see exactly the batches a single uninterrupted process would.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch_geometric.data import Batch, HeteroData

from data.datasets import GraphDataset, batch_transform
from data.store import GraphStore
from graphs.schema import DEFAULT_EDGE_SCHEMA


def epoch_generator(seed: int, epoch: int, stream: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch * 101 + stream)


@dataclass
class Twins:
    """Hard-negative images of a dataset (`SyntheticTwinBuilder`): `row[k]` is the row of
    graph k's twin in `store`, -1 where it has none."""

    store: GraphStore
    row: torch.Tensor

    @classmethod
    def align(cls, twins: GraphStore, graphs: GraphStore) -> Twins:
        """Pair twins with the graphs of the same name."""
        position = {name: k for k, name in enumerate(graphs.names)}
        row = torch.full((len(graphs),), -1, dtype=torch.long)
        for k, name in enumerate(twins.names):
            if name not in position:
                raise ValueError(f"twin {name!r} has no graph of that name")
            row[position[name]] = k
        return cls(twins, row)


def blocked_pairs(texts: list[str], owners: list[int], twins: GraphStore, rows: list[int], negatives: int):
    """Which (image, text) pairs of a batch with twins must not count as negatives, [P, P + M].

    Images are the B graphs then their T twins; texts the B captions, the T twin
    captions, then M hard negatives. A twin is contrasted only with the captions
    known false of it (its owner's other captions may hold for it too) and never
    with the hard-negative texts (the swapped caption is its own).
    """
    batch, count = len(texts) - len(rows), len(rows)
    blocked = torch.zeros(batch + count, batch + count + negatives, dtype=torch.bool)
    blocked[batch:, batch + count :] = True
    for t, (owner, row) in enumerate(zip(owners, rows, strict=True)):
        if texts[owner] not in twins.negatives[row][0]:
            blocked[batch + t, owner] = True
    return blocked


class GraphLoader:
    """Iterate a `GraphDataset` in batches.

    Args:
        dataset: the graphs.
        batch_size: graphs per batch in each process.
        shuffle: a new order every epoch (see `set_epoch`), drawn from `seed`.
        drop_last: leave out a last, smaller batch.
        seed: the source of orders and caption choices.
        rank, world_size: this process's share of each global batch of
            `batch_size * world_size` graphs (distributed training).
        pick_caption: give each batch `texts`, one caption per graph, drawn
            per (seed, epoch, graph).
        caption_tokens: every caption tokenized, with a per-graph pointer
            (`GraphStore.caption_tokens`); batches then carry `text_tokens`
            gathered on the device instead of `texts`.
        twins: hard-negative images; each batch then carries `twins` (the
            twins of its graphs that have one), their captions after its own in
            `texts`, and `blocked` (see `blocked_pairs`).
    """

    def __init__(
        self,
        dataset: GraphDataset,
        batch_size: int,
        shuffle: bool = False,
        drop_last: bool = False,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        pick_caption: bool = False,
        caption_tokens: tuple[torch.Tensor, torch.Tensor] | None = None,
        twins: Twins | None = None,
    ) -> None:
        if twins is not None and (caption_tokens is not None or not pick_caption):
            raise ValueError("twins need captions picked on the host (no caption_tokens)")
        self.dataset, self.batch_size = dataset, batch_size
        self.shuffle, self.drop_last, self.seed = shuffle, drop_last, seed
        self.rank, self.world_size, self.pick_caption = rank, world_size, pick_caption
        # A collated batch of stored graphs in the run's edge schema, ablated.
        self.drop = batch_transform(getattr(dataset, "edge_schema", DEFAULT_EDGE_SCHEMA), dataset.drop_edge_types)
        self.epoch = 0
        self.caption_tokens = caption_tokens  # (tokens, pointer) of a device-resident store
        self.twins = twins

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    @property
    def global_batch_size(self) -> int:
        return self.batch_size * self.world_size

    def __len__(self) -> int:
        full, rest = divmod(len(self.dataset), self.global_batch_size)
        return full if self.drop_last or rest == 0 else full + 1

    def batch(self, indices: torch.Tensor) -> HeteroData:
        if self.dataset.graph_type == "homo":
            return Batch.from_data_list([self.dataset[k] for k in indices.tolist()])
        batch = self.dataset.store.collate(indices)
        return self.drop(batch) if self.drop is not None else batch

    def iterate(self, start: int = 0):
        """Batches of this epoch from the `start`-th on (to resume inside an epoch)."""
        n = len(self.dataset)
        order = (
            torch.randperm(n, generator=epoch_generator(self.seed, self.epoch, 0)) if self.shuffle else torch.arange(n)
        )
        draws = torch.rand(n, generator=epoch_generator(self.seed, self.epoch, 1)) if self.pick_caption else None
        for k in range(start, len(self)):
            chunk = order[k * self.global_batch_size : (k + 1) * self.global_batch_size]
            per_rank = -(-len(chunk) // self.world_size)
            indices = chunk[self.rank * per_rank : (self.rank + 1) * per_rank]
            batch = self.batch(indices)
            if draws is not None and self.caption_tokens is not None:
                tokens, pointer = self.caption_tokens
                index = indices.to(pointer.device)
                counts = pointer[index + 1] - pointer[index]
                choice = (draws.to(pointer.device)[index] * counts).long()
                batch.text_tokens = tokens[pointer[index] + choice]
            elif draws is not None:
                captions, negatives = self.dataset.store.captions, self.dataset.store.negatives
                chosen = [(i, int(draws[i] * len(captions[i]))) for i in indices.tolist()]
                batch.texts = [captions[i][k] for i, k in chosen]
                if negatives is not None:  # the hard negatives of each chosen caption
                    batch.negative_texts = [text for i, k in chosen for text in negatives[i][k]]
                if self.twins is not None:
                    self.add_twins(batch, indices)
            yield batch

    def add_twins(self, batch: HeteroData, indices: torch.Tensor) -> None:
        rows = self.twins.row[indices]
        owners = (rows >= 0).nonzero().view(-1).tolist()
        rows = rows[rows >= 0].tolist()
        store = self.twins.store
        if self.dataset.graph_type == "homo":
            batch.twins = Batch.from_data_list([self.dataset.transform(store[r]) for r in rows])
        else:
            twins = store.collate(rows)
            batch.twins = self.drop(twins) if self.drop is not None else twins
        texts = batch.texts
        batch.texts = texts + [store.captions[r][0] for r in rows]
        count = len(getattr(batch, "negative_texts", []))
        batch.blocked = blocked_pairs(batch.texts, owners, store, rows, count)

    def __iter__(self):
        return self.iterate()
