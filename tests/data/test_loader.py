import torch
from torch_geometric.data import Data

from data import SyntheticGraphs
from data.datasets import GraphDataset
from data.loader import GraphLoader
from graphs.schema import NEAR, SUBJECT_OF


def test_batches_cover_every_graph_once_in_a_seeded_order():
    dataset = SyntheticGraphs("val", 10)
    loader = GraphLoader(dataset, 4, shuffle=True, seed=3)
    assert len(loader) == 3
    names = [n for batch in loader for n in batch.name]
    assert sorted(names) == sorted(dataset.store.names)
    again = GraphLoader(dataset, 4, shuffle=True, seed=3)
    assert [n for batch in again for n in batch.name] == names
    again.set_epoch(1)
    assert [n for batch in again for n in batch.name] != names
    assert len(GraphLoader(dataset, 4, drop_last=True)) == 2


def test_resuming_inside_an_epoch_and_sharding_see_the_same_batches():
    dataset = SyntheticGraphs("val", 12)
    whole = GraphLoader(dataset, 4, shuffle=True, seed=5, pick_caption=True)
    whole.set_epoch(2)
    batches = [(b.name, b.texts) for b in whole]
    assert [(b.name, b.texts) for b in whole.iterate(start=1)] == batches[1:]
    shards = [GraphLoader(dataset, 2, shuffle=True, seed=5, rank=r, world_size=2, pick_caption=True) for r in (0, 1)]
    for shard in shards:
        shard.set_epoch(2)
    for (names, texts), first, second in zip(batches, *shards, strict=True):
        assert first.name + second.name == names and first.texts + second.texts == texts
    for names, texts in batches:
        for name, text in zip(names, texts, strict=True):
            assert text in dataset.store.captions[dataset.store.names.index(name)]


def test_dropped_edge_types_are_empty_in_batches():
    dataset = GraphDataset(SyntheticGraphs("val", 6).store, "hetero", ["near", "subject_of"])
    batch = next(iter(GraphLoader(dataset, 6)))
    assert batch[NEAR].edge_index.shape == (2, 0) and batch[SUBJECT_OF].edge_index.shape == (2, 0)
    assert batch["relation", "has_object", "object"].edge_index.size(1) > 0


def test_homogeneous_batches():
    dataset = GraphDataset(SyntheticGraphs("val", 5).store, "homo")
    batch = next(iter(GraphLoader(dataset, 5)))
    assert isinstance(batch, Data) and batch.num_graphs == 5 and len(batch.captions) == 5


def test_device_resident_batches_match_and_carry_tokenized_captions():
    from models.text import TextEncoder, trim_padding

    dataset = SyntheticGraphs("val", 10)
    encoder = TextEncoder({"context_length": 32, "vocab_size": 49408, "width": 16, "heads": 2, "layers": 1}, 8)
    host = GraphLoader(dataset, 4, shuffle=True, seed=1, pick_caption=True)
    tokens = dataset.store.caption_tokens(encoder.tokenize, "cpu")
    resident_set = GraphDataset(dataset.store.to("cpu"), "hetero")
    resident = GraphLoader(resident_set, 4, shuffle=True, seed=1, pick_caption=True, caption_tokens=tokens)
    for a, b in zip(host, resident, strict=True):
        assert torch.equal(a["object"].x, b["object"].x)
        assert torch.equal(
            a["relation", "has_object", "object"].edge_index, b["relation", "has_object", "object"].edge_index
        )
        # resident tokens are cut to the longest caption of the dataset, a batch's to its own longest
        assert b.text_tokens.shape[1] >= encoder.tokenize(a.texts).shape[1]
        assert torch.equal(encoder.tokenize(a.texts), trim_padding(b.text_tokens))
        assert "captions" not in b
