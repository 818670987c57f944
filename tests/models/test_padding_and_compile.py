"""The encoder's padding comes from the batch's host counts (multiples of 8, or powers of two when
compiled) and changes no embedding; `--compile` compiles the dense blocks and trains like eager."""

import copy

import pytest
import torch
from helpers import TINY_MODEL
from open_clip.loss import ClipLoss

import models.graph_encoder as graph_encoder
from data import SyntheticGraphs
from data.loader import GraphLoader
from graphs import encoder_inputs
from graphs.schema import NODE_TYPES
from models import GraphCLIP
from models.clip import GraphCLIPConfig
from models.graph_encoder import GraphEncoder, GraphEncoderConfig
from train.loop import make_optimizer, train_epoch, warmup_cosine


@pytest.fixture(scope="module")
def dataset():
    return SyntheticGraphs("val", 24)


def encoder(dataset, pool: str = "attention") -> GraphEncoder:
    node_dims, num_edge_types = encoder_inputs(dataset[0])
    config = GraphEncoderConfig(node_dims=node_dims, num_edge_types=num_edge_types, width=16, depth=2, heads=2)
    config.pool = pool
    return GraphEncoder(config).eval()


def test_collation_leaves_the_longest_graph_on_the_host(dataset):
    batch = dataset.store.collate([3, 1, 4, 1, 5])
    per_graph = sum(dataset.store.num_nodes(t) for t in NODE_TYPES)
    sizes = [int(per_graph[k]) for k in (3, 1, 4, 1, 5)]
    assert isinstance(batch.max_tokens, int) and batch.max_tokens == max(sizes)
    resident = dataset.store.to("cpu").collate([3, 1, 4, 1, 5])
    assert resident.max_tokens == max(sizes)


@pytest.mark.parametrize("pool", ["attention", "mean", "cls"])
def test_padding_to_a_multiple_of_8_changes_no_embedding(dataset, pool):
    model = encoder(dataset, pool)
    batch = next(iter(GraphLoader(dataset, 7)))
    _, valid, _ = model.encode_tokens(batch)
    assert valid.size(1) == batch.max_tokens + (pool == "cls")  # on the CPU: the longest graph, no more
    exact = model(batch)
    model.pad_multiple = graph_encoder.PAD_MULTIPLE  # what CUDA gets
    _, valid, _ = model.encode_tokens(batch)
    assert valid.size(1) % 8 == 0 and valid.size(1) - 8 < batch.max_tokens + (pool == "cls") <= valid.size(1)
    assert torch.allclose(model(batch), exact, atol=1e-5)


def test_a_batch_without_host_counts_reads_them_from_the_device(dataset):
    model = encoder(dataset)
    batch = next(iter(GraphLoader(dataset, 5)))
    expected = model(batch)
    del batch.max_tokens
    assert torch.equal(model(batch), expected)


def test_compiled_blocks_pad_to_powers_of_two(dataset):
    model = encoder(dataset)
    assert [model.padded_tokens(n) for n in (0, 1, 8, 9, 17, 33)] == [0, 8, 8, 16, 24, 40]
    assert [model.padded_tokens(n, 1) for n in (0, 1, 17)] == [0, 1, 17]
    model.pad_power_of_two = True
    assert [model.padded_tokens(n) for n in (0, 1, 8, 9, 17, 33)] == [0, 8, 8, 16, 32, 64]


def train_losses(model, dataset, steps: int) -> list[float]:
    optimizer = make_optimizer(model, 3e-3, 0.1)
    scheduler = warmup_cosine(optimizer, 1, steps)
    loader = GraphLoader(dataset, 8, shuffle=True, seed=0, pick_caption=True, tokenize=model.text_encoder.tokenizer)
    losses = []
    for epoch in range(steps // len(loader)):
        loader.set_epoch(epoch)
        stats = train_epoch(
            model, loader, optimizer, scheduler, ClipLoss(), torch.device("cpu"), progress=False, log_every=1
        )
        losses.append(stats["train_loss"])
    return losses


@pytest.mark.slow
def test_compiled_training_reaches_the_eager_loss(dataset):
    """Inductor (C++ on the CPU): two epochs of three steps, compiled and eager, the same losses."""
    torch._dynamo.reset()
    config = GraphCLIPConfig.from_dict(TINY_MODEL)
    config.graph.node_dims, config.graph.num_edge_types = encoder_inputs(dataset[0])
    torch.manual_seed(0)
    eager = GraphCLIP(config)
    compiled = copy.deepcopy(eager)
    compiled.compile_dense(backend="inductor")
    expected = train_losses(eager, dataset, 6)
    got = train_losses(compiled, dataset, 6)
    assert got == pytest.approx(expected, rel=1e-4)
    assert expected[1] < expected[0]
    torch._dynamo.reset()


def test_compiled_blocks_compile_once_per_token_bucket_whatever_the_batch_size(dataset):
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    model = encoder(dataset)
    model.compile_blocks(backend="eager")  # dynamo's graph capture alone: guards and recompilations as with inductor
    before = counters["frames"]["ok"]
    buckets = set()
    for batch_size in (7, 5, 3, 8):
        for batch in GraphLoader(dataset, batch_size):
            if batch.num_graphs > 1:  # B = 1 is specialised by the compiler (one more compilation)
                model(batch)
                buckets.add(model.padded_tokens(batch.max_tokens))
    assert len(buckets) >= 2
    assert counters["frames"]["ok"] - before == len(buckets)
    torch._dynamo.reset()
