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

from data import DATASETS, DEFAULT_SIZES, DataOptions, open_dataset
from data.images import TOKEN_SOURCES
from data.loader import GraphLoader
from evaluate.retrieval import embed_dataset, format_table, retrieval_metrics
from graphs import GRAPH_TYPES, SCHEMA_VERSION, encoder_inputs, resolve_edge_type
from graphs.featurizers import FEATURIZERS
from models import BIAS_MODES, DEFAULT_CONFIG, GraphCLIP, load_config
from train.loop import make_optimizer, train_epoch, warmup_cosine
from train.rundir import LOG, RunDir


def edge_type_list(value: str) -> list[str]:
    """'near,overlaps' -> ['near', 'overlaps']; an unknown name lists the valid ones."""
    names = [name.strip() for name in value.split(",") if name.strip()]
    try:
        return [resolve_edge_type(name)[1] for name in names]
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="train/run.py",
        description="Train an edge-biased graph transformer on image graphs against an open_clip text tower "
        "(contrastive, CLIP-style). The default trains the hetero model on the embedded synthetic world.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    data = parser.add_argument_group("data")
    data.add_argument("--dataset", choices=DATASETS, default="synthetic", help="where images and captions come from")
    data.add_argument(
        "--graph-type",
        choices=GRAPH_TYPES,
        default="hetero",
        help="what an image becomes: hetero = object/relation/image tokens with 7 edge types; "
        "homo = the same graph with one node and one edge type; patch = a grid of patch tokens (ViT baseline)",
    )
    data.add_argument(
        "--drop-edge-types",
        type=edge_type_list,
        default=[],
        metavar="NAMES",
        help="comma-separated edge types to empty in every graph (ablation), e.g. near,overlaps",
    )
    data.add_argument("--train-size", type=int, default=DEFAULT_SIZES["train"], help="synthetic training scenes")
    data.add_argument("--val-size", type=int, default=DEFAULT_SIZES["val"], help="synthetic validation scenes")
    data.add_argument("--coco-root", help="COCO folder with annotations/, train2017/, val2017/")
    data.add_argument("--split", default="train2017", help="COCO split to train on")
    data.add_argument("--val-split", default="val2017", help="COCO split to validate on")
    data.add_argument(
        "--relations",
        choices=("geometry", "vg"),
        default="geometry",
        help="COCO relations: from mask geometry, or Visual Genome triplets (--vg-dir)",
    )
    data.add_argument("--vg-dir", help="folder with Visual Genome image_data.json and relationships.json")
    data.add_argument("--karpathy", help="Karpathy split file (dataset_coco.json): its images and sentences")
    data.add_argument("--max-objects", type=int, default=30, help="COCO objects per image, largest first")
    data.add_argument("--max-relations", type=int, default=20, help="geometric relations per image, nearest first")
    data.add_argument("--images", help="--dataset images: the image folder")
    data.add_argument("--captions", help="--dataset images: JSON lines {file_name, captions}")
    data.add_argument("--val-fraction", type=float, default=0.1, help="--dataset images: share held out")
    data.add_argument(
        "--token-source",
        choices=TOKEN_SOURCES,
        default="felzenszwalb",
        help="--dataset images: segmenter, a tokens file, or Mask R-CNN",
    )
    data.add_argument("--tokens-file", help="JSON lines of masks (COCO RLE) and triplets per image")
    data.add_argument("--maskrcnn-weights", help="local torchvision Mask R-CNN weights")
    data.add_argument("--featurizer", choices=FEATURIZERS, default="pixels", help="what object tokens carry")
    data.add_argument("--backbone", help="timm:NAME or open_clip:NAME for --featurizer backbone")
    data.add_argument("--backbone-weights", help="local weights of the backbone")
    data.add_argument("--cache-dir", help="graph cache folder (default $SEMGRAPH_CACHE or ~/.cache/semgraph/graphs)")
    data.add_argument("--no-cache", action="store_true", help="build graphs in memory, write nothing")
    data.add_argument("--workers", type=int, default=0, help="processes building graphs (0: this one)")
    data.add_argument(
        "--on-bad-image",
        choices=("error", "skip"),
        default="error",
        help="a corrupt image or broken annotation: stop with an error, or skip it and count it",
    )
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


def data_options(args: argparse.Namespace) -> DataOptions:
    names = set(DataOptions.__dataclass_fields__)
    values = {k: v for k, v in vars(args).items() if k in names}
    return DataOptions(**values, use_cache=not args.no_cache, on_bad=args.on_bad_image)


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
