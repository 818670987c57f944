import pytest
import torch
from torch_geometric.data import Batch

from data import GraphStore, SyntheticGraphs
from graphs import EDGE_TYPES, NODE_TYPES


def graphs(count=7):
    return [SyntheticGraphs("val", count).store[k] for k in range(count)]


def assert_same_graph(a, b):
    assert tuple(a.node_types) == NODE_TYPES and tuple(b.node_types) == NODE_TYPES
    for node_type in NODE_TYPES:
        assert set(a[node_type].keys()) == set(b[node_type].keys())
        for key in a[node_type].keys():
            assert torch.equal(a[node_type][key], b[node_type][key]), (node_type, key)
    for edge_type in EDGE_TYPES:
        assert torch.equal(a[edge_type].edge_index, b[edge_type].edge_index), edge_type
    assert a.captions == b.captions


def test_store_round_trips_every_graph(tmp_path):
    originals = graphs()
    store = GraphStore.from_graphs(originals, [f"g{k}" for k in range(7)])
    store.save(tmp_path / "s.pt")
    loaded = GraphStore.load(tmp_path / "s.pt")
    assert len(loaded) == 7 and loaded.names[3] == "g3"
    for k, graph in enumerate(originals):
        assert_same_graph(loaded[k], graph)
    assert loaded[-1].name == "g6"


def test_concat_keeps_order_and_offsets():
    originals = graphs(5)
    joined = GraphStore.concat([GraphStore.from_graphs(originals[:2]), GraphStore.from_graphs(originals[2:])])
    for k, graph in enumerate(originals):
        assert_same_graph(joined[k], graph)
    batch = Batch.from_data_list([joined[k] for k in range(5)])
    assert batch["object"].num_nodes == sum(g["object"].num_nodes for g in originals)


def test_loading_something_else_is_a_clear_error(tmp_path):
    (tmp_path / "junk.pt").write_bytes(b"\x00" * 10)
    with pytest.raises(ValueError, match="junk.pt: not a readable graph store"):
        GraphStore.load(tmp_path / "junk.pt")
    torch.save({"format": "other"}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="other.pt: not a semgraph graph store"):
        GraphStore.load(tmp_path / "other.pt")


def test_collate_equals_pyg_batching():
    originals = graphs(9)
    store = GraphStore.from_graphs(originals)
    order = [4, 0, 8, 3, 3]
    fast = store.collate(order)
    slow = Batch.from_data_list([store[k] for k in order])
    assert fast.num_graphs == slow.num_graphs == 5
    for node_type in NODE_TYPES:
        for key in ("x", "box", "batch", "ptr"):
            assert torch.equal(fast[node_type][key], slow[node_type][key]), (node_type, key)
    for edge_type in EDGE_TYPES:
        assert torch.equal(fast[edge_type].edge_index, slow[edge_type].edge_index), edge_type
    assert fast.captions == [originals[k].captions for k in order]
