"""The whole flag set of a training run, checked before any data is built.

`validate(args)` raises a `ValueError` naming the flags for every combination
that would otherwise fail deep inside a run or silently do something other
than asked: a flag that the chosen dataset, graph type, objective or process
count ignores, an option two paths cannot serve together, a value out of range.
train/run.py turns the message into ``error: ...`` with its usage line.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
from pathlib import Path

from data.sources import DataOptions
from graphs.schema import CONTEXT, NEAR

DATA_DEFAULTS = DataOptions()
# Flags that only one dataset reads (refused elsewhere when they differ from their default).
COCO_ONLY = ("coco_root", "vg_dir", "karpathy", "relations", "split", "val_split")
IMAGES_ONLY = ("images", "captions", "val_fraction", "token_source", "tokens_file", "maskrcnn_weights")
SYNTHETIC_ONLY = ("train_size", "val_size", "world", "held_out_combinations")
# The edge types a patch graph has; dropping another one would change nothing.
PATCH_EDGE_TYPES = (NEAR[1], CONTEXT[1])
# (flag, smallest allowed value, whether the smallest is allowed itself)
LOWER_BOUNDS = (
    ("epochs", 1, True),
    ("batch_size", 1, True),
    ("lr", 0, False),
    ("weight_decay", 0, True),
    ("warmup_steps", 0, True),
    ("grad_clip", 0, True),
    ("train_size", 1, True),
    ("val_size", 1, True),
    ("max_objects", 1, True),
    ("max_relations", 0, True),
    ("workers", 0, True),
    ("save_every_steps", 0, True),
    ("tokenprop_weight", 0, True),
    ("mim_weight", 0, True),
    ("mim_clusters", 2, True),
    ("text_lr_scale", 0, True),
    ("vision_image_size", 1, True),
    ("threads", 1, True),
    ("log_every", 1, True),
    ("twins_per_scene", 1, True),
)


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def given(args: argparse.Namespace, name: str) -> bool:
    """Whether a data flag differs from its default (None and False are never given)."""
    value = getattr(args, name)
    return value not in (None, False, [], getattr(DATA_DEFAULTS, name, None))


def uses_mim(args: argparse.Namespace) -> bool:
    return args.objective == "mim" or args.mim_weight > 0


def problems(args: argparse.Namespace, world_size: int = 1) -> list[str]:
    """Every reason the flag set cannot train as asked (empty when it can)."""
    return [
        *range_problems(args),
        *data_problems(args),
        *objective_problems(args, world_size),
        *vision_problems(args),
        *run_problems(args),
    ]


def validate(args: argparse.Namespace, world_size: int | None = None) -> None:
    """Raise a `ValueError` with every problem of the flag set; `world_size` defaults to torchrun's."""
    if world_size is None:
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
    found = problems(args, world_size)
    if found:
        raise ValueError("; ".join(found))


def range_problems(args: argparse.Namespace) -> list[str]:
    out = []
    for name, lowest, inclusive in LOWER_BOUNDS:
        value = getattr(args, name, None)
        if value is not None and (value < lowest or (value == lowest and not inclusive)):
            out.append(f"{flag(name)} {value} must be {'at least' if inclusive else 'above'} {lowest}")
    if not 0 < args.mim_ratio <= 1:
        out.append(f"--mim-ratio {args.mim_ratio} must be in (0, 1]: the share of object tokens hidden")
    if not 0 < args.val_fraction < 1:
        out.append(f"--val-fraction {args.val_fraction} must be in (0, 1)")
    return out


def data_problems(args: argparse.Namespace) -> list[str]:
    out = []
    only = {"coco": COCO_ONLY, "images": IMAGES_ONLY, "synthetic": SYNTHETIC_ONLY}
    for dataset, names in only.items():
        if args.dataset != dataset:
            out += [
                f"{flag(n)} applies to --dataset {dataset} only (this run reads {args.dataset})"
                for n in names
                if given(args, n)
            ]
    if args.dataset == "synthetic" and given(args, "max_objects"):
        out.append("--max-objects caps COCO annotations and tokens-file masks; the synthetic world reads neither")
    if args.held_out_combinations and args.world != "v4":
        out.append(
            "--held-out-combinations keeps world v4's held-out combinations out of training: it needs --world v4"
        )
    if args.dataset == "coco" and not args.coco_root:
        out.append("--dataset coco needs --coco-root DIR")
    if args.dataset == "images" and not (args.images and args.captions):
        out.append("--dataset images needs --images DIR and --captions FILE")
    if args.dataset == "coco" and args.relations == "vg" and not args.vg_dir:
        out.append("--relations vg needs --vg-dir (Visual Genome's image_data.json and relationships.json)")
    if args.dataset == "images":
        if args.token_source == "tokens" and not args.tokens_file:
            out.append("--token-source tokens needs --tokens-file FILE")
        if args.tokens_file and args.token_source != "tokens":
            out.append(f"--tokens-file is read by --token-source tokens only (not {args.token_source})")
        if args.maskrcnn_weights and args.token_source != "maskrcnn":
            out.append(f"--maskrcnn-weights is read by --token-source maskrcnn only (not {args.token_source})")
    out += featurizer_problems(args)
    if args.mmap and args.no_cache:
        out.append("--mmap maps the graph cache from disk; it cannot go with --no-cache")
    if args.mmap and args.dataset == "images":
        out.append(
            "--mmap cannot serve --dataset images: its train/val hold-out copies every graph into memory, "
            "which is what --mmap is there to avoid"
        )
    if args.workers and args.no_cache:
        out.append("--workers build cache shards; with --no-cache graphs are built in this process")
    if given(args, "max_relations") and (args.dataset == "synthetic" or args.graph_type == "patch"):
        reason = "the synthetic world's relations are its scenes' own"
        if args.graph_type == "patch":
            reason = "patch graphs have no relation tokens"
        out.append(f"--max-relations caps geometric relations of COCO and image folders; {reason}")
    if args.graph_type == "patch":
        absent = [name for name in args.drop_edge_types if name not in PATCH_EDGE_TYPES]
        if absent:
            out.append(
                f"--drop-edge-types {','.join(absent)}: patch graphs have no such edges "
                f"(only {', '.join(PATCH_EDGE_TYPES)}), so dropping them would change nothing"
            )
    return out


def featurizer_problems(args: argparse.Namespace) -> list[str]:
    out = []
    if args.featurizer == "backbone" and not args.backbone:
        out.append("--featurizer backbone needs --backbone timm:NAME or open_clip:NAME")
    if args.backbone and args.featurizer != "backbone":
        out.append(f"--backbone is read by --featurizer backbone only (not {args.featurizer})")
    if args.backbone_weights and not args.backbone:
        out.append("--backbone-weights needs --backbone")
    if args.featurizer != "pixels" and args.graph_type == "patch":
        out.append(
            f"--featurizer {args.featurizer} describes object tokens, and patch graphs have none: "
            "use --featurizer pixels with --graph-type patch"
        )
    if args.featurizer == "precomputed" and not (args.dataset == "images" and args.token_source == "tokens"):
        out.append(
            "--featurizer precomputed reads per-mask features from a tokens file: "
            "it needs --dataset images --token-source tokens"
        )
    return out


def objective_problems(args: argparse.Namespace, world_size: int) -> list[str]:
    out = []
    hard = [flag(n) for n in ("hard_negatives", "hard_negative_images") if getattr(args, n)]
    if hard:
        names = " and ".join(hard)
        if args.dataset != "synthetic":
            out.append(f"{names} are made from the synthetic world's scene graphs; --dataset {args.dataset} has none")
        if world_size > 1:
            out.append(f"{names} train in one process only (this run has {world_size})")
        if args.data_on_device:
            out.append(f"{names} need host batches (their texts are tokenized per batch): drop --data-on-device")
        if args.objective == "mim":
            out.append(f"{names} are extra texts, and --objective mim reads no text")
    twins = getattr(args, "twins_per_scene", 1)
    if twins > 1 and not args.hard_negative_images:
        out.append(f"--twins-per-scene {twins} makes hard-negative images (twins): it needs --hard-negative-images")
    share = getattr(args, "twin_caption_share", 0.0)
    if not 0.0 <= share <= 1.0:
        out.append(f"--twin-caption-share {share}: a share of the scenes, in [0, 1]")
    elif getattr(args, "twin_caption_mode", "replace") != "replace" and not share:
        out.append(f"--twin-caption-mode {args.twin_caption_mode} says how --twin-caption-share tells: give a share")
    elif share and not args.hard_negative_images:
        out.append(
            f"--twin-caption-share {share} tells a scene what its twin reverses: it needs --hard-negative-images"
        )
    if args.graph_type == "homo" and uses_mim(args):
        out.append(
            "masked-token modelling (--objective mim, --mim-weight) hides object tokens; homo graphs have one "
            "node type and no object tokens to hide"
        )
    if args.graph_type == "homo" and args.tokenprop_weight > 0:
        out.append(
            "--tokenprop-weight reconstructs each node type's input features; homo graphs have one node type "
            "whose features are not the schema's (use hetero)"
        )
    if args.objective == "mim" and args.mim_weight > 0:
        out.append("--mim-weight weighs MIM beside the CLIP loss; --objective mim trains MIM alone (weight 1)")
    if args.objective == "mim" and world_size > 1:
        out.append(
            "--objective mim leaves the text tower unused, which DistributedDataParallel refuses "
            f"(this run has {world_size} processes): pretrain in one process"
        )
    if args.data_on_device and getattr(args, "loader_workers", 0):
        out.append(
            "--loader-workers make host batches, and --data-on-device assembles them on the device: choose one"
        )
    if args.data_on_device and args.graph_type == "homo":
        out.append("--data-on-device serves hetero and patch graphs (homo graphs are converted one by one)")
    if not uses_mim(args):
        if args.mim_clusters != 64 or args.mim_ratio != 0.75:
            out.append("--mim-clusters and --mim-ratio are read by MIM only (--objective mim or --mim-weight)")
    if args.freeze_text and args.text_lr_scale != 1.0:
        out.append("--text-lr-scale has no effect with --freeze-text (the text tower is not trained)")
    if args.edge_bias in ("ranked", "none") and args.edge_bias_init != "ranks":
        out.append(f"--edge-bias-init is where a learned bias starts; --edge-bias {args.edge_bias} learns none")
    return out


def vision_problems(args: argparse.Namespace) -> list[str]:
    """A pixel model replaces the graph encoder: every graph option would be silently ignored."""
    if not args.vision:
        return []
    out = []
    if not args.vision.startswith(("timm:", "vit:")):
        out.append(f"--vision {args.vision} must be timm:NAME or vit:PRESET (vit:paper)")
    ignored = {
        "--graph-type homo/patch": args.graph_type != "hetero",
        "--drop-edge-types": bool(args.drop_edge_types),
        "--token-norm": args.token_norm != "none",
        "--tokenprop-weight": args.tokenprop_weight > 0,
        "--objective mim / --mim-weight": uses_mim(args),
        f"--featurizer {args.featurizer}": args.featurizer != "pixels",
        "--edge-bias": args.edge_bias is not None,
        "--edge-bias-init": args.edge_bias_init != "ranks",
        "--init-from": args.init_from is not None,
    }
    for name, is_set in ignored.items():
        if is_set:
            out.append(f"{name} shapes the graph encoder, and --vision replaces it with a pixel model")
    return out


def run_problems(args: argparse.Namespace) -> list[str]:
    out = []
    for name in ("init_from", "text_checkpoint", "backbone_weights"):
        path = getattr(args, name)
        if path is not None and not Path(path).is_file():
            out.append(f"{flag(name)} {path} does not exist")
    if args.report_to == "tensorboard" and importlib.util.find_spec("tensorboard") is None:
        out.append("--report-to tensorboard needs the tensorboard package: pip install tensorboard")
    return out
