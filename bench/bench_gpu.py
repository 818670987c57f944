"""The GPU path: image-side throughput against the GPU's measured bf16 peak, the whole training
step, `--compile` on and off, a check that no step waits for the host, and a COCO epoch's wall clock.

    python bench/bench_gpu.py --out bench/results/gpu.json
    torchrun --nproc-per-node N bench/bench_gpu.py --out bench/results/gpu-ddp.json   # DDP over NCCL

1. The bf16 matmul peak of this GPU: the median TFLOP/s of 8192^3 matmuls,
   measured in the same run as everything below.
2. The image side alone: training steps (forward, backward, fused AdamW) of
   the graph encoder at ViT-S/16 size (width 384, 12 layers, 6 heads), batch
   1024 graphs of 32 tokens, bf16 autocast, batches assembled on the device
   from a device-resident store: samples/s, achieved TFLOP/s (3x the forward
   FLOPs of bench_models.transformer_flops, on the graphs' own tokens) and
   their share of the peak. Target: at least 35 %.
3. The whole step, through the training loop itself (`train.loop.train_epoch`,
   `--data-on-device` batches, losses read every `--log-every` steps): the
   same image side, a text tower of ViT-B-32's size (12 layers, width 512,
   77 tokens), the contrastive loss with fp32 logits, AdamW: samples/s, the
   wall clock of one COCO epoch (`--epoch-images`, 118287 = train2017)
   extrapolated from it, and the steps between reads run under
   `torch.cuda.set_sync_debug_mode("error")`: any host sync there is
   reported (`sync_check`) with the operation that made it.
4. Both eager and with the dense blocks compiled (`--compile` of
   train/run.py: `GraphCLIP.compile_dense`), unless `--only eager|compile`.
5. Under torchrun with several GPUs, the whole step runs in DistributedDataParallel
   over NCCL (`--batch` graphs per GPU, features gathered for the loss as in
   training); samples/s summed over the processes.

Needs CUDA; without it, it says so and stops (`--smoke` runs the same code on
the CPU at toy sizes, to check the script itself).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import traceback
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_models import synthetic_graph, transformer_flops  # noqa: E402
from open_clip.loss import ClipLoss  # noqa: E402
from torch.nn.parallel import DistributedDataParallel  # noqa: E402

from data.datasets import GraphDataset  # noqa: E402
from data.loader import GraphLoader  # noqa: E402
from data.store import GraphStore  # noqa: E402
from graphs import encoder_inputs  # noqa: E402
from models import GraphCLIP  # noqa: E402
from models.clip import GraphCLIPConfig  # noqa: E402
from models.graph_encoder import GraphEncoder, GraphEncoderConfig  # noqa: E402
from models.text import open_clip_text_config  # noqa: E402
from train.distributed import close_world, init_world  # noqa: E402
from train.loop import make_optimizer, train_epoch, warmup_cosine  # noqa: E402

VIT_S = {"width": 384, "depth": 12, "heads": 6}
INPUT_DIM = 256  # the object features of bench_models.synthetic_graph


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def project_frames(error: BaseException) -> str:
    """The project's own frames of an exception's traceback, innermost last: where a sync was made."""
    root = Path(__file__).resolve().parents[1]
    frames = [
        f"{Path(frame.filename).resolve().relative_to(root)}:{frame.lineno} {frame.line}"
        for frame in traceback.extract_tb(error.__traceback__)
        if Path(frame.filename).resolve().is_relative_to(root)
    ]
    return " <- ".join(reversed(frames[-3:])) or "no frame of the project's"


def median_time(step, device: torch.device, warmup: int = 5, repeats: int = 20) -> float:
    for _ in range(warmup):
        step()
    synchronize(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def matmul_peak(device: torch.device, size: int) -> float:
    a = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    b = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    return 2 * size**3 / median_time(lambda: a @ b, device) / 1e12


def graph_store(count: int, tokens: int, device: torch.device) -> GraphStore:
    """`count` graphs of exactly `tokens` tokens, one caption each, resident on `device`."""
    generator = torch.Generator().manual_seed(0)
    store = GraphStore.from_graphs([synthetic_graph(tokens, generator) for _ in range(count)])
    store.captions = [[f"a scene of {k % 97} objects and {k % 89} relations"] for k in range(count)]
    return store.to(device)


def image_side(store: GraphStore, batch: int, tokens: int, compile_blocks: bool, device: torch.device) -> dict:
    """Forward, backward and AdamW of the graph encoder at ViT-S size on batches made on the device."""
    encoder = GraphEncoder(GraphEncoderConfig(**VIT_S, embed_dim=VIT_S["width"])).to(device)
    if compile_blocks:
        encoder.compile_blocks()
    optimizer = torch.optim.AdamW(encoder.parameters(), 1e-4, fused=device.type == "cuda")
    order = list(range(batch))

    def step():
        graphs = store.collate(order)
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16):
            loss = encoder(graphs).float().pow(2).mean()
        loss.backward()
        optimizer.step()

    seconds = median_time(step, device)
    flops = 3 * batch * transformer_flops(tokens, VIT_S["width"], VIT_S["depth"], INPUT_DIM)
    return {"samples_per_s": batch / seconds, "achieved_tflops": flops / seconds / 1e12}


def whole_step(store: GraphStore, args: argparse.Namespace, compile_model: bool, world, device) -> dict:
    """The training loop on device-resident batches: image side, ViT-B-32-size text tower, loss, AdamW."""
    config = GraphCLIPConfig(embed_dim=512, graph=GraphEncoderConfig(**VIT_S), text=open_clip_text_config("ViT-B-32"))
    config.graph.node_dims, config.graph.num_edge_types = encoder_inputs(store.to("cpu")[0])
    model = GraphCLIP(config).to(device)
    if compile_model:
        model.compile_dense()
    network = model
    if world.distributed:
        network = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    tokens = store.caption_tokens(model.text_encoder.tokenize, device)
    loader = GraphLoader(
        GraphDataset(store, "hetero"),
        args.batch,
        shuffle=True,
        drop_last=True,
        rank=world.rank,
        world_size=world.size,
        pick_caption=True,
        caption_tokens=tokens,
    )
    optimizer = make_optimizer(model, 1e-4, 0.1)
    scheduler = warmup_cosine(optimizer, 1, 10 * len(loader))
    loss_fn = ClipLoss(gather_with_grad=True, rank=world.rank, world_size=world.size)
    sync_error = None

    def watch_syncs(done: int) -> None:  # steps 2 .. n-1 under the sync debugger; step n reads the losses
        if device.type != "cuda":
            return
        torch.cuda.set_sync_debug_mode("error" if 1 <= done < len(loader) - 1 else 0)

    def epoch(check: bool) -> dict:
        nonlocal sync_error
        try:
            return train_epoch(
                network,
                loader,
                optimizer,
                scheduler,
                loss_fn,
                device,
                precision="bf16",
                grad_clip=1.0,
                after_step=watch_syncs if check else None,
                progress=False,
                log_every=len(loader),
            )
        except RuntimeError as error:  # the sync debugger names the operation that synchronised
            if not check or device.type != "cuda":
                raise
            torch.cuda.set_sync_debug_mode(0)
            sync_error = f"{str(error).splitlines()[0]} (at {project_frames(error)})"
            return {}

    loader.set_epoch(0)
    epoch(check=False)  # warm-up: compilation, allocator, cuDNN/cuBLAS heuristics
    loader.set_epoch(1)
    stats = epoch(check=False)
    loader.set_epoch(2)
    epoch(check=True)
    samples = stats["samples_per_s"] * world.size
    return {
        "steps_per_epoch": len(loader),
        "samples_per_s": samples,
        "data_wait": stats["data_wait"],
        "coco_epoch_s": args.epoch_images / samples,
        "sync_check": (
            "not checked (no CUDA)"
            if device.type != "cuda"
            else sync_error or f"no host sync in steps 2..{len(loader) - 1} of an epoch"
        ),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--batch", type=int, default=1024, help="graphs per step (per GPU under torchrun)")
    parser.add_argument("--tokens", type=int, default=32, help="tokens per graph")
    parser.add_argument("--steps", type=int, default=8, help="steps per epoch of the whole-step runs")
    parser.add_argument("--only", choices=("eager", "compile"), help="measure one of the two (default: both)")
    parser.add_argument("--epoch-images", type=int, default=118287, help="images of the epoch to extrapolate")
    parser.add_argument("--peak-size", type=int, default=8192, help="side of the peak-measuring matmuls")
    parser.add_argument("--smoke", action="store_true", help="run on the CPU at toy sizes (checks the script)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.batch, args.tokens, args.steps, args.peak_size = 8, 16, 4, 256
    elif not torch.cuda.is_available():
        raise SystemExit("bench/bench_gpu.py needs a CUDA GPU; none is visible here (--smoke checks it on the CPU)")
    world = init_world("cpu" if args.smoke else "cuda")
    device = torch.device("cpu") if args.smoke else torch.device("cuda", world.local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    try:
        results = {
            "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu (smoke)",
            "processes": world.size,
            "batch_per_process": args.batch,
            "tokens": args.tokens,
            "bf16_matmul_peak_tflops": matmul_peak(device, args.peak_size),
        }
        store = graph_store(args.batch * args.steps * world.size, args.tokens, device)
        for mode in ("eager", "compile"):
            if args.only not in (None, mode):
                continue
            compiled = mode == "compile"
            torch._dynamo.reset()
            side = image_side(store, args.batch, args.tokens, compiled, device)
            side["share_of_peak"] = side["achieved_tflops"] / results["bf16_matmul_peak_tflops"]
            results[mode] = {"image_side": side, "whole_step": whole_step(store, args, compiled, world, device)}
        if world.is_main:
            print(json.dumps(results, indent=2))
            if args.out:
                args.out.parent.mkdir(parents=True, exist_ok=True)
                args.out.write_text(json.dumps(results, indent=2) + "\n")
        return results
    finally:
        close_world(world)


if __name__ == "__main__":
    main()
