import pytest
import torch

from data.datasets import SyntheticBuilder
from data.sources import hold_out, in_validation, select_graphs
from data.store import GraphStore


@pytest.fixture(scope="module")
def store():
    builder = SyntheticBuilder("val", 12)
    graphs, names = zip(*(builder.build(k) for k in range(12)), strict=True)
    return GraphStore.from_graphs(list(graphs), list(names), {"source": "synthetic"})


@pytest.mark.parametrize("keep", [[0, 3, 4, 11], [7], [], [5, 2, 2]])
def test_selected_graphs_equal_the_graphs_made_one_by_one_and_stacked(store, keep):
    picked = select_graphs(store, keep)
    if not keep:
        assert len(picked) == 0 and all(len(ptr) == 1 for ptr in picked.node_ptr.values())
        return
    stacked = GraphStore.from_graphs([store[k] for k in keep], [store.names[k] for k in keep], store.meta)
    assert picked.names == stacked.names and picked.captions == stacked.captions and picked.meta == stacked.meta
    for key in stacked.nodes:
        assert torch.equal(picked.nodes[key], stacked.nodes[key]), key
    for key in stacked.edges:
        assert torch.equal(picked.edges[key], stacked.edges[key]), key
        assert torch.equal(picked.edge_ptr[key], stacked.edge_ptr[key]), key
    for key in stacked.node_ptr:
        assert torch.equal(picked.node_ptr[key], stacked.node_ptr[key]), key


def test_hold_out_splits_by_name(store):
    train, val = hold_out(store, "train", 0.3), hold_out(store, "val", 0.3)
    assert sorted(train.names + val.names) == sorted(store.names)
    assert all(in_validation(name, 0.3) for name in val.names)
