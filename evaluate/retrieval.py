"""Image-text retrieval: R@K, mean and median rank, in both directions.

    python -m evaluate.retrieval --checkpoint RUN/checkpoints/latest.pt --eval-split test

Every data flag defaults to the checkpoint's run (evaluate.run_config): with
none given, `--eval-split val` scores the run's own validation graphs and
reproduces its last validation metrics.

The metrics themselves (train/metrics.py, which the trainer scores its
validation set with too): for datasets with several captions per image (the
COCO 5k protocol) a caption retrieves correctly when its own image is in the
top K, an image when any of its captions is. Beside them, the seed paper's
protocol: one caption per image drawn with a fixed seed (`--caption-seed`,
default 0), metrics named with the suffix `_1cap` (`t2i_R@1_1cap` ...).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from data.cache import BadItem
from data.sources import open_dataset
from evaluate.run_config import RunSettings, add_run_data_arguments, run_params, settings_from_run
from models.checkpoint import load_checkpoint, model_from_checkpoint
from train.distributed import device_from_flag
from train.metrics import (
    ONE_CAPTION_SEED,
    embed_dataset,
    format_one_caption_table,
    format_table,
    one_caption_metrics,
    retrieval_metrics,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m evaluate.retrieval",
        description="Text-to-image and image-to-text retrieval of a trained checkpoint on a dataset split.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--checkpoint", type=Path, required=True, help="RUN/checkpoints/latest.pt or epoch_N.pt")
    parser.add_argument(
        "--eval-split",
        default="test",
        choices=("train", "val", "test"),
        help="which split to retrieve in (synthetic: its split; coco: --split or --val-split)",
    )
    parser.add_argument("--batch-size", type=int, default=256, help="graphs per batch (default: the run's)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--output", type=Path, help="JSON file for the metrics (default: next to the checkpoint)")
    parser.add_argument(
        "--caption-seed",
        type=int,
        default=ONE_CAPTION_SEED,
        help="seed drawing the one caption per image of the seed paper's protocol (metrics *_1cap)",
    )
    add_run_data_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        state = load_checkpoint(args.checkpoint)
        settings = settings_from_run(parser, argv, args, *run_params(state, args.checkpoint))
        return evaluate_checkpoint(state, settings)
    except (FileNotFoundError, ValueError, BadItem) as error:
        raise SystemExit(f"error: {error}") from None


def evaluate_checkpoint(state: dict, settings: RunSettings) -> dict[str, float]:
    """Score a loaded checkpoint on the split `settings.args.eval_split`, print and write the metrics."""
    args = settings.args
    device = device_from_flag(args.device)
    model = model_from_checkpoint(state).to(device)
    options = settings.options()
    if model.config.vision:  # a pixel model reads the images the graphs carry
        options.pixels = model.config.vision_image_size
    dataset = open_dataset(options, args.eval_split)
    embeddings = embed_dataset(model, dataset, args.batch_size, device)
    metrics = retrieval_metrics(*embeddings) | one_caption_metrics(*embeddings, seed=args.caption_seed)
    print(f"{args.checkpoint} on {args.dataset} {args.eval_split} ({len(dataset)} images)")
    if settings.report():
        print(settings.report())
    print("every caption of every image:")
    print(format_table(metrics))
    print(f"one caption per image (seed {args.caption_seed}), the seed paper's protocol:")
    print(format_one_caption_table(metrics))
    output = args.output or args.checkpoint.with_name(f"retrieval_{args.dataset}_{args.eval_split}.json")
    output.write_text(
        json.dumps(
            {
                "checkpoint": str(args.checkpoint),
                "dataset": args.dataset,
                "split": args.eval_split,
                "images": len(dataset),
                "caption_seed_1cap": args.caption_seed,
                **metrics,
                **settings.record(),
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {output}")
    return metrics


if __name__ == "__main__":
    main()
