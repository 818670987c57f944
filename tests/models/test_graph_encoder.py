import math

import numpy as np
import pytest
import torch
from helpers import permuted, square_masks
from torch_geometric.data import Batch

from graphs import EDGE_TYPES, DropEdgeTypes, ToHomogeneous, build_graph, encoder_inputs
from graphs.schema import EDGE_RANK, NEAR, OBJECT, RELATED, RELATION, SUBJECT_OF
from models import GraphEncoder, GraphEncoderConfig
from models.attention import BiasedSelfAttention, EdgeTypeBias, pair_bias, rank_bias
from models.graph_encoder import pair_slots


def encoder(graph_type="hetero", edge_bias="learned", depth=2) -> GraphEncoder:
    node_dims, num_edge_types = encoder_inputs(graph_type)
    config = GraphEncoderConfig(
        node_dims=node_dims,
        num_edge_types=num_edge_types,
        width=32,
        depth=depth,
        heads=4,
        embed_dim=16,
        edge_bias=edge_bias,
    )
    return GraphEncoder(config).eval()


def layout_graph(triplets=None):
    image = np.random.default_rng(1).integers(0, 255, size=(64, 64, 3), dtype=np.uint8)
    masks = square_masks(64, [(2, 2, 10), (30, 2, 10), (2, 30, 10), (40, 40, 16), (44, 44, 6)])
    return build_graph(image, masks, labels=[0, 1, 2, 3, 4], triplets=triplets)


def slots_of(graph):
    """Slots of one graph, computed by the encoder's own token layout."""
    counts = [graph[t].num_nodes for t in graph.node_types]
    offsets = dict(zip(graph.node_types, np.cumsum([0] + counts[:-1]).tolist(), strict=True))
    edges = [
        (graph[et].edge_index + torch.tensor([[offsets[et[0]]], [offsets[et[2]]]]), EDGE_RANK[et]) for et in EDGE_TYPES
    ]
    total = sum(counts)
    return pair_slots(torch.arange(total), edges, 1, total)[0], offsets


def test_pair_slot_is_highest_ranked_edge_either_direction():
    graph = layout_graph(triplets=[(0, "left of", 1), (3, "contains", 4)])
    slots, off = slots_of(graph)
    obj, rel = off[OBJECT], off[RELATION]
    # object 0 -> relation 0 (subject_of, rank 1): forward 1, reverse 2
    assert slots[obj + 0, rel + 0] == 1 and slots[rel + 0, obj + 0] == 2
    # objects 0 and 1: related (rank 3) beats near (rank 6)
    assert slots[obj + 0, obj + 1] == 2 * EDGE_RANK[RELATED] - 1
    assert slots[obj + 1, obj + 0] == 2 * EDGE_RANK[RELATED]
    # objects 3 and 4: related (3) beats overlaps (5, box nesting) beats near (6)
    assert slots[obj + 3, obj + 4] == 5 and slots[obj + 4, obj + 3] == 6
    # objects 0 and 2 only near (both directions exist: forward wins)
    assert slots[obj + 0, obj + 2] == 2 * EDGE_RANK[NEAR] - 1
    # relation 0 and relation 1 share nobody; the image reaches objects only
    assert slots[rel + 0, rel + 1] == 0
    assert slots[off["image"], obj + 2] == 2 * 7 - 1 and slots[off["image"], rel] == 0


def test_second_way_brute_force_slots():
    graph = layout_graph()
    slots, off = slots_of(graph)
    total = slots.size(0)
    expected = torch.zeros(total, total, dtype=torch.long)
    for edge_type in EDGE_TYPES:
        rank = EDGE_RANK[edge_type]
        for s, d in graph[edge_type].edge_index.t().tolist():
            i, j = off[edge_type[0]] + s, off[edge_type[2]] + d
            for a, b, slot in ((i, j, 2 * rank - 1), (j, i, 2 * rank)):
                if expected[a, b] == 0 or slot < expected[a, b]:
                    expected[a, b] = slot
    assert torch.equal(slots, expected)


def test_dropped_type_reads_as_none():
    graph = DropEdgeTypes(["subject_of", "near"])(layout_graph(triplets=[(0, "left of", 1)]))
    slots, off = slots_of(graph)
    assert slots[off[OBJECT] + 0, off[RELATION] + 0] == 0
    assert slots[off[OBJECT] + 0, off[OBJECT] + 2] == 0
    assert slots[off[RELATION] + 0, off[OBJECT] + 1] == 2 * EDGE_RANK[("relation", "has_object", "object")] - 1


def test_drop_edge_types_rejects_unknown_names():
    with pytest.raises(ValueError, match="valid edge types: subject_of, has_object"):
        DropEdgeTypes(["nearby"])


def test_rank_bias_is_monotone_and_directional():
    table = rank_bias(7, heads=2)
    forward, reverse = table[0, 1::2], table[0, 2::2]
    assert table[0, 0] == 0
    assert torch.all(forward[:-1] > forward[1:]) and torch.all(reverse < forward)
    assert EdgeTypeBias(7, 2, "none").table.abs().sum() == 0
    assert not any(p.requires_grad for p in EdgeTypeBias(7, 2, "ranked").parameters())


def test_attention_matches_a_manual_softmax():
    torch.manual_seed(0)
    attn = BiasedSelfAttention(16, 2).eval()
    x = torch.randn(2, 5, 16)
    mask = torch.randn(2, 2, 5, 5)
    mask[1, :, :, 3:] = float("-inf")
    q, k, v = attn.qkv(x).reshape(2, 5, 3, 2, 8).permute(2, 0, 3, 1, 4)
    weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(8) + mask, dim=-1)
    expected = attn.proj((weights @ v).transpose(1, 2).reshape(2, 5, 16))
    assert torch.allclose(attn(x, mask), expected, atol=1e-5)


@pytest.mark.parametrize("edge_bias", ["learned", "ranked", "none"])
def test_padding_gives_no_nan_and_does_not_change_a_graph(edge_bias):
    model = encoder(edge_bias=edge_bias)
    small = layout_graph(triplets=[])
    empty = build_graph(np.zeros((64, 64, 3), np.uint8), np.zeros((0, 64, 64), bool))
    alone = model(Batch.from_data_list([small]))
    padded = model(Batch.from_data_list([empty, small, layout_graph()]))
    assert torch.isfinite(padded).all()
    assert torch.allclose(padded[1], alone[0], atol=1e-5)
    assert torch.allclose(padded[0], model(Batch.from_data_list([empty]))[0], atol=1e-5)


def test_embedding_does_not_depend_on_node_order():
    model = encoder()
    graph = layout_graph()
    perm = torch.tensor([3, 0, 4, 2, 1])
    reordered = permuted(graph, perm)
    assert not torch.equal(reordered[SUBJECT_OF].edge_index, graph[SUBJECT_OF].edge_index)
    a = model(Batch.from_data_list([graph]))
    b = model(Batch.from_data_list([reordered]))
    assert torch.allclose(a, b, atol=1e-5)


def test_edges_change_the_embedding_unless_bias_is_off():
    graph = layout_graph()
    dropped = DropEdgeTypes(["subject_of", "has_object", "related"])(graph.clone())
    for edge_bias, differs in (("ranked", True), ("none", False)):
        model = encoder(edge_bias=edge_bias)
        a, b = model(Batch.from_data_list([graph])), model(Batch.from_data_list([dropped]))
        assert differs != torch.allclose(a, b, atol=1e-6), edge_bias


def test_homogeneous_graphs_run_through_the_same_encoder():
    model = encoder("homo")
    graphs = [ToHomogeneous()(layout_graph()), ToHomogeneous()(layout_graph(triplets=[]))]
    out = model(Batch.from_data_list(graphs))
    assert out.shape == (2, 16) and torch.isfinite(out).all()
    with pytest.raises(ValueError, match="homogeneous"):
        encoder("hetero")(Batch.from_data_list(graphs))


def test_gradients_reach_the_learned_bias():
    model = encoder().train()
    model(Batch.from_data_list([layout_graph(), layout_graph(triplets=[])])).sum().backward()
    assert model.blocks[0].edge_bias.table.grad.abs().sum() > 0


def test_learned_bias_starts_from_the_ranks_or_from_zero():
    ranked = EdgeTypeBias(7, 2, "learned")
    zero = EdgeTypeBias(7, 2, "learned", init="zero")
    assert torch.equal(ranked.table.data, rank_bias(7, 2)) and zero.table.requires_grad
    assert zero.table.abs().sum() == 0
    with pytest.raises(ValueError, match="unknown edge bias start"):
        EdgeTypeBias(7, 2, "learned", init="random")


@pytest.mark.parametrize("heads", [4, None])  # a per-head table [H, S], and the monotone bias's [S]
def test_the_cuda_bias_lookup_gives_the_values_and_gradients_of_indexing(heads):
    """`pair_bias` looks pairs up through F.embedding on CUDA (its gradient is fast there,
    indexing's is not) and by indexing on the CPU: forced both ways here, the same bias
    and the same table gradient, checked against a one-hot product as a third way."""
    generator = torch.Generator().manual_seed(0)
    slots = 15
    shape = (heads, slots) if heads else (slots,)
    index = torch.randint(0, slots, (3, 9, 9), generator=generator)
    upstream = torch.randn(3, heads or 1, 9, 9, generator=generator)
    results = []
    for segmented in (True, False):
        table = torch.randn(shape, generator=torch.Generator().manual_seed(1)).requires_grad_()
        bias = pair_bias(table, index, segmented=segmented)
        bias.backward(upstream)
        results.append((bias.detach(), table.grad))
    (bias, grad), (expected_bias, expected_grad) = results
    assert bias.shape == (3, heads or 1, 9, 9)
    torch.testing.assert_close(bias, expected_bias, rtol=0, atol=0)
    torch.testing.assert_close(grad, expected_grad)
    one_hot = torch.nn.functional.one_hot(index, slots).float()  # [B, N, N, S]
    by_hand = torch.einsum("bhij,bijs->hs", upstream, one_hot)
    torch.testing.assert_close(grad.view(-1, slots), by_hand.view(-1, slots))
