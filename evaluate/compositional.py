"""Compositional reasoning of a checkpoint on a suite: `python -m evaluate.compositional`.

    python -m evaluate.compositional --checkpoint RUN/checkpoints/latest.pt --suite relation-swap

Choice items score 1 when the true caption is strictly closer to the image than
every other caption (a tie counts for the false one); the suite reports `acc`
per subset, their mean (`macro_acc`, as ARO averages over relations) and over
all items. Pair items report Winoground's `text`, `image` and `group` scores.
The real benchmarks (--benchmark-root) are scored by evaluate.report with each
one's own rules and headline, and their records name their files' sha256.

Images are turned into graphs as the checkpoint's run built its own (graph
type, edge schema, dropped edge types, featurizer and backbone, relation cap,
token source, tokens file: evaluate.run_config); a flag that contradicts the
run is refused unless --override-checkpoint-config. The synthetic suites'
drawn images keep their exact masks, labels and triplets; --token-source
given on the command line tokenizes them instead (graphs unlike those of a
run that trained on exact masks: that needs --override-checkpoint-config).
Each result records its `token_source` (`exact` for exact masks) and its
object tokens per image. Results are written next to the checkpoint
(`compositional.json`, or --output): a suite scored again replaces its own
entry (same suite, token source and overridden settings) and every other
entry is kept. A layout the renderer
cannot draw is skipped, counted and named; any other bad item is an error
naming the suite and the item.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch_geometric.data import Batch, HeteroData

from data.cache import BadItem
from data.sources import DataOptions
from data.synthetic import WORLDS
from evaluate.benchmarks import BENCHMARKS, load_benchmark
from evaluate.intervals import add_intervals, format_intervals, pair_rows
from evaluate.ref_graphs import RefGraphs
from evaluate.report import benchmark_result, format_benchmark
from evaluate.run_config import OVERRIDE_FLAG, RunSettings, add_graph_arguments, run_params, settings_from_run
from evaluate.suites import SYNTHETIC_SUITES, UndrawableLayout, read_suite, synthetic_suite, world_of, write_suite
from graphs.schema import OBJECT
from models import GraphCLIP
from models.checkpoint import load_checkpoint, model_from_checkpoint
from train.config import explicit_flags
from train.distributed import device_from_flag

# The flags of how images become graphs; each defaults to the checkpoint's run.
GRAPH_FLAGS = (
    "graph_type",
    "drop_edge_types",
    "edge_schema",
    "featurizer",
    "backbone",
    "backbone_weights",
    "max_relations",
    "token_source",
    "tokens_file",
    "maskrcnn_weights",
)


class ItemError(ValueError):
    """An item whose image cannot become a graph; the message names the suite and the item."""


def item_name(item: dict, number: int) -> str:
    return str(item.get("id", f"item {number}"))


def ref_key(ref: dict) -> str:
    return json.dumps(ref, sort_keys=True)


@torch.no_grad()
def embed_items(
    model: GraphCLIP,
    items: list[dict],
    graphs: Callable[[dict], HeteroData],
    device: torch.device,
    batch_size: int = 128,
    where: str = "suite",
) -> tuple[dict, dict, dict]:
    """Embeddings of every distinct image and caption of a suite, and the images not drawn.

    Returns ({image REF key: embedding}, {caption: embedding}, {image REF key: why it was not drawn}).
    A layout the renderer cannot draw is left out (its items are skipped by the caller); any other
    image that cannot become a graph is an `ItemError` naming `where` and the item.
    """
    refs, owners, texts = {}, {}, {}
    for number, item in enumerate(items, 1):
        for ref in item.get("images", [item.get("image")]):
            refs.setdefault(ref_key(ref), ref)
            owners.setdefault(ref_key(ref), item_name(item, number))
        for caption in item["captions"]:
            texts.setdefault(caption, len(texts))
    image_emb, undrawn, pending = {}, {}, []

    def flush() -> None:
        if pending:
            batch = Batch.from_data_list([graph for _, graph in pending]).to(device)
            image_emb.update(zip([key for key, _ in pending], model.encode_graph(batch).float().cpu(), strict=True))
            pending.clear()

    for key, ref in refs.items():
        try:
            pending.append((key, graphs(ref)))
        except UndrawableLayout as error:
            undrawn[key] = str(error)
        except (BadItem, ValueError, FileNotFoundError, KeyError, IndexError, TypeError) as error:
            what = f"unknown or missing {error}" if isinstance(error, KeyError) else str(error)
            raise ItemError(f"{where}: {owners[key]}: {what}") from None
        if len(pending) == batch_size:
            flush()
    flush()
    captions = list(texts)
    text_emb = [
        model.encode_text(model.text_encoder.tokenize(captions[s : s + batch_size]).to(device)).float().cpu()
        for s in range(0, len(captions), batch_size)
    ]
    return image_emb, dict(zip(captions, torch.cat(text_emb), strict=True)), undrawn


def score(items: list[dict], images: dict, texts: dict) -> dict:
    """Suite metrics from embeddings keyed by image REF (JSON) and caption."""
    per_subset: dict[str, list] = defaultdict(list)
    pairs: dict[str, list] = defaultdict(list)
    pair_predicates: dict[str, list] = defaultdict(list)  # world v4's pairs, subsets by count, also by predicate
    held_out: dict[str, list] = defaultdict(list)  # the held-out suites' items, also by the kind they hold out
    held_out_pairs: dict[str, list] = defaultdict(list)
    for item in items:
        subset = item.get("subset", "all")
        if "image" in item:
            image = images[ref_key(item["image"])]
            sims = torch.stack([texts[c] @ image for c in item["captions"]])
            answer = item["answer"]
            others = torch.cat([sims[:answer], sims[answer + 1 :]])
            per_subset[subset].append(float(sims[answer] > others.max()))
            if "held_out" in item:
                held_out[item["held_out"]].append(per_subset[subset][-1])
        else:
            i0, i1 = (images[ref_key(ref)] for ref in item["images"])
            c0, c1 = (texts[c] for c in item["captions"])
            s = [[float(c0 @ i0), float(c0 @ i1)], [float(c1 @ i0), float(c1 @ i1)]]  # s[caption][image]
            text = s[0][0] > s[1][0] and s[1][1] > s[0][1]
            image = s[0][0] > s[0][1] and s[1][1] > s[1][0]
            pairs[subset].append((text, image, text and image))
            if "predicate" in item:
                pair_predicates[item["predicate"]].append((text, image, text and image))
            if "held_out" in item:
                held_out_pairs[item["held_out"]].append((text, image, text and image))
    result: dict = {"items": len(items)}
    if per_subset:
        subsets = {k: {"acc": float(np.mean(v)), "n": len(v)} for k, v in sorted(per_subset.items())}
        result.update(
            acc=float(np.mean([x for v in per_subset.values() for x in v])),
            macro_acc=float(np.mean([v["acc"] for v in subsets.values()])),
            subsets=subsets,
        )
        if held_out:
            result["held_out_kinds"] = {k: {"acc": float(np.mean(v)), "n": len(v)} for k, v in sorted(held_out.items())}
    if pairs:
        every = [x for v in pairs.values() for x in v]
        result.update(
            {name: float(np.mean([x[k] for x in every])) for k, name in enumerate(("text", "image", "group"))}
        )
        result["pair_subsets"] = pair_scores(pairs)
    if pair_predicates:
        result["pair_predicates"] = pair_scores(pair_predicates)
    if held_out_pairs:
        result["pair_held_out"] = pair_scores(held_out_pairs)
    return result


def pair_scores(pairs: dict[str, list]) -> dict[str, dict]:
    """Winoground's text / image / group per subset, from (text, image, group) flags per pair."""
    return {
        k: {name: float(np.mean([x[j] for x in v])) for j, name in enumerate(("text", "image", "group"))}
        | {"n": len(v)}
        for k, v in sorted(pairs.items())
    }


def format_result(name: str, result: dict) -> str:
    lines = [f"{name}: {result['items']} items"]
    skipped = result.get("skipped")
    if skipped:
        lines.append(
            f"  skipped {skipped['count']} items the renderer cannot draw: "
            + "; ".join(f"{entry['id']} ({entry['reason']})" for entry in skipped["items"])
        )
    if "acc" in result:
        lines.append(f"  {'subset':<16}{'n':>6}{'acc':>8}")
        lines += [f"  {k:<16}{v['n']:>6}{100 * v['acc']:>7.1f}%" for k, v in result["subsets"].items()]
        lines += [
            f"  {'held-out ' + k:<16}{v['n']:>6}{100 * v['acc']:>7.1f}%"
            for k, v in result.get("held_out_kinds", {}).items()
        ]
        lines.append(
            f"  {'all':<16}{result['items']:>6}{100 * result['acc']:>7.1f}%   macro {100 * result['macro_acc']:.1f}%"
        )
    if "group" in result:
        lines.append(f"  {'subset':<16}{'n':>6}{'text':>8}{'image':>8}{'group':>8}")
        for k, v in pair_rows(result):
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
        try:
            items = load_benchmark(suite, benchmark_root, seed, **benchmark_options)
        except (KeyError, TypeError, AttributeError) as error:  # an entry of another shape than the benchmark's
            what = f"an entry is not in the benchmark's format ({error!r})"
            raise ValueError(f"{benchmark_root}: {suite}: {what}") from None
        return (items[:count] if count else items), Path.cwd()
    path = Path(suite)
    if path.suffix != ".jsonl" and not path.exists():
        raise ValueError(
            f"unknown suite {suite!r}; synthetic suites: {', '.join(SYNTHETIC_SUITES)}; "
            f"benchmarks: {', '.join(BENCHMARKS)}; or a .jsonl file"
        )
    items = read_suite(path)
    return (items[:count] if count else items), path.parent


def suite_files(items: list[dict]) -> list[str]:
    return [ref["file"] for item in items for ref in item.get("images", [item.get("image")]) if "file" in ref]


def evaluate_suite(
    model: GraphCLIP,
    settings: DataOptions | dict,
    suite: str,
    device: torch.device,
    count: int | None = None,
    seed: int = 0,
    benchmark_root: Path | None = None,
    world: str | None = None,
    synthetic_tokens: str = "exact",
    **benchmark_options,
) -> dict:
    """Score one suite with graphs built as the run built its own (`settings`: its DataOptions or params);
    the synthetic suites are drawn in `world` (default: the run's world), their images keeping their
    exact masks and triplets, or tokenized by the token source `synthetic_tokens`.

    Items with a layout the renderer cannot draw are skipped, counted and named in `skipped`.
    """
    world_options = world_of(settings, world)
    items, root = load_items(suite, count, seed, benchmark_root, world_options, **benchmark_options)
    key_root = Path(benchmark_root) if suite in BENCHMARKS else root
    where = f"{suite} in {benchmark_root}" if suite in BENCHMARKS else suite
    graphs = RefGraphs(model, settings, root, key_root, suite_files(items), synthetic_tokens)
    object_tokens: list[int] = []

    def counted(ref: dict):
        graph = graphs(ref)
        object_tokens.append(int(graph[OBJECT].num_nodes))
        return graph

    images, texts, undrawn = embed_items(model, items, counted, device, where=where)
    kept, skipped = [], []
    for number, item in enumerate(items, 1):
        reasons = [undrawn[ref_key(ref)] for ref in item.get("images", [item.get("image")]) if ref_key(ref) in undrawn]
        if reasons:
            skipped.append({"id": item_name(item, number), "reason": "; ".join(reasons)})
        else:
            kept.append(item)
    if suite in BENCHMARKS:
        result = benchmark_result(suite, kept, images, texts, benchmark_root)
    else:
        result = {"suite": suite, "world": world_options, **add_intervals(score(kept, images, texts))}
    result["token_source"] = None if graphs.graph_type == "patch" else token_source(items, synthetic_tokens, graphs)
    result["object_tokens_per_image"] = float(np.mean(object_tokens)) if object_tokens else None
    if skipped:
        result["skipped"] = {"count": len(skipped), "items": skipped}
    return result


def token_source(items: list[dict], synthetic_tokens: str, graphs: RefGraphs) -> str | None:
    """What tokenized a suite's images: `synthetic_tokens` for drawn ones (``synthetic``, ``layout``),
    the run's token source for image files; "drawn: A; files: B" for a suite of both."""
    refs = [ref for item in items for ref in item.get("images", [item.get("image")])]
    drawn = {"synthetic" in ref or "layout" in ref for ref in refs}
    if drawn == {True, False}:
        return f"drawn: {synthetic_tokens}; files: {graphs.options.token_source}"
    return synthetic_tokens if drawn == {True} else graphs.options.token_source


def result_key(result: dict) -> str:
    """What a results file holds one entry of: a suite scored with given tokens and settings."""
    fields = ("suite", "benchmark", "token_source", "differs_from_run")
    return json.dumps({field: result.get(field) for field in fields}, sort_keys=True)


def read_results(path: Path) -> list[dict]:
    """The results already in `path` (none when it does not exist); anything else there is refused,
    so that writing the new results cannot lose it."""
    if not path.exists():
        return []
    from evaluate.plot import read_compositional  # matplotlib, only when there is a file to read

    try:
        return read_compositional(path)
    except ValueError as error:
        raise ValueError(f"{error}: give --output another file") from None


def merge_results(earlier: list[dict], results: list[dict]) -> list[dict]:
    """`earlier` less the entries `results` score again (same suite, tokens and settings), then `results`."""
    again = {result_key(result) for result in results}
    return [entry for entry in earlier if result_key(entry) not in again] + results


def synthetic_token_source(
    args: argparse.Namespace, explicit: set[str], settings: RunSettings, suites: list[str]
) -> str:
    """What tokenizes the synthetic suites' drawn images: ``exact`` masks, or --token-source when the
    command line gives it. A run that trained on exact masks (any dataset but an image folder) then
    scores graphs unlike its own: refused without --override-checkpoint-config, else recorded."""
    if "token_source" not in explicit or not any(suite in SYNTHETIC_SUITES for suite in suites):
        return "exact"
    if args.token_source == "tokens":
        raise ValueError(
            "--token-source tokens: a tokens file names image files, and the synthetic suites' images are drawn; "
            "write them as files with bench/export_suite_images.py and score its suite.jsonl"
        )
    if settings.params.get("dataset", "synthetic") != "images":
        if not settings.override:
            raise ValueError(
                f"--token-source {args.token_source}: the synthetic suites' images would be tokenized by it, "
                f"while the run trained on exact masks; pass {OVERRIDE_FLAG} to score anyway (recorded)"
            )
        settings.differs["token_source"] = {"run": "exact", "given": args.token_source, "shapes_graphs": True}
    return args.token_source


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
    parser.add_argument(
        "--world",
        choices=tuple(WORLDS),
        help="world version of the synthetic suites (default: the checkpoint's run's, v3 without one); "
        "the heldout-* suites need v4",
    )
    parser.add_argument("--write-suite", type=Path, help="write the (first) suite as JSON lines and stop")
    parser.add_argument("--output", type=Path, help="JSON file for the results (default: next to the checkpoint)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    add_graph_arguments(parser, GRAPH_FLAGS)
    return parser


def main(argv: list[str] | None = None) -> list[dict]:
    parser = build_parser()
    args = parser.parse_args(argv)
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
        output = args.output or args.checkpoint.with_name("compositional.json")
        earlier = read_results(output)
        state = load_checkpoint(args.checkpoint)
        # --seed here is the suites' own seed (default 0, the same items for every run), not the run's world seed
        settings = settings_from_run(
            parser, argv, args, *run_params(state, args.checkpoint), ignore=frozenset({"seed"})
        )
        synthetic_tokens = synthetic_token_source(args, explicit_flags(parser, argv), settings, args.suite)
        device = device_from_flag(args.device)
        model = model_from_checkpoint(state).to(device)
        results = [
            {
                **evaluate_suite(
                    model,
                    settings.options(),
                    suite,
                    device,
                    args.count,
                    args.seed,
                    args.benchmark_root,
                    args.world,
                    synthetic_tokens,
                    **(options if suite in BENCHMARKS else {}),
                ),
                **settings.record(),
            }
            for suite in args.suite
        ]
    except (FileNotFoundError, ValueError, BadItem) as error:
        raise SystemExit(f"error: {error}") from None
    if settings.report():
        print(settings.report())
    for result in results:
        result["checkpoint"] = str(args.checkpoint)
        print(format_benchmark(result) if "benchmark" in result else format_result(result["suite"], result))
    merged = merge_results(earlier, results)
    output.write_text(json.dumps(merged, indent=2) + "\n")
    kept = len(merged) - len(results)
    print(f"wrote {output}" + (f" (kept {kept} earlier results of other suites or settings)" if kept else ""))
    return results


if __name__ == "__main__":
    main()
