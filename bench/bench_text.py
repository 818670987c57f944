"""The text side of a composition step on the CPU: texts run by length, and AdamW fused.

    python bench/bench_text.py --out bench/results/text.json

1. The texts of one training batch of `train/configs/composition-v4.yaml`
   (captions, twins' captions and hard negatives: about 400 texts, up to 32
   positions) are taken from a one-epoch run on `--train-size` scenes (the
   first batch `TextEncoder.forward` is given). The default model's text tower
   (semgraph-tiny) then embeds them, forward and backward, run whole (every
   text cut to the longest: open_clip's tower) and in 2, 3, 4, 6 and 8 runs of
   similar length (`models.text.length_buckets`). The largest difference of
   the embeddings to the whole batch's is reported beside each.
2. One AdamW step over the default model's parameters with random gradients:
   torch's per-tensor loop (its CPU default), `foreach`, and `fused` (what
   `train.loop.make_optimizer` now asks for).

Method: 3 warm-up steps, then the median of 10 timed ones (`time.perf_counter`);
one process, all cores. Run it alone: a neighbouring process skews every figure.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import models.text as text  # noqa: E402
import train.run as run  # noqa: E402
from bench.bench_models import timed_steps  # noqa: E402
from models import GraphCLIP, load_config  # noqa: E402

BUCKETS = (1, 2, 3, 4, 6, 8)


def batch_tokens(train_size: int) -> torch.Tensor:
    """The token ids of the first text batch of a one-epoch composition-v4 run."""
    seen: list[torch.Tensor] = []
    forward = text.TextEncoder.forward

    def keep(self, tokens):
        if not seen:
            seen.append(tokens.clone())
        return forward(self, tokens)

    text.TextEncoder.forward = keep
    try:
        with tempfile.TemporaryDirectory() as out:
            run.main(
                [
                    "--config", str(ROOT / "train" / "configs" / "composition-v4.yaml"), "--epochs", "1",
                    "--train-size", str(train_size), "--val-size", "128", "--no-progress", "--out", out,
                ]
            )  # fmt: skip
    finally:
        text.TextEncoder.forward = forward
    return seen[0]


def text_side(tokens: torch.Tensor) -> list[dict]:
    torch.manual_seed(0)
    encoder = GraphCLIP(load_config("semgraph-tiny")).text_encoder
    lengths = text.text_lengths(tokens)
    with torch.no_grad():
        whole_embedding = encoder.tower(tokens)
    rows = []
    for buckets in BUCKETS:

        def embed(t, buckets=buckets):
            return encoder.tower(t) if buckets == 1 else encoder._by_length(t, buckets)

        def step(embed=embed):
            encoder.zero_grad()
            embed(tokens).square().sum().backward()

        with torch.no_grad():
            difference = (embed(tokens) - whole_embedding).abs().max().item()
        bounds = text.length_buckets(lengths, buckets)[1]
        rows.append(
            {
                "runs": buckets,
                "positions": sum((b - a) * length for a, b, length in bounds),
                "seconds": timed_steps(step),
                "max_difference": difference,
            }
        )
        print(rows[-1], flush=True)
    return rows


def optimizer_step() -> list[dict]:
    torch.manual_seed(0)
    params = [p for p in GraphCLIP(load_config("semgraph-tiny")).parameters() if p.requires_grad]
    for p in params:
        p.grad = torch.randn_like(p)
    rows = []
    for name, options in (("loop", {"foreach": False}), ("foreach", {"foreach": True}), ("fused", {"fused": True})):
        optimizer = torch.optim.AdamW(params, lr=1e-3, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.1, **options)
        rows.append({"adamw": name, "seconds": timed_steps(optimizer.step)})
        print(rows[-1], flush=True)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-size", type=int, default=1280, help="scenes of the run the texts come from")
    parser.add_argument("--out", type=Path, help="write the figures here as JSON")
    args = parser.parse_args(argv)
    tokens = batch_tokens(args.train_size)
    lengths = text.text_lengths(tokens)
    result = {
        "machine": {"processor": platform.processor() or platform.machine(), "threads": torch.get_num_threads()},
        "texts": tokens.size(0),
        "positions": tokens.size(1),
        "filled": int(lengths.sum()),
        "text_tower": text_side(tokens),
        "optimizer": optimizer_step(),
    }
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
