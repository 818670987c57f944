"""The GPU path: image-side step throughput at batch 1024 against the GPU's measured bf16 peak.

    python bench/bench_gpu.py --out bench/results/gpu.json [--compile]

1. The bf16 matmul peak of this GPU: the median TFLOP/s of 8192^3 matmuls.
2. Training steps (forward, backward, AdamW) of the image side alone, the
   graph encoder at ViT-S/16 size (width 384, 12 layers, 6 heads), batch 1024
   graphs of 32 tokens, bf16 autocast, batches assembled on the device from a
   device-resident store (`--data-on-device`): samples/s and achieved TFLOP/s
   (3x the forward FLOPs of bench_models.transformer_flops) as a share of the
   peak. Target: at least 35 %.

Needs CUDA; on a machine without it, it says so and stops.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_models import synthetic_graph, transformer_flops  # noqa: E402

from data.store import GraphStore  # noqa: E402
from models.graph_encoder import GraphEncoder, GraphEncoderConfig  # noqa: E402


def cuda_time(step, warmup: int = 5, repeats: int = 20) -> float:
    for _ in range(warmup):
        step()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def matmul_peak(size: int = 8192) -> float:
    a = torch.randn(size, size, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(size, size, device="cuda", dtype=torch.bfloat16)
    return 2 * size**3 / cuda_time(lambda: a @ b) / 1e12


def image_side(batch: int, tokens: int, compile_model: bool) -> dict:
    generator = torch.Generator().manual_seed(0)
    store = GraphStore.from_graphs([synthetic_graph(tokens, generator) for _ in range(batch)]).to("cuda")
    encoder = GraphEncoder(GraphEncoderConfig(width=384, depth=12, heads=6, embed_dim=384)).cuda()
    network = torch.compile(encoder, dynamic=False) if compile_model else encoder
    optimizer = torch.optim.AdamW(encoder.parameters(), 1e-4, fused=True)
    order = torch.arange(batch, device="cuda")

    def step():
        graphs = store.collate(order)
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = network(graphs).float().pow(2).mean()
        loss.backward()
        optimizer.step()

    seconds = cuda_time(step)
    flops = 3 * batch * transformer_flops(tokens, 384, 12, 256)
    return {
        "batch": batch,
        "tokens": tokens,
        "compile": compile_model,
        "samples_per_s": batch / seconds,
        "achieved_tflops": flops / seconds / 1e12,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--compile", action="store_true")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit("bench/bench_gpu.py needs a CUDA GPU; none is visible here")
    results = {"device": torch.cuda.get_device_name(), "bf16_matmul_peak_tflops": matmul_peak()}
    results["image_side"] = image_side(args.batch, args.tokens, args.compile)
    results["share_of_peak"] = results["image_side"]["achieved_tflops"] / results["bf16_matmul_peak_tflops"]
    print(json.dumps(results, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()
