"""Batches of graphs for training and evaluation.

Schema and patch graphs are collated straight from the flat store by
indexing (`GraphStore.collate`); homogeneous graphs go through PyG's collate.
The order of an epoch and the caption drawn for each graph are functions of
(seed, epoch) alone, so a resumed run and a run split over several processes
see exactly the batches a single uninterrupted process would.

Host batches are planned in the main process (`EpochPlans`, which graphs and
which caption draws make batch k) and made by `GraphLoader.make_batch`:
collated from the store, captions, hard negatives and twins' captions
tokenized. With `workers > 0` a `torch.utils.data.DataLoader` runs
`make_batch` in worker processes (the plans are its `batch_sampler`); with 0
it runs in-process. Either way a plan makes the same batch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch_geometric.data import Batch, HeteroData

from data.datasets import GraphDataset, batch_transform, twin_owner
from data.store import GraphStore, host_to_device
from graphs.schema import DEFAULT_EDGE_SCHEMA


def epoch_generator(seed: int, epoch: int, stream: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch * 101 + stream)


# Streams of `epoch_generator`: 0 the order, 1 the caption draws, 2 the trainer's objectives,
# 3 which twin of each graph joins the batch (with several per graph), 4 whether a graph's
# caption is the one its twin reverses (`twin_caption_share`).
TWIN_STREAM = 3
PAIR_STREAM = 4
TWIN_CAPTION_MODES = ("replace", "extra")


@dataclass
class Twins:
    """Hard-negative images of a dataset (`SyntheticTwinBuilder`): `row[k, v]` is the row of
    graph k's twin v in `store`, -1 where it has none ([graphs, twins per graph])."""

    store: GraphStore
    row: torch.Tensor

    @classmethod
    def align(cls, twins: GraphStore, graphs: GraphStore, variants: int = 1) -> Twins:
        """Pair twins with the graphs of their names (`data.datasets.twin_owner`)."""
        position = {name: k for k, name in enumerate(graphs.names)}
        row = torch.full((len(graphs), variants), -1, dtype=torch.long)
        for k, name in enumerate(twins.names):
            owner, variant = twin_owner(name) if variants > 1 else (name, 0)
            if owner not in position:
                raise ValueError(f"twin {name!r} has no graph of that name")
            if variant >= variants:
                raise ValueError(f"twin {name!r} is variant {variant}, and there are {variants} per graph")
            row[position[owner], variant] = k
        return cls(twins, row)

    @property
    def variants(self) -> int:
        return self.row.shape[1]

    def counts(self) -> list[int]:
        """How many graphs have 0, 1, ..., `variants` twins."""
        return torch.bincount((self.row >= 0).sum(1), minlength=self.variants + 1).tolist()

    def pick(self, indices: torch.Tensor, draws: torch.Tensor | None) -> torch.Tensor:
        """One twin row for each graph `indices` (-1 where it has none): with several, the
        `draws` (uniform in [0, 1), one per graph) choose among those it has."""
        rows = self.row[indices]
        if self.variants == 1:
            return rows[:, 0]
        rows = rows.gather(1, (rows < 0).long().argsort(dim=1, stable=True))  # the graph's twins first
        have = (rows >= 0).sum(1)
        choice = (draws * have).long().clamp(max=(have - 1).clamp(min=0))
        return torch.where(have > 0, rows.gather(1, choice[:, None])[:, 0], -1)


def blocked_pairs(
    texts: list[str],
    owners: list[int],
    twins: GraphStore,
    rows: list[int],
    negatives: int,
    extra_owners: list[int] = (),
):
    """Which (image, text) pairs of a batch with twins must not count as negatives, [P, P + E + M].

    Images are the B graphs then their T twins; texts the B captions, the T twin
    captions, E extra captions (each true of the graph `extra_owners[e]`: see
    `GraphLoader`'s `twin_caption_mode`), then M hard negatives. A twin is
    contrasted only with the captions known false of it (its owner's other
    captions may hold for it too) and never with the hard-negative texts (the
    swapped caption is its own); an extra caption is no negative of its own graph.
    """
    extra, count = len(extra_owners), len(rows)
    batch = len(texts) - count - extra
    blocked = torch.zeros(batch + count, batch + count + extra + negatives, dtype=torch.bool)
    blocked[batch:, batch + count + extra :] = True
    for t, (owner, row) in enumerate(zip(owners, rows, strict=True)):
        if texts[owner] not in twins.negatives[row][0]:
            blocked[batch + t, owner] = True
    for e, owner in enumerate(extra_owners):
        blocked[owner, batch + count + e] = True
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
        twins: hard-negative images; each batch then carries `twins` (one
            twin of each of its graphs that has one: with several, one drawn per
            (seed, epoch, graph)), their captions after its own in `texts`, and
            `blocked` (see `blocked_pairs`).
        twin_caption_share: the share of graphs with a twin in a batch told the
            relation their twin reverses (drawn per (seed, epoch, graph)): the
            batch then holds both tellings of that relation, each true of one
            image and false of the other.
        twin_caption_mode: how such a graph is told: ``replace`` (the telling
            is its caption, instead of the drawn one) or ``extra`` (the drawn
            caption stays and the telling is one more text, after the twins'
            captions, whose image is the graph: batches then carry
            `extra_owners`, and the loss scores each extra text against the images).
        tokenize: texts -> token ids; each host batch then also carries
            `text_tokens`, its `texts` and then its `negative_texts` tokenized.
        workers: processes making host batches (0: the main process).
        pin_memory: page-locked host batches, for asynchronous copies to a GPU.
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
        tokenize: Callable[[list[str]], torch.Tensor] | None = None,
        workers: int = 0,
        pin_memory: bool = False,
        twin_caption_share: float = 0.0,
        twin_caption_mode: str = "replace",
    ) -> None:
        if twins is not None and (caption_tokens is not None or not pick_caption):
            raise ValueError("twins need captions picked on the host (no caption_tokens)")
        if not 0.0 <= twin_caption_share <= 1.0 or (twin_caption_share and twins is None):
            raise ValueError(f"twin_caption_share {twin_caption_share}: a share in [0, 1], and twins to pair with")
        if twin_caption_mode not in TWIN_CAPTION_MODES:
            raise ValueError(f"twin_caption_mode {twin_caption_mode!r}: one of {', '.join(TWIN_CAPTION_MODES)}")
        if workers and caption_tokens is not None:
            raise ValueError("a device-resident store makes its batches on the device: no loader workers")
        self.dataset, self.batch_size = dataset, batch_size
        self.shuffle, self.drop_last, self.seed = shuffle, drop_last, seed
        self.rank, self.world_size, self.pick_caption = rank, world_size, pick_caption
        # A collated batch of stored graphs in the run's edge schema, ablated.
        self.drop = batch_transform(getattr(dataset, "edge_schema", DEFAULT_EDGE_SCHEMA), dataset.drop_edge_types)
        self.epoch = 0
        self.caption_tokens = caption_tokens  # (tokens, pointer) of a device-resident store
        self.twins, self.twin_caption_share = twins, twin_caption_share
        self.twin_caption_mode = twin_caption_mode
        self.tokenize = tokenize
        self.workers, self.pin_memory = workers, pin_memory
        self.plans = EpochPlans(self)
        self._workers_loader: torch.utils.data.DataLoader | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    @property
    def global_batch_size(self) -> int:
        return self.batch_size * self.world_size

    def __len__(self) -> int:
        full, rest = divmod(len(self.dataset), self.global_batch_size)
        return full if self.drop_last or rest == 0 else full + 1

    def batch(self, indices: torch.Tensor | list[int]) -> HeteroData:
        if self.dataset.graph_type == "homo":
            graphs = [self.dataset[k] for k in torch.as_tensor(indices).tolist()]
            batch = Batch.from_data_list(graphs)
            batch.max_tokens = max((graph.num_nodes for graph in graphs), default=0)
            return batch
        batch = self.dataset.store.collate(indices)
        if self.drop is None:
            return batch
        longest = batch.max_tokens
        batch = self.drop(batch)
        batch.max_tokens = longest  # dropping edges keeps every token
        return batch

    def iterate(self, start: int = 0) -> Iterator[HeteroData]:
        """Batches of this epoch from the `start`-th on (to resume inside an epoch)."""
        store = getattr(self.dataset, "store", None)
        on_device = store is not None and store.host_counts is not None
        if self.caption_tokens is not None or (on_device and not self.pick_caption):
            yield from self.iterate_on_device(start)
            return
        self.plans.start = start
        if not self.workers:
            for plan in self.plans:
                yield self.make_batch(plan)
            return
        yield from self.workers_loader()

    def workers_loader(self) -> torch.utils.data.DataLoader:
        """The DataLoader of `workers` persistent processes running `make_batch` on the plans."""
        if self._workers_loader is None:
            self._workers_loader = torch.utils.data.DataLoader(
                PlanDataset(),
                batch_sampler=self.plans,
                collate_fn=self.make_batch,
                num_workers=self.workers,
                pin_memory=self.pin_memory,
                persistent_workers=True,
                # its own generator: a DataLoader otherwise draws worker seeds from the global RNG,
                # which would make training depend on the number of workers
                generator=torch.Generator().manual_seed(self.seed),
            )
        return self._workers_loader

    def make_batch(self, plan: BatchPlan) -> HeteroData:
        """The host batch a plan describes: graphs collated, a caption per graph, hard negatives,
        twins, and (with `tokenize`) every text tokenized."""
        batch = self.batch(plan.indices)
        if plan.draws is not None:
            draws = torch.tensor(plan.draws, dtype=torch.float32)  # the float32 draws, exactly
            captions, negatives = self.dataset.store.captions, self.dataset.store.negatives
            chosen = [(i, int(draw * len(captions[i]))) for i, draw in zip(plan.indices, draws, strict=True)]
            batch.texts = [captions[i][k] for i, k in chosen]
            if negatives is not None:  # the hard negatives of each chosen caption
                batch.negative_texts = [text for i, k in chosen for text in negatives[i][k]]
            if self.twins is not None:
                twin_draws = torch.tensor(plan.twin_draws) if plan.twin_draws is not None else None
                pair_draws = torch.tensor(plan.pair_draws) if plan.pair_draws is not None else None
                self.add_twins(batch, torch.tensor(plan.indices, dtype=torch.long), twin_draws, pair_draws)
            if self.tokenize is not None:
                batch.text_tokens = self.tokenize(batch.texts + list(getattr(batch, "negative_texts", [])))
        return batch

    def epoch_order(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """This epoch's order of the graphs and each graph's caption draw (or None)."""
        n = len(self.dataset)
        order = (
            torch.randperm(n, generator=epoch_generator(self.seed, self.epoch, 0)) if self.shuffle else torch.arange(n)
        )
        draws = torch.rand(n, generator=epoch_generator(self.seed, self.epoch, 1)) if self.pick_caption else None
        return order, draws

    def twin_draws(self) -> torch.Tensor | None:
        """This epoch's draw per graph of which of its twins joins the batch (None with one twin per graph)."""
        if self.twins is None or self.twins.variants == 1:
            return None
        return torch.rand(len(self.dataset), generator=epoch_generator(self.seed, self.epoch, TWIN_STREAM))

    def pair_draws(self) -> torch.Tensor | None:
        """This epoch's draw per graph of whether its caption is the one its twin reverses."""
        if self.twins is None or not self.twin_caption_share:
            return None
        return torch.rand(len(self.dataset), generator=epoch_generator(self.seed, self.epoch, PAIR_STREAM))

    def rank_share(self, order, k: int):
        """This process's graphs of batch k (a slice of `order`, tensor or array)."""
        chunk = order[k * self.global_batch_size : (k + 1) * self.global_batch_size]
        per_rank = -(-len(chunk) // self.world_size)
        return chunk[self.rank * per_rank : (self.rank + 1) * per_rank]

    def iterate_on_device(self, start: int) -> Iterator[HeteroData]:
        """Batches from a device-resident store, assembled on the device.

        Every size is taken from host arrays (the epoch's order as numpy, the
        store's host counts), so nothing here waits for the device."""
        order, draws = self.epoch_order()
        host_order = order.numpy()
        store = self.dataset.store
        with_tokens = self.caption_tokens is not None and draws is not None
        if with_tokens:
            tokens, pointer = self.caption_tokens
            device_draws = host_to_device(draws, pointer.device)
        for k in range(start, len(self)):
            host = self.rank_share(host_order, k)
            batch = store.collate(host)
            if self.drop is not None:
                longest = batch.max_tokens
                batch = self.drop(batch)
                batch.max_tokens = longest
            if with_tokens:
                index = host_to_device(host, pointer.device)
                counts = pointer[index + 1] - pointer[index]
                choice = (device_draws[index] * counts).long()
                batch.text_tokens = tokens[pointer[index] + choice]
            yield batch

    def add_twins(
        self,
        batch: HeteroData,
        indices: torch.Tensor,
        draws: torch.Tensor | None = None,
        pair_draws: torch.Tensor | None = None,
    ) -> None:
        rows = self.twins.pick(indices, draws)
        owners = (rows >= 0).nonzero().view(-1).tolist()
        rows = rows[rows >= 0].tolist()
        store = self.twins.store
        extras, extra_owners = [], []
        if pair_draws is not None:  # the owner told the relation its twin reverses (captions[1])
            for owner, row in zip(owners, rows, strict=True):
                if pair_draws[owner] < self.twin_caption_share:
                    if self.twin_caption_mode == "replace":
                        batch.texts[owner] = store.captions[row][1]
                    else:
                        extras.append(store.captions[row][1])
                        extra_owners.append(owner)
        if self.dataset.graph_type == "homo":
            graphs = [self.dataset.transform(store[r]) for r in rows]
            batch.twins = Batch.from_data_list(graphs)
            batch.twins.max_tokens = max((graph.num_nodes for graph in graphs), default=0)
        else:
            twins = store.collate(rows)
            longest = twins.max_tokens
            batch.twins = self.drop(twins) if self.drop is not None else twins
            batch.twins.max_tokens = longest
        batch.texts = batch.texts + [store.captions[r][0] for r in rows] + extras
        if self.twin_caption_mode == "extra":
            batch.extra_owners = torch.tensor(extra_owners, dtype=torch.long)
        count = len(getattr(batch, "negative_texts", []))
        batch.blocked = blocked_pairs(batch.texts, owners, store, rows, count, extra_owners)

    def __iter__(self):
        return self.iterate()


@dataclass
class BatchPlan:
    """Batch k of an epoch: its graphs (this process's share), their caption draws and, with
    several twins per graph, the draws choosing their twins. Plain lists: plans travel to
    loader workers by pickling."""

    position: int
    indices: list[int]
    draws: list[float] | None
    twin_draws: list[float] | None = None
    pair_draws: list[float] | None = None


class EpochPlans(torch.utils.data.Sampler):
    """The plans of a loader's current epoch from batch `start` on: the `batch_sampler` of
    its DataLoader, read in the main process when an iteration begins."""

    def __init__(self, loader: GraphLoader) -> None:
        self.loader, self.start = loader, 0

    def __len__(self) -> int:
        return len(self.loader) - self.start

    def __iter__(self) -> Iterator[BatchPlan]:
        order, draws = self.loader.epoch_order()
        twin_draws, pair_draws = self.loader.twin_draws(), self.loader.pair_draws()
        for k in range(self.start, len(self.loader)):
            indices = self.loader.rank_share(order, k)
            yield BatchPlan(
                k,
                indices.tolist(),
                draws[indices].tolist() if draws is not None else None,
                twin_draws[indices].tolist() if twin_draws is not None else None,
                pair_draws[indices].tolist() if pair_draws is not None else None,
            )


class PlanDataset(torch.utils.data.Dataset):
    """A DataLoader's dataset that hands each plan on as it is: `make_batch` does the work."""

    def __getitems__(self, plan: BatchPlan) -> BatchPlan:
        return plan

    def __getitem__(self, index: int):
        raise TypeError("a PlanDataset is read by plans (a batch_sampler), not by index")

    def __len__(self) -> int:
        return 0
