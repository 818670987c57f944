"""Compositional reasoning of a checkpoint on a suite: `python -m evaluate.compositional`.

    python -m evaluate.compositional --checkpoint RUN/checkpoints/latest.pt --suite relation-swap

Choice items score 1 when the true caption is strictly closer to the image than
every other caption (a tie counts for the false one); the suite reports `acc`
per subset, their mean (`macro_acc`, as ARO averages over relations) and over
all items. Pair items report Winoground's `text`, `image` and `group` scores.
The real benchmarks (--benchmark-root) are scored by evaluate.report with each
one's own rules and headline, and their records name their files' sha256.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from torch_geometric.data import Batch

from data.coco import load_image
from data.datasets import graph_transform
from data.images import TokenSource, tokens_to_graph
from data.synthetic import WORLDS
from evaluate.benchmarks import BENCHMARKS, crop_box, load_benchmark
from evaluate.intervals import add_intervals, format_intervals
from evaluate.report import benchmark_result, format_benchmark
from evaluate.suites import (
    SYNTHETIC_SUITES,
    read_suite,
    render_layout,
    scene_of_ref,
    synthetic_suite,
    world_of,
    write_suite,
)
from graphs.build import build_graph, build_patch_graph
from graphs.features import square_pixels
from graphs.featurizers import Featurizer
from models import GraphCLIP
from train.checkpoint import load_checkpoint, model_from_checkpoint
from train.distributed import device_from_flag


class RefGraphs:
    """Builds the graph of an image REF as the checkpoint's model expects it."""

    def __init__(self, model: GraphCLIP, params: dict, root: Path, token_source: str = "felzenszwalb") -> None:
        self.graph_type = params.get("graph_type", "hetero")
        self.transform = graph_transform(self.graph_type, params.get("drop_edge_types") or [])
        self.pixels = model.config.vision_image_size if model.config.vision else 0
        self.root, self.source, self.featurizer = root, None, Featurizer()
        self.token_source = token_source

    def image_and_graph(self, ref: dict):
        if "synthetic" in ref:
            scene = scene_of_ref(ref["synthetic"])
            return scene.image, lambda: build_graph(scene.image, scene.masks, scene.labels, scene.triplets)
        if "layout" in ref:
            scene = render_layout(ref["layout"])
            return scene.image, lambda: build_graph(scene.image, scene.masks, scene.labels, scene.triplets)
        path = Path(ref["file"])
        image = load_image(path if path.is_absolute() else self.root / path)
        if "box" in ref:
            image = crop_box(image, ref["box"])
        if self.source is None:
            self.source = TokenSource(self.token_source)
        return image, lambda: tokens_to_graph(image, self.source(path.name, image), self.featurizer, 20)

    def __call__(self, ref: dict):
        image, make = self.image_and_graph(ref)
        graph = build_patch_graph(image) if self.graph_type == "patch" else make()
        if self.pixels:
            graph["image"].pixels = square_pixels(image, self.pixels)
        return self.transform(graph) if self.transform is not None else graph


@torch.no_grad()
def embed_items(model: GraphCLIP, items: list[dict], graphs: RefGraphs, device: torch.device, batch_size: int = 128):
    """Embeddings of every distinct image and caption of a suite."""
    refs, texts = {}, {}
    for item in items:
        for ref in item.get("images", [item.get("image")]):
            refs.setdefault(json.dumps(ref, sort_keys=True), ref)
        for caption in item["captions"]:
            texts.setdefault(caption, len(texts))
    keys = list(refs)
    image_emb = []
    for start in range(0, len(keys), batch_size):
        batch = Batch.from_data_list([graphs(refs[k]) for k in keys[start : start + batch_size]]).to(device)
        image_emb.append(model.encode_graph(batch).float().cpu())
    captions = list(texts)
    text_emb = [
        model.encode_text(model.text_encoder.tokenize(captions[s : s + batch_size]).to(device)).float().cpu()
        for s in range(0, len(captions), batch_size)
    ]
    return dict(zip(keys, torch.cat(image_emb), strict=True)), dict(zip(captions, torch.cat(text_emb), strict=True))


def score(items: list[dict], images: dict, texts: dict) -> dict:
    """Suite metrics from embeddings keyed by image REF (JSON) and caption."""
    per_subset: dict[str, list] = defaultdict(list)
    pairs: dict[str, list] = defaultdict(list)
    for item in items:
        subset = item.get("subset", "all")
        if "image" in item:
            image = images[json.dumps(item["image"], sort_keys=True)]
            sims = torch.stack([texts[c] @ image for c in item["captions"]])
            answer = item["answer"]
            others = torch.cat([sims[:answer], sims[answer + 1 :]])
            per_subset[subset].append(float(sims[answer] > others.max()))
        else:
            i0, i1 = (images[json.dumps(ref, sort_keys=True)] for ref in item["images"])
            c0, c1 = (texts[c] for c in item["captions"])
            s = [[float(c0 @ i0), float(c0 @ i1)], [float(c1 @ i0), float(c1 @ i1)]]  # s[caption][image]
            text = s[0][0] > s[1][0] and s[1][1] > s[0][1]
            image = s[0][0] > s[0][1] and s[1][1] > s[1][0]
            pairs[subset].append((text, image, text and image))
    result: dict = {"items": len(items)}
    if per_subset:
        subsets = {k: {"acc": float(np.mean(v)), "n": len(v)} for k, v in sorted(per_subset.items())}
        result.update(
            acc=float(np.mean([x for v in per_subset.values() for x in v])),
            macro_acc=float(np.mean([v["acc"] for v in subsets.values()])),
            subsets=subsets,
        )
    if pairs:
        every = [x for v in pairs.values() for x in v]
        result.update(
            {name: float(np.mean([x[k] for x in every])) for k, name in enumerate(("text", "image", "group"))}
        )
        result["pair_subsets"] = {
            k: {name: float(np.mean([x[j] for x in v])) for j, name in enumerate(("text", "image", "group"))}
            | {"n": len(v)}
            for k, v in sorted(pairs.items())
        }
    return result


def format_result(name: str, result: dict) -> str:
    lines = [f"{name}: {result['items']} items"]
    if "acc" in result:
        lines.append(f"  {'subset':<16}{'n':>6}{'acc':>8}")
        lines += [f"  {k:<16}{v['n']:>6}{100 * v['acc']:>7.1f}%" for k, v in result["subsets"].items()]
        lines.append(
            f"  {'all':<16}{result['items']:>6}{100 * result['acc']:>7.1f}%   macro {100 * result['macro_acc']:.1f}%"
        )
    if "group" in result:
        lines.append(f"  {'subset':<16}{'n':>6}{'text':>8}{'image':>8}{'group':>8}")
        for k, v in result["pair_subsets"].items():
            lines.append(f"  {k:<16}{v['n']:>6}" + "".join(f"{100 * v[m]:>7.1f}%" for m in ("text", "image", "group")))
        lines.append(
            f"  {'all':<16}{result['items']:>6}"
            + "".join(f"{100 * result[m]:>7.1f}%" for m in ("text", "image", "group"))
        )
    return "\n".join(lines + format_intervals(result))


def load_items(
    suite: str,
    count: int | None,
    seed: int,
    benchmark_root: Path | None = None,
    world: dict | None = None,
    **benchmark_options,
) -> tuple[list[dict], Path]:
    if suite in SYNTHETIC_SUITES:
        return synthetic_suite(suite, count, seed, **(world or {})), Path.cwd()
    if suite in BENCHMARKS:
        if benchmark_root is None:
            raise ValueError(f"--suite {suite} reads the benchmark's own files: give --benchmark-root DIR")
        items = load_benchmark(suite, benchmark_root, seed, **benchmark_options)
        return (items[:count] if count else items), Path.cwd()
    path = Path(suite)
    if path.suffix != ".jsonl" and not path.exists():
        raise ValueError(
            f"unknown suite {suite!r}; synthetic suites: {', '.join(SYNTHETIC_SUITES)}; "
            f"benchmarks: {', '.join(BENCHMARKS)}; or a .jsonl file"
        )
    items = read_suite(path)
    return (items[:count] if count else items), path.parent


def evaluate_suite(
    model: GraphCLIP,
    params: dict,
    suite: str,
    device: torch.device,
    count: int | None = None,
    seed: int = 0,
    token_source: str = "felzenszwalb",
    benchmark_root: Path | None = None,
    world: str | None = None,
    **benchmark_options,
) -> dict:
    """A suite's figures; the synthetic suites are drawn in `world` (default: the checkpoint's run's)."""
    world = world_of(params, world)
    items, root = load_items(suite, count, seed, benchmark_root, world, **benchmark_options)
    images, texts = embed_items(model, items, RefGraphs(model, params, root, token_source), device)
    if suite in BENCHMARKS:
        return benchmark_result(suite, items, images, texts, benchmark_root)
    return {"suite": suite, "world": world, **add_intervals(score(items, images, texts))}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m evaluate.compositional",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--checkpoint", type=Path, help="RUN/checkpoints/latest.pt")
    parser.add_argument(
        "--suite",
        action="append",
        required=True,
        help=f"{', '.join(SYNTHETIC_SUITES)}; the real benchmarks {', '.join(BENCHMARKS)} (with --benchmark-root); "
        "or a suite .jsonl file; repeat for several",
    )
    parser.add_argument("--count", type=int, help="use the first N items")
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the synthetic suites and of the order perturbations (ARO's is 1)"
    )
    parser.add_argument("--benchmark-root", type=Path, help="folder with a real benchmark's files (ARO, ...)")
    parser.add_argument("--image-root", type=Path, help="sugarcrepe: the COCO val2017 folder (default ROOT/val2017)")
    parser.add_argument(
        "--skip-missing-subsets",
        action="store_true",
        help="sugarcrepe: leave out absent subset files (listed in the output) instead of stopping",
    )
    parser.add_argument("--token-source", default="felzenszwalb", help="how images named by file are tokenized")
    parser.add_argument(
        "--world",
        choices=tuple(WORLDS),
        help="world version of the synthetic suites (default: the checkpoint's run's, v3 without one); "
        "the heldout-* suites need v4",
    )
    parser.add_argument("--write-suite", type=Path, help="write the (first) suite as JSON lines and stop")
    parser.add_argument("--output", type=Path, help="JSON file for the results (default: next to the checkpoint)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    return parser


def main(argv: list[str] | None = None) -> list[dict]:
    args = build_parser().parse_args(argv)
    try:
        options = {"image_root": args.image_root, "skip_missing_subsets": args.skip_missing_subsets}
        if args.write_suite:
            world = world_of({}, args.world)
            items, _ = load_items(args.suite[0], args.count, args.seed, args.benchmark_root, world, **options)
            write_suite(items, args.write_suite)
            print(f"wrote {len(items)} items to {args.write_suite}")
            return []
        if args.checkpoint is None:
            raise ValueError("--checkpoint is required to evaluate")
        state = load_checkpoint(args.checkpoint)
        device = device_from_flag(args.device)
        model = model_from_checkpoint(state).to(device)
        results = [
            evaluate_suite(
                model,
                state.get("params", {}),
                suite,
                device,
                args.count,
                args.seed,
                args.token_source,
                args.benchmark_root,
                args.world,
                **(options if suite in BENCHMARKS else {}),
            )
            for suite in args.suite
        ]
    except (FileNotFoundError, ValueError) as error:
        raise SystemExit(f"error: {error}") from None
    for result in results:
        result["checkpoint"] = str(args.checkpoint)
        print(format_benchmark(result) if "benchmark" in result else format_result(result["suite"], result))
    output = args.output or args.checkpoint.with_name("compositional.json")
    output.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {output}")
    return results


if __name__ == "__main__":
    main()
