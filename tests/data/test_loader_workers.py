"""Host batches through a DataLoader: the same batches with and without worker processes."""

import pytest
import torch
from open_clip.tokenizer import SimpleTokenizer

from data.datasets import GraphDataset, SyntheticBuilder, SyntheticTwinBuilder
from data.loader import GraphLoader, Twins
from data.negatives import twin_scene
from data.store import GraphStore
from data.synthetic import make_scene
from graphs.schema import EDGE_TYPES, NODE_TYPES

SIZE = 24


@pytest.fixture(scope="module")
def world():
    """A store with hard negatives and the twins of its scenes."""
    builder, twin_builder = SyntheticBuilder("train", SIZE, negatives=["relation"]), SyntheticTwinBuilder("train", SIZE)
    store = GraphStore.from_graphs(*zip(*(builder.build(k) for k in range(SIZE)), strict=True))
    with_twin = [k for k in range(SIZE) if twin_scene(make_scene(0, "train", k)) is not None]
    twin_graphs = [twin_builder.build(k) for k in with_twin]
    twins = Twins.align(GraphStore.from_graphs(*zip(*twin_graphs, strict=True)), store)
    return store, twins


def make_loader(world, workers: int) -> GraphLoader:
    store, twins = world
    loader = GraphLoader(
        GraphDataset(store, "hetero", ["near"]),
        5,
        shuffle=True,
        drop_last=True,
        seed=7,
        pick_caption=True,
        twins=twins,
        tokenize=SimpleTokenizer(context_length=32),
        workers=workers,
    )
    loader.set_epoch(3)
    return loader


def assert_same_batch(first, second) -> None:
    for node_type in NODE_TYPES:
        for key in ("x", "box", "batch", "ptr"):
            assert torch.equal(first[node_type][key], second[node_type][key]), (node_type, key)
    for edge_type in EDGE_TYPES:
        assert torch.equal(first[edge_type].edge_index, second[edge_type].edge_index), edge_type
    assert first.name == second.name and first.texts == second.texts
    assert first.negative_texts == second.negative_texts
    assert torch.equal(first.text_tokens, second.text_tokens)
    assert torch.equal(first.blocked, second.blocked)
    assert first.twins.name == second.twins.name
    assert torch.equal(first.twins["object"].x, second.twins["object"].x)
    assert first.max_tokens == second.max_tokens == max(
        sum(int((first[t].batch == g).sum()) for t in NODE_TYPES) for g in range(first.num_graphs)
    )


def test_workers_make_the_batches_the_main_process_makes(world):
    in_process = list(make_loader(world, 0).iterate())
    loader = make_loader(world, 2)
    with_workers = list(loader.iterate())
    assert len(in_process) == len(with_workers) == SIZE // 5
    for first, second in zip(in_process, with_workers, strict=True):
        assert_same_batch(first, second)
    tokens = in_process[0].text_tokens
    assert len(tokens) == len(in_process[0].texts) + len(in_process[0].negative_texts)
    assert in_process[0].twins.num_graphs > 0  # the twins path ran
    # persistent workers, a new epoch: the plans are read in the main process when iteration begins
    loader.set_epoch(4)
    again = make_loader(world, 0)
    again.set_epoch(4)
    for first, second in zip(again.iterate(), loader.iterate(), strict=True):
        assert_same_batch(first, second)


@pytest.mark.parametrize("workers", [0, 2])
def test_a_resumed_iteration_is_the_tail_of_an_uninterrupted_one(world, workers):
    whole = list(make_loader(world, 0).iterate())
    loader = make_loader(world, workers)
    tail = list(loader.iterate(start=2))
    assert len(tail) == len(whole) - 2
    for first, second in zip(whole[2:], tail, strict=True):
        assert_same_batch(first, second)
    # and the same loader, asked for the whole epoch after that, starts at batch 0 again
    for first, second in zip(whole, loader.iterate(), strict=True):
        assert_same_batch(first, second)


def test_the_loader_does_not_draw_from_the_global_rng(world):
    torch.manual_seed(0)
    list(make_loader(world, 2).iterate())
    after = torch.rand(1)
    torch.manual_seed(0)
    assert torch.equal(torch.rand(1), after)
