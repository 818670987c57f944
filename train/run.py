"""Train a graph-text CLIP model: `python train/run.py --graph-type hetero`.

The entry point is `main(argv) -> dict`, so a test can run a whole training
by calling it. A run writes its directory (params.json, out.log,
results.jsonl, checkpoints/) and returns the last validation metrics.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
import time
import warnings
from pathlib import Path

# PyG scripts a few modules at import; torch 2.14 warns for each. Not ours to fix.
warnings.filterwarnings("ignore", message="`torch.jit.script` is deprecated", category=FutureWarning)

import numpy as np
import torch

from data import open_dataset
from data.cli import add_data_arguments, data_options
from data.loader import GraphLoader
from evaluate.retrieval import embed_dataset, format_table, retrieval_metrics
from graphs import SCHEMA_VERSION, encoder_inputs
from models import BIAS_MODES, DEFAULT_CONFIG, GraphCLIP, load_config
from train.loop import make_optimizer, train_epoch, warmup_cosine
from train.rundir import LOG, RunDir


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="train/run.py",
        description="Train an edge-biased graph transformer on image graphs against an open_clip text tower "
        "(contrastive, CLIP-style). The default trains the hetero model on the embedded synthetic world.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_data_arguments(parser)
    model = parser.add_argument_group("model")
    model.add_argument("--model-config", default=DEFAULT_CONFIG, help="a config name in models/configs or a JSON path")
    model.add_argument(
        "--edge-bias", choices=BIAS_MODES, default=None, help="attention bias mode (default: the config's)"
    )
    optim = parser.add_argument_group("optimisation")
    optim.add_argument("--epochs", type=int, default=20)
    optim.add_argument("--batch-size", type=int, default=256)
    optim.add_argument("--lr", type=float, default=1e-3, help="peak learning rate")
    optim.add_argument("--weight-decay", type=float, default=0.1)
    optim.add_argument("--warmup-steps", type=int, default=50, help="linear warm-up, then cosine decay")
    optim.add_argument("--grad-clip", type=float, default=1.0, help="clip the gradient norm (0: off)")
    run = parser.add_argument_group("run")
    run.add_argument("--seed", type=int, default=0, help="seed of the synthetic world and of training")
    run.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="auto picks CUDA when present")
    run.add_argument("--precision", choices=("fp32", "bf16"), default=None, help="default: bf16 on CUDA, fp32 on CPU")
    run.add_argument("--out", type=Path, default=None, help="run directory (default: runs/<graph-type>-<time>)")
    run.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice)")
    run.add_argument("--no-progress", action="store_true", help="no progress bars (logs only)")
    return parser


def resolve_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda was asked for but CUDA is not available on this machine")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def build_model(args: argparse.Namespace, sample_graph) -> GraphCLIP:
    config = load_config(args.model_config)
    config.graph.node_dims, config.graph.num_edge_types = encoder_inputs(sample_graph)
    if args.edge_bias is not None:
        config.graph.edge_bias = args.edge_bias
    return GraphCLIP(config)


def main(argv: list[str] | None = None) -> dict:
    """Train as the command line says; return the last validation metrics."""
    args = build_parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    precision = args.precision or ("bf16" if device.type == "cuda" else "fp32")
    out = args.out or Path("runs") / f"{args.graph_type}-{time.strftime('%Y%m%d-%H%M%S')}"
    run_dir = RunDir(out)
    progress = not args.no_progress
    console = logging.StreamHandler(sys.stdout)
    console.setFormatter(logging.Formatter("%(message)s"))
    LOG.addHandler(console)
    try:
        seed_everything(args.seed)
        LOG.info("run directory %s; device %s (%s)", run_dir.path, device, precision)
        options = data_options(args)
        train_set = open_dataset(options, "train", progress)
        val_set = open_dataset(options, "val", progress)
        model = build_model(args, train_set[0]).to(device)
        params = {key: (str(value) if isinstance(value, Path) else value) for key, value in vars(args).items()}
        params.update(
            out=str(run_dir.path), precision=precision, model=model.config.to_dict(), schema_version=SCHEMA_VERSION
        )
        run_dir.write_params(params)
        n_params = sum(p.numel() for p in model.parameters())
        LOG.info("%d train / %d val graphs; model %.2fM parameters", len(train_set), len(val_set), n_params / 1e6)

        generator = torch.Generator().manual_seed(args.seed)
        loader = GraphLoader(train_set, args.batch_size, shuffle=True, drop_last=True, generator=generator)
        optimizer = make_optimizer(model, args.lr, args.weight_decay)
        total_steps = args.epochs * len(loader)
        scheduler = warmup_cosine(optimizer, min(args.warmup_steps, max(1, total_steps // 5)), total_steps)
        caption_rng = random.Random(args.seed)
        metrics: dict = {}
        step = 0
        for epoch in range(1, args.epochs + 1):
            started = time.perf_counter()
            stats = train_epoch(
                model,
                loader,
                optimizer,
                scheduler,
                device,
                caption_rng,
                precision=precision,
                grad_clip=args.grad_clip,
                progress=progress,
                description=f"epoch {epoch}/{args.epochs}",
            )
            step += len(loader)
            metrics = retrieval_metrics(*embed_dataset(model, val_set, args.batch_size, device))
            record = {"epoch": epoch, "step": step, "split": "val", **stats, **metrics}
            record["epoch_seconds"] = time.perf_counter() - started
            run_dir.append_result(record)
            LOG.info(
                "epoch %d: loss %.4f, %.0f samples/s, %.1f s\n%s",
                epoch,
                stats["train_loss"],
                stats["samples_per_s"],
                record["epoch_seconds"],
                format_table(metrics),
            )
            state = {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "epoch": epoch,
                "step": step,
                "model_config": model.config.to_dict(),
                "graph_type": args.graph_type,
                "schema_version": SCHEMA_VERSION,
                "params": params,
            }
            run_dir.save_checkpoint(state, epoch)
        final = {"epoch": args.epochs, "step": step, **metrics}
        LOG.info("final: %s", json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in final.items()}))
        return final
    finally:
        LOG.removeHandler(console)
        run_dir.close()


def cli() -> None:
    main()


if __name__ == "__main__":
    main()
