"""Open-vocabulary predicates: a name outside the vocabulary keeps its name from the token source
to the store, the batch and the text relation features, where it is embedded once by the tower."""

import numpy as np
import pytest
import torch
from helpers import square_masks
from torch_geometric.data import Batch

from data.sources import select_graphs
from data.store import GraphStore
from graphs import build_graph, encoder_inputs
from graphs.convert import to_networkx
from graphs.schema import (
    PREDICATE_KEYS,
    PREDICATES,
    RELATION,
    predicate_id,
    predicate_key,
    relation_names,
)
from graphs.seed import to_seed_schema
from models import GraphEncoder, GraphEncoderConfig, TextEncoder
from models.relation_text import PredicateTexts

TINY_TEXT = {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}
SQUARES = [(2, 2, 10), (30, 2, 10), (2, 30, 10)]


def graph(triplets, seed=0):
    image = np.random.default_rng(seed).integers(0, 255, size=(64, 64, 3), dtype=np.uint8)
    return build_graph(image, square_masks(64, SQUARES), triplets=triplets)


def test_a_name_outside_the_vocabulary_is_kept_beside_its_other_one_hot():
    data = graph([(0, "Grazing  On", 1), (1, "beside", 2), (2, 4, 0), (0, "other", 2)])
    assert data[RELATION].predicate.tolist() == [
        predicate_id("other"),
        predicate_id("next to"),
        4,
        predicate_id("other"),
    ]
    assert data[RELATION].x[0, predicate_id("other")] == 1  # the one-hot path still says "other"
    assert data.open_predicates == ["grazing on"]  # normalised; aliases and "other" itself are not open
    assert data[RELATION].name_key.tolist() == [
        predicate_key("grazing on"), predicate_key("next to"), PREDICATE_KEYS[4], predicate_key("other"),
    ]  # fmt: skip
    assert relation_names(data) == ["grazing on", "next to", PREDICATES[4], "other"]
    labels = {d["label"] for _, d in to_networkx(data).nodes(data=True) if d["type"] == RELATION}
    assert "grazing on" in labels


def test_the_store_keeps_each_graphs_open_names_through_save_select_and_collate(tmp_path):
    graphs = [
        graph([(0, "grazing on", 1)]),
        graph([(0, "left of", 1)]),
        graph([(0, "juggling", 1), (1, "grazing on", 2)]),
    ]
    for g in graphs:
        g.captions = ["a caption"]
    store = GraphStore.from_graphs(graphs)
    store.save(tmp_path / "store.pt")
    loaded = GraphStore.load(tmp_path / "store.pt")
    assert loaded.open_predicates == [["grazing on"], [], ["grazing on", "juggling"]]
    assert loaded.all_open_predicates() == ["grazing on", "juggling"]
    assert relation_names(loaded[2]) == ["juggling", "grazing on"]
    batch = loaded.collate([1, 2])
    assert batch.open_predicates == ["grazing on", "juggling"]
    assert relation_names(batch) == ["left of", "juggling", "grazing on"]
    assert loaded.collate([1]).open_predicates == []
    assert select_graphs(loaded, [2, 0]).open_predicates == [["grazing on", "juggling"], ["grazing on"]]
    assert GraphStore.concat([loaded, loaded]).all_open_predicates() == ["grazing on", "juggling"]
    pyg = Batch.from_data_list([loaded[0], loaded[2]])  # the loader's and the suites' batches
    assert relation_names(pyg) == ["grazing on", "juggling", "grazing on"]


def tiny_tower(tmp_path):
    torch.manual_seed(3)
    tower = TextEncoder(TINY_TEXT, 6).eval()
    path = tmp_path / "tower.pt"
    torch.save(tower.tower.state_dict(), path)
    return tower, path


def text_encoder() -> GraphEncoder:
    node_dims, num_edge_types = encoder_inputs("hetero")
    config = GraphEncoderConfig(
        node_dims=node_dims, num_edge_types=num_edge_types, width=32, depth=1, heads=4, embed_dim=16,
        edge_schema="seed", relation_features="text", relation_text_dim=6,
    )  # fmt: skip
    return GraphEncoder(config).eval()


def test_open_names_get_their_own_text_embedding_each_computed_once(tmp_path):
    tower, path = tiny_tower(tmp_path)
    texts = PredicateTexts((TINY_TEXT, 6), path)
    model = text_encoder()
    with torch.no_grad():
        model.relation_text.copy_(texts.embed(PREDICATES))
    # the table is the tower's embedding of the vocabulary, as a second computation says
    with torch.no_grad():
        expected = tower(tower.tokenize(["left of", "juggling", "grazing on"]))
    assert torch.allclose(model.relation_text[predicate_id("left of")], expected[0], atol=1e-5)

    batch = Batch.from_data_list(
        [to_seed_schema(graph([(0, "juggling", 1)])), to_seed_schema(graph([(0, "other", 1)]))]
    )
    with pytest.raises(ValueError, match=r"outside the vocabulary \('juggling'\) and this model has no text tower"):
        model(batch)
    model.relation_texts = texts
    calls = []
    encode = texts._encode
    texts._encode = lambda names: calls.append(list(names)) or encode(names)
    rows = model._predicate_text(batch[RELATION], batch)
    assert torch.allclose(rows[0], expected[1], atol=1e-5)  # "juggling", not "other"
    assert torch.equal(rows[1], model.relation_text[predicate_id("other")])
    before = model(batch)
    assert not torch.allclose(before[0], before[1])  # before open names, both graphs were the same
    model(batch)
    pair = Batch.from_data_list([to_seed_schema(graph([(0, "juggling", 1), (1, "grazing on", 2)]))])
    rows = model._predicate_text(pair[RELATION], pair)
    assert torch.allclose(rows[1], expected[2], atol=1e-5)
    assert calls == [["juggling"], ["grazing on"]]  # each distinct name embedded once


def test_a_tower_that_does_not_reproduce_the_models_table_is_refused(tmp_path):
    _, path = tiny_tower(tmp_path)
    table = PredicateTexts((TINY_TEXT, 6), path).embed(PREDICATES)
    with pytest.warns(UserWarning, match=r"untrained \(random weights, seed 0\)"):
        untrained = PredicateTexts((TINY_TEXT, 6), reference=table)
        with pytest.raises(ValueError, match="does not reproduce the predicate table this model was trained with"):
            untrained.embed(["juggling"])
    # an untrained tower is seeded: evaluation rebuilds the very tower training used
    with pytest.warns(UserWarning, match="untrained"):
        first = PredicateTexts((TINY_TEXT, 6)).embed(PREDICATES)
        second = PredicateTexts((TINY_TEXT, 6), reference=first)
        assert second.embed(["juggling"]).shape == (1, 6)
    good = PredicateTexts((TINY_TEXT, 6), path, reference=table)
    assert torch.allclose(good.embed(["left of"])[0], table[predicate_id("left of")], atol=1e-6)


def test_a_table_loaded_from_another_run_must_be_the_towers_own(tmp_path):
    """--init-from and --resume replace the model's table: the run's tower is checked against it."""
    _, path = tiny_tower(tmp_path)
    texts = PredicateTexts((TINY_TEXT, 6), path)
    table = texts.embed(PREDICATES)
    texts.expect(table.clone())  # the same tower's table: accepted
    with pytest.raises(ValueError, match="does not reproduce the predicate table"):
        texts.expect(table + 0.5)


def test_a_model_saved_before_open_vocabulary_reads_open_names_as_other(tmp_path):
    from models import GraphCLIP, GraphCLIPConfig
    from models.checkpoint import model_from_checkpoint

    node_dims, num_edge_types = encoder_inputs("hetero")
    graph_config = GraphEncoderConfig(
        node_dims=node_dims, num_edge_types=num_edge_types, width=32, depth=1, heads=4, embed_dim=16,
        edge_schema="seed", relation_features="text", relation_text_dim=6,
    )  # fmt: skip
    config = GraphCLIPConfig(graph=graph_config, embed_dim=16, text=TINY_TEXT)
    model = GraphCLIP(config)
    old = config.to_dict()
    del old["graph"]["open_vocabulary"]  # as checkpoints written before it say
    state = {"model_config": old, "model": model.state_dict(), "params": {}}
    loaded = model_from_checkpoint(state).graph_encoder
    assert not loaded.config.open_vocabulary and loaded.relation_texts is None
    batch = Batch.from_data_list([to_seed_schema(graph([(0, "juggling", 1)]))])
    rows = loaded._predicate_text(batch[RELATION], batch)  # no tower needed, no error
    assert torch.equal(rows[0], loaded.relation_text[predicate_id("other")])
    fresh = model_from_checkpoint({**state, "model_config": config.to_dict()}).graph_encoder
    assert fresh.config.open_vocabulary and fresh.relation_texts is not None
