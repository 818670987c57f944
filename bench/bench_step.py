"""Samples/s of the whole training step on the CPU: the default run and the paper-size model,
eager and `--compile`, with 0, 1 and 2 loader workers.

    python bench/bench_step.py --out bench/results/step.json

Each configuration is one `train/run.py` run in this process (`main(argv)`)
on the synthetic world: `--epochs 2` (default) of `--train-size` scenes,
`--batch-size` graphs per step, `--threads` torch threads, fp32, no progress
bars. The figures are those of the run's last epoch (the first one compiles
with `--compile` and warms caches): samples/s and the share of the epoch spent
waiting for the next batch (`data_wait`, collation and tokenization included
when they run in the main process), both as `results.jsonl` records them.
Compilations are counted per epoch (torch._dynamo's count of compiled frames,
taken before and after each epoch): the first epoch compiles once per token
bucket; later epochs should compile nothing.

Run it alone on a quiet machine: a neighbouring process skews every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import train.run as run  # noqa: E402
import train.trainer as trainer  # noqa: E402

MODELS = {"default": "semgraph-tiny", "paper": "seed-paper"}


def frames_compiled() -> int:
    from torch._dynamo.utils import counters

    return counters["frames"]["ok"]


def measure(model_config: str, compile_model: bool, workers: int, args: argparse.Namespace, cache: Path) -> dict:
    """One run; the last epoch's samples/s and data wait, compilations per epoch."""
    torch._dynamo.reset()
    epochs: list[dict] = []
    train_epoch = trainer.train_epoch

    def counted_epoch(*positional, **keywords):
        before = frames_compiled()
        stats = train_epoch(*positional, **keywords)
        epochs.append({**stats, "compilations": frames_compiled() - before})
        return stats

    trainer.train_epoch = counted_epoch
    try:
        with tempfile.TemporaryDirectory() as folder:
            argv = [
                "--model-config",
                model_config,
                "--train-size",
                str(args.train_size),
                "--val-size",
                str(args.val_size),
                "--batch-size",
                str(args.batch_size),
                "--epochs",
                str(args.epochs),
                "--device",
                "cpu",
                "--precision",
                "fp32",
                "--loader-workers",
                str(workers),
                "--log-every",
                str(args.log_every),
                "--cache-dir",
                str(cache),
                "--out",
                str(Path(folder) / "run"),
                "--no-progress",
                *(["--threads", str(args.threads)] if args.threads else []),
                *(["--compile"] if compile_model else []),
            ]
            started = time.perf_counter()
            run.main(argv)
            wall = time.perf_counter() - started
    finally:
        trainer.train_epoch = train_epoch
    last = epochs[-1]
    return {
        "model_config": model_config,
        "compile": compile_model,
        "loader_workers": workers,
        "samples_per_s": last["samples_per_s"],
        "data_wait": last["data_wait"],
        "compilations_per_epoch": [epoch["compilations"] for epoch in epochs],
        "recompilations_after_first_epoch": sum(epoch["compilations"] for epoch in epochs[1:]),
        "wall_s": wall,
        "argv": " ".join(argv[: argv.index("--cache-dir")] + argv[argv.index("--cache-dir") + 2 :]),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, help="write the results here (JSON)")
    parser.add_argument("--models", nargs="+", choices=tuple(MODELS), default=list(MODELS))
    parser.add_argument("--workers", nargs="+", type=int, default=[0, 1, 2], help="loader workers to try")
    parser.add_argument("--no-compile", action="store_true", help="eager only (skip the --compile runs)")
    parser.add_argument("--train-size", type=int, default=2048)
    parser.add_argument("--val-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=2, help="at least 2: the last epoch is measured")
    parser.add_argument("--log-every", type=int, default=50)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args(argv)
    if args.epochs < 2:
        parser.error("--epochs must be at least 2: the first epoch compiles and warms up, the last is measured")
    runs = []
    cache = tempfile.TemporaryDirectory()  # the scenes are built once, for every run
    for name in args.models:
        for compile_model in (False,) if args.no_compile else (False, True):
            for workers in args.workers:
                result = measure(MODELS[name], compile_model, workers, args, Path(cache.name))
                runs.append({"model": name, **result})
                print(
                    f"{name:8s} compile={compile_model!s:5s} workers={workers}: "
                    f"{result['samples_per_s']:8.1f} samples/s, data wait {100 * result['data_wait']:4.1f} %, "
                    f"compilations per epoch {result['compilations_per_epoch']}",
                    flush=True,
                )
    cache.cleanup()
    speedups = {}
    for name in args.models:
        for workers in args.workers:
            same = [r for r in runs if r["model"] == name and r["loader_workers"] == workers]
            pair = {r["compile"]: r["samples_per_s"] for r in same}
            if len(pair) == 2:
                speedups[f"{name}/workers={workers}"] = pair[True] / pair[False]
    results = {
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
        },
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "runs": runs,
        "compile_speedup": speedups,
    }
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()
