import numpy as np
import torch
from helpers import square_masks
from torch_geometric.data import Batch

from graphs import EDGE_TYPES, NODE_TYPES, build_graph


def graph(count: int):
    image = np.zeros((64, 64, 3), dtype=np.uint8)
    return build_graph(image, square_masks(64, [(2 + 12 * k, 2 + 10 * k, 6) for k in range(count)]))


def test_batching_offsets_each_edge_type_by_its_node_types():
    graphs = [graph(3), graph(0), graph(1), graph(5)]
    batch = Batch.from_data_list(graphs)
    assert batch.num_graphs == 4
    for node_type in NODE_TYPES:
        counts = [g[node_type].num_nodes for g in graphs]
        assert batch[node_type].batch.tolist() == [k for k, c in enumerate(counts) for _ in range(c)]
    for src, rel, dst in EDGE_TYPES:
        pieces, src_offset, dst_offset = [], 0, 0
        for g in graphs:
            pieces.append(g[src, rel, dst].edge_index + torch.tensor([[src_offset], [dst_offset]]))
            src_offset += g[src].num_nodes
            dst_offset += g[dst].num_nodes
        assert torch.equal(batch[src, rel, dst].edge_index, torch.cat(pieces, dim=1)), rel


def test_batch_keeps_every_type_even_when_the_first_graph_is_empty():
    batch = Batch.from_data_list([graph(0), graph(4)])
    assert tuple(batch.node_types) == NODE_TYPES
    assert tuple(batch.edge_types) == EDGE_TYPES
    assert batch["object"].num_nodes == 4
