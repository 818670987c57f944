"""Training-step speed of the graph encoder against timm's ViT-S/16, attention variants, scaling.

    python bench/bench_models.py --out bench/results/models.json

1. step throughput (forward, backward, AdamW; samples/s) of the graph encoder
   at ViT-S/16's width, depth and heads (384, 12, 6) on graphs of 16, 32 and
   64 tokens, against timm's vit_small_patch16_224 at 224 px (197 tokens),
   interleaved step by step (one ViT step, then one step of each graph size,
   per round), reported as the median and spread of the rounds' paired
   speed-up over the FLOP ratio; then a torch.profiler breakdown of both
   steps at 32 tokens (where the gap to the FLOP ratio goes);
2. one layer of attention over the same graphs: dense padded SDPA with the
   edge-type bias (ours) against the same attention over an edge list through
   `torch_geometric.utils.softmax`, and against PyG's TransformerConv on the
   graphs' own edges;
3. scaling of the small default encoder with tokens per graph (16..256) and
   batch size: samples/s and the peak resident memory of a fresh process
   running that step alone.

Method: every configuration runs 3 warm-up steps, then the median of 10 timed
steps (the ViT comparison: 15 paired rounds) (`time.perf_counter`, after the step's last op); one process, all cores.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch_geometric.data import Batch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from graphs.schema import CONTEXT, IMAGE, NEAR, OBJECT, PREDICATE_KEYS, RELATION, SUBJECT_OF, empty_graph  # noqa: E402
from models.graph_encoder import GraphEncoder, GraphEncoderConfig  # noqa: E402


def synthetic_graph(tokens: int, generator: torch.Generator):
    """A schema graph of exactly `tokens` tokens: 1 image, n objects, tokens-1-n relations, with edges."""
    objects = max(2, (tokens - 1) // 3)
    relations = tokens - 1 - objects
    data = empty_graph()
    data[OBJECT].x = torch.rand(objects, 256, generator=generator)
    data[OBJECT].box = torch.rand(objects, 4, generator=generator)
    data[OBJECT].label = torch.zeros(objects, dtype=torch.long)
    data[OBJECT].area = torch.rand(objects, generator=generator)
    data[RELATION].x = torch.rand(relations, data[RELATION].x.size(1), generator=generator)
    data[RELATION].box = torch.rand(relations, 4, generator=generator)
    data[RELATION].predicate = torch.zeros(relations, dtype=torch.long)
    data[RELATION].name_key = torch.full((relations,), PREDICATE_KEYS[0], dtype=torch.long)
    data[IMAGE].x = torch.rand(1, data[IMAGE].x.size(1), generator=generator)
    data[IMAGE].box = torch.tensor([[0.5, 0.5, 1.0, 1.0]])
    subjects = torch.randint(objects, (relations,), generator=generator)
    data[SUBJECT_OF].edge_index = torch.stack([subjects, torch.arange(relations)])
    data[("relation", "has_object", "object")].edge_index = torch.stack(
        [torch.arange(relations), (subjects + 1) % objects]
    )
    near = torch.stack([torch.arange(objects).repeat_interleave(2), torch.randint(objects, (2 * objects,))])
    data[NEAR].edge_index = near[:, near[0] != near[1]]
    data[CONTEXT].edge_index = torch.stack([torch.zeros(objects, dtype=torch.long), torch.arange(objects)])
    return data


def timed_steps(step, warmup: int = 3, repeats: int = 10) -> float:
    for _ in range(warmup):
        step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def train_step(model, inputs, optimizer):
    def step():
        optimizer.zero_grad(set_to_none=True)
        model(inputs).float().pow(2).mean().backward()
        optimizer.step()

    return step


def transformer_flops(tokens: int, width: int, depth: int, input_dim: int) -> float:
    """Forward FLOPs of one sample: linear layers 24 N C^2, attention 4 N^2 C per layer, plus the input projection."""
    per_layer = 24 * tokens * width**2 + 4 * tokens**2 * width
    return depth * per_layer + 2 * tokens * input_dim * width


def vit_versus_graphs(batch: int, token_counts: list[int], rounds: int = 15, warmup: int = 3) -> list[dict]:
    """Paired timing: each round times one ViT step, then one graph step of every size, in turn.

    A neighbouring process that slows the machine for a while then slows both
    sides of the same round, so the ratio of a round stays fair; the median of
    the rounds' ratios and their inter-quartile range are reported.
    """
    import timm

    vit = timm.create_model("vit_small_patch16_224", pretrained=False, num_classes=384)
    images = torch.randn(batch, 3, 224, 224)
    vit_step = train_step(vit, images, torch.optim.AdamW(vit.parameters(), 1e-4))
    vit_flops = transformer_flops(197, 384, 12, 3 * 16 * 16)
    generator = torch.Generator().manual_seed(0)
    graph_steps = {}
    for tokens in token_counts:
        encoder = GraphEncoder(GraphEncoderConfig(width=384, depth=12, heads=6, embed_dim=384))
        graphs = Batch.from_data_list([synthetic_graph(tokens, generator) for _ in range(batch)])
        graph_steps[tokens] = train_step(encoder, graphs, torch.optim.AdamW(encoder.parameters(), 1e-4))
    for _ in range(warmup):
        vit_step()
        for step in graph_steps.values():
            step()
    vit_times: list[float] = []
    graph_times: dict[int, list[float]] = {tokens: [] for tokens in token_counts}
    for _ in range(rounds):
        vit_times.append(step_seconds(vit_step))
        for tokens, step in graph_steps.items():
            graph_times[tokens].append(step_seconds(step))
    rows = []
    for tokens in token_counts:
        flop_ratio = vit_flops / transformer_flops(tokens, 384, 12, 256)
        paired = sorted(v / g / flop_ratio for v, g in zip(vit_times, graph_times[tokens], strict=True))
        quartiles = statistics.quantiles(paired, n=4)
        rows.append(
            {
                "tokens": tokens,
                "batch": batch,
                "rounds": rounds,
                "graph_samples_per_s": batch / statistics.median(graph_times[tokens]),
                "vit_samples_per_s": batch / statistics.median(vit_times),
                "flop_ratio": flop_ratio,
                "speedup_over_flop_ratio_median": statistics.median(paired),
                "speedup_over_flop_ratio_q1": quartiles[0],
                "speedup_over_flop_ratio_q3": quartiles[2],
                "speedup_over_flop_ratio_min": paired[0],
                "speedup_over_flop_ratio_max": paired[-1],
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    return rows


def step_seconds(step) -> float:
    start = time.perf_counter()
    step()
    return time.perf_counter() - start


def profile_pair(batch: int, tokens: int = 32, top: int = 12) -> dict:
    """Where the time of one ViT-S/16 step and one graph step at `tokens` goes (torch.profiler, CPU)."""
    import timm
    from torch.profiler import ProfilerActivity, profile

    vit = timm.create_model("vit_small_patch16_224", pretrained=False, num_classes=384)
    images = torch.randn(batch, 3, 224, 224)
    encoder = GraphEncoder(GraphEncoderConfig(width=384, depth=12, heads=6, embed_dim=384))
    generator = torch.Generator().manual_seed(0)
    graphs = Batch.from_data_list([synthetic_graph(tokens, generator) for _ in range(batch)])
    result = {}
    for name, step, flops in (
        (
            "vit",
            train_step(vit, images, torch.optim.AdamW(vit.parameters(), 1e-4)),
            transformer_flops(197, 384, 12, 768),
        ),
        (
            f"graph_{tokens}",
            train_step(encoder, graphs, torch.optim.AdamW(encoder.parameters(), 1e-4)),
            transformer_flops(tokens, 384, 12, 256),
        ),
    ):
        for _ in range(3):
            step()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(3):
                step()
        events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
        total = sum(e.self_cpu_time_total for e in events)
        result[name] = {
            "step_ms": total / 3 / 1000,
            "gflop_per_s_forward_x3": 3 * flops * batch / (total / 3 / 1e6) / 1e9,
            "top_ops": [
                {"op": e.key, "share": e.self_cpu_time_total / total, "calls_per_step": e.count / 3}
                for e in events[:top]
            ],
        }
    print(json.dumps(result, indent=1), flush=True)
    return result


class EdgeListAttention(torch.nn.Module):
    """The same biased attention as the dense layer, over an edge list of all token pairs."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads, self.qkv, self.proj = heads, torch.nn.Linear(width, 3 * width), torch.nn.Linear(width, width)

    def forward(self, x, pairs, bias):
        from torch_geometric.utils import softmax

        n, width = x.shape
        q, k, v = self.qkv(x).view(n, 3, self.heads, width // self.heads).unbind(1)
        src, dst = pairs
        logits = (q[dst] * k[src]).sum(-1) / (width // self.heads) ** 0.5 + bias  # [E, H]
        weights = softmax(logits, dst, num_nodes=n)
        out = torch.zeros_like(q).index_add_(0, dst, weights.unsqueeze(-1) * v[src])
        return self.proj(out.reshape(n, width))


def attention_variants(batch: int, tokens: int, width: int = 128, heads: int = 4) -> dict:
    from torch_geometric.nn import TransformerConv

    from models.attention import BiasedSelfAttention

    generator = torch.Generator().manual_seed(0)
    graphs = [synthetic_graph(tokens, generator) for _ in range(batch)]
    x = torch.randn(batch, tokens, width)
    dense = BiasedSelfAttention(width, heads)
    mask = torch.randn(batch, heads, tokens, tokens)
    results = {"tokens": tokens, "batch": batch}

    def dense_step():
        dense(x, mask).sum().backward()

    results["dense_sdpa_ms"] = 1000 * timed_steps(dense_step)
    flat = x.reshape(-1, width)
    index = torch.arange(batch * tokens).view(batch, tokens)
    pairs = torch.cat([torch.stack(torch.meshgrid(row, row, indexing="ij")).reshape(2, -1) for row in index], 1)
    bias = torch.randn(pairs.size(1), heads)
    edge_list = EdgeListAttention(width, heads)

    def edge_step():
        edge_list(flat, pairs, bias).sum().backward()

    results["edge_list_softmax_ms"] = 1000 * timed_steps(edge_step)
    homogeneous = Batch.from_data_list([g.to_homogeneous(node_attrs=[], edge_attrs=[]) for g in graphs])
    conv = TransformerConv(width, width // heads, heads=heads)
    sparse_x = torch.randn(homogeneous.num_nodes, width)

    def conv_step():
        conv(sparse_x, homogeneous.edge_index).sum().backward()

    results["pyg_transformerconv_edges_ms"] = 1000 * timed_steps(conv_step)
    results["graph_edges"] = int(homogeneous.edge_index.size(1))
    print(json.dumps(results), flush=True)
    return results


def scaling_point(tokens: int, batch: int) -> dict:
    """One scaling configuration; run in a fresh process so that its peak resident memory is its own."""
    import resource

    generator = torch.Generator().manual_seed(0)
    encoder = GraphEncoder(GraphEncoderConfig())
    graphs = Batch.from_data_list([synthetic_graph(tokens, generator) for _ in range(batch)])
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    seconds = timed_steps(train_step(encoder, graphs, torch.optim.AdamW(encoder.parameters(), 1e-4)), 2, 5)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "tokens": tokens,
        "batch": batch,
        "samples_per_s": batch / seconds,
        "peak_rss_mb": peak / 1024,
        "step_rss_growth_mb": (peak - before) / 1024,
        "attention_matrix_mb_per_layer": batch * 4 * tokens * tokens * 4 / 2**20,
    }


def scaling(token_counts: list[int], batches: list[int]) -> list[dict]:
    rows = []
    for tokens in token_counts:
        for batch in batches:
            done = subprocess.run(
                [sys.executable, __file__, "--scaling-point", str(tokens), str(batch)],
                capture_output=True,
                text=True,
                check=True,
            )
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), flush=True)
    return rows


def profile_default_step(batch_size: int = 256) -> dict:
    """One step of the default `make train` configuration, part by part (ms, median of 10)."""
    from open_clip.loss import ClipLoss

    from data import SyntheticGraphs
    from data.loader import GraphLoader
    from graphs import encoder_inputs
    from models import GraphCLIP, load_config
    from train.loop import make_optimizer

    dataset = SyntheticGraphs("train", batch_size)
    config = load_config("semgraph-tiny")
    config.graph.node_dims, config.graph.num_edge_types = encoder_inputs("hetero")
    model = GraphCLIP(config)
    optimizer = make_optimizer(model, 1e-3, 0.1)
    loader = GraphLoader(dataset, batch_size, pick_caption=True)
    batch = next(iter(loader))
    tokens = model.text_encoder.tokenize(batch.texts)
    loss_fn = ClipLoss()
    parts = {}
    parts["data_collate_and_tokenize"] = timed_steps(lambda: model.text_encoder.tokenize(next(iter(loader)).texts))
    parts["graph_forward_backward"] = timed_steps(lambda: model.encode_graph(batch).sum().backward())
    parts["text_forward_backward"] = timed_steps(lambda: model.encode_text(tokens).sum().backward())
    image, text = model.encode_graph(batch).detach(), model.encode_text(tokens).detach()
    image.requires_grad_(True)
    text.requires_grad_(True)
    parts["loss_forward_backward"] = timed_steps(lambda: loss_fn(image, text, model.logit_scale.exp()).backward())
    parts["optimizer"] = timed_steps(optimizer.step)

    def whole():
        optimizer.zero_grad(set_to_none=True)
        out = model(batch, tokens)
        loss_fn(out.image, out.text, out.scale).backward()
        optimizer.step()

    parts["whole_step_without_data"] = timed_steps(whole)
    result = {key: 1000 * value for key, value in parts.items()}
    result["data_share_of_step"] = parts["data_collate_and_tokenize"] / (
        parts["data_collate_and_tokenize"] + parts["whole_step_without_data"]
    )
    print(json.dumps(result), flush=True)
    return result


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--scaling-point", type=int, nargs=2, metavar=("TOKENS", "BATCH"), help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=int, default=15, help="paired rounds of the ViT comparison")
    parser.add_argument(
        "--skip", default="", help="comma-separated parts to skip: vit,vit-profile,profile,attention,scaling"
    )
    args = parser.parse_args(argv)
    if args.scaling_point:
        print(json.dumps(scaling_point(*args.scaling_point)))
        return {}
    skip = set(args.skip.split(","))
    results = {"torch": torch.__version__, "threads": torch.get_num_threads()}
    if "vit" not in skip:
        results["vit_versus_graphs"] = vit_versus_graphs(args.batch, [16, 32, 64], args.rounds)
    if "vit-profile" not in skip:
        results["vit_graph_profile"] = profile_pair(args.batch)
    if "profile" not in skip:
        results["default_step_profile"] = profile_default_step()
    if "attention" not in skip:
        results["attention"] = [attention_variants(64, n) for n in (16, 32, 64)]
    if "scaling" not in skip:
        results["scaling"] = scaling([16, 32, 64, 128, 256], [64, 256])
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()
