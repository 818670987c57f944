"""Build a range of a graph cache's shards, and nothing else: the unit of work of a cluster build.

    python -m data.build_shards --dataset coco --coco-root DIR --build-split train \\
        --cache-dir CACHE --start 0 --stop 40 --workers 2

Shard k holds items [k * shard_size, (k + 1) * shard_size) of the split; the
entry folder is the one training opens (same key: flags, source files, code),
so shards built here, by any number of processes on any number of machines
sharing CACHE, are reused by `train/run.py` as they are. A shard already built
and intact is skipped, so a job killed and run again resumes; two jobs given the
same range take turns (the entry's build lock) and the second finds it done.
Without --start/--stop every shard is built (what the first training run would
do, without training). Prints one JSON line: the range, the shards built and
reused, the items built and the seconds spent (setting up the builder, starting
the workers, building).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from data.cache import (
    BadItem,
    GraphBuilder,
    GraphCache,
    _valid_shard,
    _write_json,
    build_lock,
    build_shard_jobs,
)
from data.cli import add_data_arguments, data_options
from data.sources import make_builder
from graphs.schema import SCHEMA_VERSION


def shard_bounds(total: int, shard_size: int) -> list[tuple[int, int, int]]:
    """(shard, first item, item after the last) of every shard of `total` items."""
    return [(k, s, min(s + shard_size, total)) for k, s in enumerate(range(0, total, shard_size))]


def build_shard_range(
    builder: GraphBuilder,
    cache: GraphCache,
    start: int = 0,
    stop: int | None = None,
    workers: int = 0,
    on_bad: str = "error",
    progress: bool = False,
) -> dict:
    """Build shards [start, stop) of `builder`'s cache entry (those missing or broken); report what was done."""
    fingerprint = builder.fingerprint()
    folder = cache.folder(builder, fingerprint)
    folder.mkdir(parents=True, exist_ok=True)
    bounds = shard_bounds(len(builder), cache.shard_size)
    stop = len(bounds) if stop is None else min(stop, len(bounds))
    if not 0 <= start <= stop:
        raise ValueError(f"shard range [{start}, {stop}) is not within the {len(bounds)} shards of {folder}")
    timing = {"start_workers_s": 0.0}
    with build_lock(folder):
        if not (folder / "fingerprint.json").exists():
            _write_json(folder / "fingerprint.json", {"schema_version": SCHEMA_VERSION, **fingerprint})
        todo = [
            (k, s, e, str(folder), on_bad) for k, s, e in bounds[start:stop] if _valid_shard(folder, k, s, e) is None
        ]
        from tqdm.auto import tqdm

        bar = tqdm(
            total=sum(e - s for _, s, e, _, _ in todo), desc="building shards", disable=not progress, unit="graph"
        )
        began = time.perf_counter()
        timing["start_workers_s"] = build_shard_jobs(builder, todo, on_bad, workers, bar.update)
        bar.close()
        timing["build_s"] = time.perf_counter() - began - timing["start_workers_s"]
    return {
        "folder": str(folder),
        "shards": len(bounds),
        "start": start,
        "stop": stop,
        "built_shards": len(todo),
        "reused_shards": stop - start - len(todo),
        "built_items": sum(e - s for _, s, e, _, _ in todo),
        **timing,
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m data.build_shards",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--build-split", choices=("train", "val", "test"), default="train", help="which split to build")
    parser.add_argument("--start", type=int, default=0, help="first shard of the range")
    parser.add_argument("--stop", type=int, help="shard after the last of the range (default: the last shard)")
    parser.add_argument("--seed", type=int, default=0, help="the synthetic world's seed (as train/run.py's)")
    parser.add_argument("--progress", action="store_true", help="show a progress bar with an ETA")
    parser.add_argument("--output", type=Path, help="also write the JSON report here")
    add_data_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> dict:
    args = build_parser().parse_args(argv)
    options = data_options(args)
    if options.dataset == "images" and args.build_split != "train":
        raise SystemExit(
            "error: --dataset images builds one entry (its hold-out is chosen on access): --build-split train"
        )
    began = time.perf_counter()
    try:
        builder = make_builder(options, args.build_split)
        cache = GraphCache(options.cache_dir)  # the default shard size: the boundaries training expects
        setup = time.perf_counter() - began
        report = build_shard_range(
            builder, cache, args.start, args.stop, options.workers, options.on_bad, args.progress
        )
    except (BadItem, ValueError, FileNotFoundError) as error:
        raise SystemExit(f"error: {error}") from None
    report = {"items": len(builder), "setup_s": setup, **report}
    line = json.dumps(report)
    print(line)
    if args.output:
        args.output.write_text(line + "\n")
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
