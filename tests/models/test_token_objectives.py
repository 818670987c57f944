import json

import numpy as np
import pytest
import torch
from helpers import square_masks, train_tiny
from torch_geometric.data import Batch

from data import SyntheticGraphs
from data.clusters import assign, object_clusters, torch_kmeans
from graphs import build_graph, encoder_inputs
from models import GraphEncoder, GraphEncoderConfig
from models.objectives import TokenPropDecoder, choose_hidden
from models.token_norm import MoTo, make_token_norm


def graph(count):
    image = np.random.default_rng(count).integers(0, 255, size=(64, 64, 3), dtype=np.uint8)
    return build_graph(image, square_masks(64, [(2 + 12 * k, 2 + 10 * k, 6) for k in range(count)]))


@pytest.mark.parametrize("kind", ["moto", "layer", "batch", "none"])
def test_token_norms_ignore_padding(kind):
    node_dims, edge_types = encoder_inputs("hetero")
    config = GraphEncoderConfig(
        node_dims=node_dims, num_edge_types=edge_types, width=32, depth=1, heads=4, embed_dim=8, token_norm=kind
    )
    model = GraphEncoder(config).eval()
    alone = model(Batch.from_data_list([graph(2)]))
    if kind == "batch":  # batch statistics (eval: running ones) are shared, padding must not enter them
        model.train()
        model(Batch.from_data_list([graph(2), graph(5)]))
        model.eval()
        alone = model(Batch.from_data_list([graph(2)]))
    padded = model(Batch.from_data_list([graph(2), graph(5)]))
    assert torch.isfinite(padded).all()
    assert torch.allclose(padded[0], alone[0], atol=1e-4)  # MoTo's sharp softmax amplifies float noise


def test_moto_matches_a_loop_over_entities():
    torch.manual_seed(0)
    moto = MoTo(width=6, entities=3)
    x, valid = torch.randn(1, 5, 6), torch.tensor([[True, True, True, True, False]])
    out = moto(x, valid)
    layout = torch.softmax(moto.layout(x) / 0.1, -1)[0, :4]  # [4, 3]
    tokens = x[0, :4]
    expected = torch.zeros(4, 6)
    for i in range(3):
        w = layout[:, i : i + 1]
        mean = (w * tokens).sum(0) / w.sum()
        std = ((w * (tokens - mean) ** 2).sum(0) / w.sum()).sqrt()
        expected += ((tokens - mean) / (std + 1e-5) * moto.scale[i] + moto.shift[i]) * w
    assert torch.allclose(out[0, :4], expected, atol=1e-4)
    with pytest.raises(ValueError, match="unknown token norm"):
        make_token_norm("group", 8)


def test_hidden_share_per_graph_at_least_one():
    graph_ids = torch.tensor([0] * 8 + [1] * 1 + [2] * 4)
    hidden = choose_hidden(graph_ids, 0.75, torch.Generator().manual_seed(0))
    assert [int(hidden[graph_ids == g].sum()) for g in range(3)] == [6, 1, 3]


def test_tokenprop_decoder_is_zero_for_a_perfect_reconstruction():
    decoder = TokenPropDecoder({"a": 4, "b": 3}, width=4)
    x, y = torch.randn(5, 4), torch.randn(2, 3)
    loss = decoder([torch.zeros(5, 4), torch.zeros(2, 4)], [x, y])
    assert loss > 0
    perfect = TokenPropDecoder({"a": 4, "b": 3}, width=4)
    perfect.decoders["a"], perfect.decoders["b"] = torch.nn.Identity(), torch.nn.Identity()
    # outputs that decode to the (layer-normalised) inputs themselves: nothing left to reconstruct
    reconstructed = [torch.nn.functional.layer_norm(x, (4,)), torch.nn.functional.layer_norm(y, (3,))]
    assert perfect(reconstructed, [x, y]) == 0
    # a second way: a decoder that outputs zeros costs the mean square of the normalised targets
    decoder = TokenPropDecoder({"a": 4}, width=4)
    for module in decoder.decoders["a"]:
        if isinstance(module, torch.nn.Linear):
            torch.nn.init.zeros_(module.weight)
            torch.nn.init.zeros_(module.bias)
    target = torch.nn.functional.layer_norm(x, (4,))
    assert torch.isclose(decoder([torch.zeros(5, 4)], [x]), (target**2).mean())


def test_torch_kmeans_finds_separated_clusters():
    rng = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    points = torch.cat([c + 0.1 * torch.randn(50, 2, generator=rng) for c in centres])
    found = torch_kmeans(points, 3, seed=1)
    labels = assign(points, found)
    assert all(len(set(labels[k * 50 : (k + 1) * 50].tolist())) == 1 for k in range(3))
    assert len(set(labels.tolist())) == 3


def test_object_clusters_are_cached(tmp_path, monkeypatch):
    store = SyntheticGraphs("val", 30).store
    first = object_clusters(store, 4, seed=0, cache_dir=tmp_path)
    assert first.shape == (4, store.nodes["object/x"].size(1))
    cached = list((tmp_path / "kmeans").glob("*.pt"))
    assert len(cached) == 1 and torch.equal(torch.load(cached[0], weights_only=True), first)

    def never(*args, **kwargs):
        raise AssertionError("k-means ran again instead of reading its cache")

    monkeypatch.setattr("data.clusters.fit_kmeans", never)
    assert torch.equal(object_clusters(store, 4, seed=0, cache_dir=tmp_path), first)


def test_mim_pretraining_then_init_from(tmp_path):
    from train.model_from_flags import build_model
    from train.run import parse_args

    train_tiny(tmp_path, tmp_path / "mim", "--objective", "mim", "--mim-clusters", "4")
    record = json.loads((tmp_path / "mim" / "results.jsonl").read_text().splitlines()[-1])
    assert record["train_loss"] == pytest.approx(record["train_mim"]) and 0 <= record["train_mim_acc"] <= 1
    checkpoint = tmp_path / "mim" / "checkpoints" / "latest.pt"
    pretrained = torch.load(checkpoint, weights_only=True)["model"]
    args, _ = parse_args(["--model-config", str(tmp_path / "tiny.json"), "--init-from", str(checkpoint)])
    model = build_model(args, SyntheticGraphs("val", 1).store[0])
    for key, value in model.graph_encoder.state_dict().items():
        assert torch.equal(value, pretrained[f"graph_encoder.{key}"]), key
    assert model.cluster_head is None  # a CLIP run keeps no MIM head
