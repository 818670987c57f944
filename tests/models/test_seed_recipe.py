"""The seed paper's recipe in the encoder: the monotone bias, the CLS readout, its sizes."""

import numpy as np
import pytest
import torch
from helpers import permuted, square_masks
from torch_geometric.data import Batch

from graphs import build_graph, encoder_inputs
from graphs.schema import OBJECT, SEED_EDGE_TYPES
from graphs.seed import to_seed_schema
from models import GraphEncoder, GraphEncoderConfig, load_config
from models.attention import MonotoneRankBias
from models.vision import PixelEncoder


def seed_graph(squares, triplets):
    image = np.random.default_rng(len(squares)).integers(0, 255, size=(64, 64, 3), dtype=np.uint8)
    return to_seed_schema(build_graph(image, square_masks(64, squares), triplets=triplets))


def small_graph():
    return seed_graph([(2, 2, 10), (30, 2, 10), (2, 30, 10)], [(0, "left of", 1)])


def large_graph():
    squares = [(2, 2, 10), (30, 2, 10), (2, 30, 10), (40, 40, 16), (44, 44, 6), (20, 20, 8)]
    return seed_graph(squares, [(3, "contains", 4), (1, "above", 3), (5, "near", 0)])


def encoder(edge_bias="monotone", pool="attention", depth=2) -> GraphEncoder:
    node_dims, num_edge_types = encoder_inputs("hetero")
    config = GraphEncoderConfig(
        node_dims=node_dims,
        num_edge_types=num_edge_types,
        width=32,
        depth=depth,
        heads=4,
        embed_dim=16,
        edge_bias=edge_bias,
        edge_schema="seed",
        pool=pool,
    )
    return GraphEncoder(config).eval()


def attention_masks(model, batch):
    """The additive mask each block's attention receives, [B, H or 1, N, N] per block."""
    masks = []
    hooks = [block.attn.register_forward_pre_hook(lambda _, args: masks.append(args[1])) for block in model.blocks]
    try:
        model(batch)
    finally:
        for hook in hooks:
            hook.remove()
    return masks


def test_monotone_bias_is_cumsum_of_exp_and_strictly_increasing():
    bias = MonotoneRankBias(7)
    with torch.no_grad():
        bias.weight.copy_(torch.tensor([-3.0, 2.0, -1.0, 0.0, 0.5, -2.0, 1.0]))
    values = bias.values()
    expected = [0.0]
    for w in bias.weight.tolist():
        expected.append(expected[-1] + float(np.exp(w)))
    assert torch.allclose(values, torch.tensor(expected), atol=1e-6)
    assert values[0] == 0 and torch.all(values[1:] > values[:-1])
    strengths = torch.tensor([[[0, 7], [3, 1]]])
    assert bias(strengths).shape == (1, 1, 2, 2)
    assert torch.allclose(bias(strengths)[0, 0], values[strengths[0]])


def test_monotone_bias_is_one_vector_shared_by_every_head_and_layer():
    model = encoder(depth=3)
    rank_parameters = [name for name, p in model.named_parameters() if "bias" in name and p.shape == (7,)]
    assert rank_parameters == ["rank_bias.weight"]
    assert all(block.edge_bias is None for block in model.blocks)
    masks = attention_masks(model, Batch.from_data_list([large_graph()]))
    assert masks[0].size(1) == 1  # one bias for all heads
    assert all(torch.equal(mask, masks[0]) for mask in masks[1:])  # and for all layers
    assert masks[0][torch.isfinite(masks[0])].max() > 0  # the graph's edges do bias it


def test_monotone_bias_follows_query_to_key_direction():
    graph = small_graph()  # o0 -> o1 is subject -> object (7); o1 -> o0 only nearest (4)
    model = encoder()
    values = model.rank_bias.values()
    mask = attention_masks(model, Batch.from_data_list([graph]))[0][0, 0]
    assert mask[0, 1] == values[7] and mask[1, 0] == values[4]
    relation = graph[OBJECT].num_nodes  # tokens: objects, relations, image
    assert mask[0, relation] == values[6] and mask[relation, 0] == values[5]
    image = relation + 1
    assert mask[image, 0] == 0 and mask[0, image] == 0  # the seed schema has no image-node edges


def test_each_graph_of_a_batch_gets_its_own_bias_and_padded_keys_none():
    model = encoder()
    small, large = small_graph(), large_graph()
    together = attention_masks(model, Batch.from_data_list([small, large]))[0]
    for b, graph in enumerate((small, large)):
        alone = attention_masks(model, Batch.from_data_list([graph]))[0][0]
        n = alone.size(-1)
        assert torch.equal(together[b, :, :n, :n], alone)
        assert torch.all(together[b, :, :, n:] == float("-inf"))  # padding is never attended
    a = model(Batch.from_data_list([small, large]))
    assert torch.allclose(a[0], model(Batch.from_data_list([small]))[0], atol=1e-5)
    assert torch.allclose(a[1], model(Batch.from_data_list([large]))[0], atol=1e-5)


@pytest.mark.parametrize("edge_bias", ["monotone", "learned"])
def test_cls_readout_does_not_depend_on_node_order(edge_bias):
    model = encoder(edge_bias, pool="cls")
    graph = large_graph()
    reordered = permuted(graph, torch.tensor([3, 0, 5, 4, 2, 1]))
    assert not torch.equal(reordered[SEED_EDGE_TYPES[0]].edge_index, graph[SEED_EDGE_TYPES[0]].edge_index)
    a = model(Batch.from_data_list([graph, small_graph()]))
    b = model(Batch.from_data_list([reordered, small_graph()]))
    assert torch.allclose(a, b, atol=1e-5)


def test_cls_token_is_in_no_edge_and_its_output_is_the_embedding():
    model = encoder(pool="cls")
    small = small_graph()
    batch = Batch.from_data_list([small, large_graph()])
    mask = attention_masks(model, batch)[0]
    n_small = small[OBJECT].num_nodes + 2  # objects, one relation, the image
    assert torch.all(mask[0, :, 0, : n_small + 1] == 0) and torch.all(mask[0, :, : n_small + 1, 0] == 0)
    dense, valid, index = model.encode_tokens(batch)
    assert valid[:, 0].all() and not torch.isin(index, torch.tensor([0, dense.size(1)])).any()
    assert torch.allclose(model.pool_tokens(dense, valid), model.head(dense[:, 0]))


def test_an_encoder_refuses_graphs_of_the_other_schema():
    from graphs.build import build_graph as build

    semgraph = build(np.zeros((64, 64, 3), np.uint8), square_masks(64, [(2, 2, 10)]))
    with pytest.raises(ValueError, match="seed edge schema"):
        encoder()(Batch.from_data_list([semgraph]))


def test_the_papers_sizes():
    config = load_config("seed-paper")
    graph = config.graph
    assert (graph.width, graph.depth, graph.heads, int(graph.width * graph.mlp_ratio)) == (512, 8, 8, 2048)
    assert (graph.edge_bias, graph.pool, config.embed_dim) == ("monotone", "cls", 512)
    pixels = PixelEncoder("vit:paper", embed_dim=24, image_size=32)
    vit = pixels.model
    assert (vit.embed_dim, len(vit.blocks), vit.blocks[0].attn.num_heads) == (512, 8, 8)
    assert vit.blocks[0].mlp.fc1.out_features == 2048 and vit.patch_embed.patch_size == (16, 16)
    with pytest.raises(ValueError, match="no ViT preset 'tiny'"):
        PixelEncoder("vit:tiny", 8, 32)


TINY_TEXT = {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}


def test_predicate_names_are_embedded_once_from_a_local_checkpoint(tmp_path):
    from models.relation_text import PredicateTexts
    from models.text import TextEncoder

    tower = TextEncoder(TINY_TEXT, 24).eval()
    torch.save(tower.tower.state_dict(), tmp_path / "tower.pt")
    names = ["left of", "leaning on", "left of"]
    table = PredicateTexts((TINY_TEXT, 24), tmp_path / "tower.pt").embed(names)
    with torch.no_grad():
        expected = tower(tower.tokenize(names))
    assert table.shape == (3, 24) and torch.allclose(table, expected, atol=1e-6)
    assert torch.equal(table[0], table[2]) and not torch.allclose(table[0], table[1])
    with pytest.warns(UserWarning, match="untrained"):
        PredicateTexts((TINY_TEXT, 24)).embed(names)


def test_text_relation_features_replace_the_one_hot():
    from graphs.schema import PREDICATES, RELATION, predicate_id

    node_dims, num_edge_types = encoder_inputs("hetero")
    config = GraphEncoderConfig(
        node_dims=node_dims, num_edge_types=num_edge_types, width=32, depth=1, heads=4, embed_dim=16,
        edge_schema="seed", relation_features="text", relation_text_dim=6,
    )  # fmt: skip
    model = GraphEncoder(config).eval()
    assert model.relation_text.shape == (len(PREDICATES), 6) and "relation_text" in model.state_dict()
    with torch.no_grad():
        model.relation_text.copy_(torch.randn(len(PREDICATES), 6))
    graph = small_graph()  # one relation, "left of"
    before = model(Batch.from_data_list([graph]))
    with torch.no_grad():
        model.relation_text[predicate_id("left of")] += 1.0
    after = model(Batch.from_data_list([graph]))
    assert not torch.allclose(before, after)
    with torch.no_grad():
        model.relation_text[predicate_id("above")] += 1.0  # a predicate the graph does not use
    assert torch.equal(model(Batch.from_data_list([graph])), after)
    assert graph[RELATION].x.size(1) == len(PREDICATES) + 8  # the stored graph keeps its one-hot


@pytest.mark.parametrize("directed", [False, True])
def test_without_subject_to_object_only_the_directed_schema_tells_a_triplet_from_its_reverse(directed):
    """With the one subject -> object edge dropped, the seed schema links a relation token to both
    ends alike, so "A left of B" and "B left of A" over the same image embed the same; the
    directed schema still tells them apart (its relation token reaches each end by its own rank)."""
    from graphs.schema import SUBJECT_TO_OBJECT
    from graphs.transforms import DropEdgeTypes

    schema = "seed-directed" if directed else "seed"
    image = np.random.default_rng(0).integers(0, 255, size=(64, 64, 3), dtype=np.uint8)
    squares = [(2, 2, 10), (30, 2, 10), (2, 30, 10)]
    graphs = [
        DropEdgeTypes(["subject_to_object"], schema)(
            to_seed_schema(build_graph(image, square_masks(64, squares), triplets=[triplet]), directed)
        )
        for triplet in [(0, "left of", 1), (1, "left of", 0)]
    ]
    assert graphs[0][SUBJECT_TO_OBJECT].edge_index.numel() == 0
    node_dims, num_edge_types = encoder_inputs(graphs[0])
    assert num_edge_types == (9 if directed else 7)
    torch.manual_seed(0)
    config = GraphEncoderConfig(
        node_dims=node_dims, num_edge_types=num_edge_types, width=32, depth=2, heads=4, embed_dim=16,
        edge_bias="monotone", edge_schema=schema, pool="cls",
    )  # fmt: skip
    model = GraphEncoder(config).eval()
    with torch.no_grad():
        a, b = model(Batch.from_data_list(graphs))
    assert torch.allclose(a, b, atol=1e-6) != directed
    if directed:
        assert (a - b).abs().max() > 1e-3
