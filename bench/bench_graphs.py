"""Graph building and cache loading speed (issue [2/6]; figures in BENCHMARKS.md).

    python bench/bench_graphs.py --images 1600 --out bench/results/graphs.json

Measures, on COCO-like annotations (640x480, 1-14 polygon instances per image,
written by bench/coco_like.py):
1. building graphs from annotations with the images already decoded, on one
   core (torch and numpy single-threaded): images/s, median of 3 passes;
2. the whole cached build (JPEG decoding included) with 0, 1 and 2 worker
   processes: images/s;
3. loading the built cache into memory (graphs/s), and materialising every
   graph as a HeteroData from the loaded store (graphs/s).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
from coco_like import write_coco_like  # noqa: E402

from data import coco as coco_module  # noqa: E402
from data.cache import GraphCache  # noqa: E402
from data.coco import CocoBuilder, load_image  # noqa: E402


def build_without_decoding(builder: CocoBuilder, repeats: int) -> float:
    decoded = {i: load_image(builder.image_dir / builder.images[i]["file_name"]) for i in builder.image_ids}
    original = coco_module.load_image
    coco_module.load_image = lambda path: decoded[int(Path(path).stem)]
    try:
        rates = []
        for _ in range(repeats):
            start = time.perf_counter()
            for index in range(len(builder)):
                builder.build(index)
            rates.append(len(builder) / (time.perf_counter() - start))
    finally:
        coco_module.load_image = original
    return statistics.median(rates)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=1600)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    work = Path(tempfile.mkdtemp(prefix="semgraph-bench-"))
    try:
        write_coco_like(work / "coco", args.images)
        builder = CocoBuilder(work / "coco", "val2017")
        objects = sum(len(v) for v in builder.annotations.values()) / len(builder)
        results = {"images": len(builder), "objects_per_image": objects}
        results["build_no_decode_images_per_s_1core"] = build_without_decoding(builder, repeats=3)
        for workers in args.workers:
            cache = GraphCache(work / f"cache{workers}", shard_size=100)
            start = time.perf_counter()
            cache.load_or_build(builder, workers=workers, progress=False)
            results[f"build_with_decode_images_per_s_workers{workers}"] = len(builder) / (time.perf_counter() - start)
        cache = GraphCache(work / "cache0", shard_size=100)
        loads, materialise = [], []
        for _ in range(3):
            start = time.perf_counter()
            store, _ = cache.load_or_build(builder, progress=False)
            loads.append(len(store) / (time.perf_counter() - start))
            start = time.perf_counter()
            for index in range(len(store)):
                store[index]
            materialise.append(len(store) / (time.perf_counter() - start))
        results["cache_load_graphs_per_s"] = statistics.median(loads)
        results["materialise_graphs_per_s"] = statistics.median(materialise)
        shard_bytes = sum(p.stat().st_size for p in cache.folder(builder).glob("shard_*.pt"))
        results["bytes_per_graph"] = shard_bytes / len(builder)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(results, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()
