"""Which relations matter: `python -m evaluate.ablate` trains and scores one row per variant.

Rows: the full hetero graph; each of the seven edge types (of --edge-schema)
dropped; its triplet edges dropped together; the bias off (`--edge-bias
none`); `--graph-type homo`; `--graph-type patch`. Every row uses the same
seed, data and budget. Each row is a run directory under OUT/rows/; a row
whose results exist is reused when the command runs again, if it was
trained with the flags the command gives it now (else: an error naming each).
Writes OUT/ablation.csv, OUT/ablation.json and the chart OUT/ablation.png.

With `--seeds 0,1,2` every row is trained once per seed (cells in
OUT/rows/ROW/seed-S/, reused like rows) and OUT/ablation-seeds.{txt,csv,json,png}
give per row and metric the mean ± standard deviation with a 95 % t interval,
and the difference to the `full` row paired by seed with its interval; a
difference whose interval excludes zero is marked (see evaluate.seed_stats).
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure

from data.cache import BadItem  # noqa: E402
from evaluate.compositional import evaluate_suite  # noqa: E402
from evaluate.run_config import options_from_params, run_params  # noqa: E402
from evaluate.seed_stats import margins, parse_seeds, run_cells, summarise, write_outputs  # noqa: E402
from graphs.schema import DEFAULT_EDGE_SCHEMA, EDGE_SCHEMAS, schema_edge_types  # noqa: E402
from models import load_config  # noqa: E402
from models.checkpoint import load_checkpoint, model_from_checkpoint  # noqa: E402

SUITES = ("relation-swap", "attribute-swap", "word-order", "winoground-synthetic")
COLUMNS = (
    "t2i_R@1",
    "i2t_R@1",
    "relation-swap",
    "attribute-swap",
    "word-order",
    "wino_text",
    "wino_image",
    "wino_group",
    "arrow-swap",
    "arrow_group",
)
# Both retrieval protocols: all five captions per image, and the seed paper's one caption per image.
RETRIEVAL_COLUMNS = ("t2i_R@1", "i2t_R@1", "t2i_R@1_1cap", "i2t_R@1_1cap")
# Per-subset columns a cell records beside the headline ones (a predicate, an object count).
DETAIL_PREFIXES = ("relation-swap:", "wino_group:")


def detail_columns(rows: list[dict]) -> list[str]:
    """The one-caption retrieval and per-subset columns any of these cells has, in a stable order."""
    found = {key for row in rows for key in row if key.startswith(DETAIL_PREFIXES)}
    extra = [c for c in RETRIEVAL_COLUMNS if c not in COLUMNS and any(row.get(c) is not None for row in rows)]
    return extra + sorted(found, key=lambda key: (DETAIL_PREFIXES.index(key.split(":")[0] + ":"), key))


def median_epoch_seconds(results: Path) -> float | None:
    """The median wall clock of a run's epochs (its results.jsonl), None when it logged none."""
    if not results.exists():
        return None
    times = [json.loads(line).get("epoch_seconds") for line in results.read_text().splitlines() if line.strip()]
    times = [t for t in times if t is not None]
    return float(np.median(times)) if times else None


STUDIES = ("edges", "tokenizer", "recipes")
SUITE_SEED = 0  # every row and seed is scored on the same suite items, as evaluate.compositional does
# Per edge schema, the edge types of its triplets dropped together (all that says who acts on whom).
TRIPLET_TYPES = {
    "semgraph": ("subject_of", "has_object"),
    "seed": ("subject_to_object", "to_relation", "to_participant"),
    "seed-directed": ("subject_to_object", "subject_to_relation", "object_to_relation", "to_subject", "to_object"),
}
# The seed paper's recipe against ours (issue 16): each row names its schema, bias, readout or pixel model.
RECIPES = {
    "seed recipe": ["--edge-schema", "seed", "--edge-bias", "monotone", "--readout", "cls"],
    "seed schema": ["--edge-schema", "seed", "--edge-bias", "learned"],
    "monotone bias": ["--edge-schema", "semgraph", "--edge-bias", "monotone"],
    "patch": ["--graph-type", "patch"],
    "vit paper": ["--vision", "vit:paper"],
    "vit-s16": ["--vision", "timm:vit_small_patch16_224"],
}


def variants(study: str = "edges", edge_schema: str = DEFAULT_EDGE_SCHEMA) -> dict[str, list[str]]:
    """The rows of a study: `edges` (the edge-type ablation of `edge_schema`), `tokenizer` (the
    options of issue [5/6]) or `recipes` (the seed paper's recipe and its parts against ours)."""
    rows = {"full": []}
    if study == "edges":
        rows.update({f"-{et[1]}": ["--drop-edge-types", et[1]] for et in schema_edge_types(edge_schema)})
        triplet = TRIPLET_TYPES[edge_schema]
        rows["-" + "+".join(triplet)] = ["--drop-edge-types", ",".join(triplet)]  # all triplet edges
        rows["bias none"] = ["--edge-bias", "none"]
        rows["homo"] = ["--graph-type", "homo"]
        rows["patch"] = ["--graph-type", "patch"]
    elif study == "tokenizer":
        rows["moto"] = ["--token-norm", "moto"]
        rows["layer norm"] = ["--token-norm", "layer"]
        rows["batch norm"] = ["--token-norm", "batch"]
        rows["tokenprop 0.5"] = ["--tokenprop-weight", "0.5"]
        rows["mim 0.5"] = ["--mim-weight", "0.5"]
    elif study == "recipes":
        rows["full"] = ["--edge-schema", "semgraph", "--edge-bias", "learned"]
        rows.update(RECIPES)
    else:
        raise ValueError(f"unknown study {study!r}; valid: {', '.join(STUDIES)}")
    return rows


def folder_name(row: str) -> str:
    return row.replace(" ", "-").replace("-", "minus-", 1) if row.startswith("-") else row.replace(" ", "-")


def set_aside_unstarted(folder: Path) -> Path | None:
    """A cell killed before its first checkpoint holds its params and log but nothing to resume from:
    move it aside (kept, renamed `NAME.unfinished-K`) so the cell can start again; None when empty."""
    if not folder.exists() or not any(folder.iterdir()):
        return None
    k = 1
    while (aside := folder.with_name(f"{folder.name}.unfinished-{k}")).exists():
        k += 1
    folder.rename(aside)
    print(f"{folder} stopped before its first checkpoint: moved aside to {aside.name}, training it again")
    return aside


# Trainer flags that say how a run executes, not what it learns: a reused cell may differ in these.
EXECUTION_FLAGS = frozenset(
    {"out", "config", "resume", "no_progress", "threads", "log_every", "report_to", "keep_step_checkpoints",
     "save_every_steps", "loader_workers", "workers", "cache_dir", "no_cache", "mmap", "device", "compile",
     "data_on_device"}
)  # fmt: skip


# Flags stored under another name in the model config's graph section.
CONFIG_FIELDS = {"readout": "pool"}
# What an unset --precision resolves to on some device (train.trainer: bf16 on CUDA, fp32 on CPU).
DEVICE_PRECISIONS = ("bf16", "fp32")


def cell_differences(folder: Path, argv: list[str]) -> list[str]:
    """What the run in `folder` was trained with that the trainer flags `argv` would not give it:
    '--epochs 28 (this study: 10)', one per flag. A flag the run's params.json lacks (added later)
    counts as its default; a flag it left unset (None) counts as what its model config resolved it to,
    and an unset --precision (the device's own) matches a run that resolved one of the devices' own
    (bf16 or fp32), never fp16. The files `argv` names need not exist still: the cell was trained."""
    from train.run import build_parser, parse_args

    params = json.loads((folder / "params.json").read_text())
    wanted, _ = parse_args(argv, validated=False)
    defaults = build_parser()
    graph = params.get("model", {}).get("graph", {})  # what the run's model resolved
    study_graph = vars(load_config(wanted.model_config).graph)  # what the study's would
    out = []
    for key, value in sorted(vars(wanted).items()):
        if key in EXECUTION_FLAGS:
            continue
        value = [str(v) for v in value] if isinstance(value, list | tuple) else value
        value = str(value) if isinstance(value, Path) else value
        saved = params.get(key, defaults.get_default(key))
        field = CONFIG_FIELDS.get(key, key)
        if saved is None:  # unset on one side: compare what that side's model config resolves it to
            saved = graph.get(field)
        if value is None:
            value = study_graph.get(field)
        if key == "precision" and wanted.precision is None:  # the device's own, as the run resolved it
            if saved is None or saved in DEVICE_PRECISIONS:
                continue
            value = "unset: bf16 on CUDA, fp32 on CPU"
        if saved != value:
            out.append(f"--{key.replace('_', '-')} {saved} (this study: {value})")
    return out


def check_reused_cell(folder: Path, argv: list[str]) -> None:
    """A finished or resumable cell is reused only if it was trained as this study would train it."""
    if not (folder / "params.json").is_file():
        raise SystemExit(
            f"error: {folder} has a finished row or checkpoint but no params.json, so what it was trained with "
            "cannot be checked against this study; delete the cell to train it again, or use another --out"
        )
    differences = cell_differences(folder, argv)
    if differences:
        raise SystemExit(
            f"error: {folder} was trained with other flags than this study gives it: {'; '.join(differences)}. "
            "Give the study the same budget and --extra, or another --out (or delete the cell to train it again)"
        )


def run_row(name: str, flags: list[str], common: list[str], folder: Path, suite_count: int, seed: int) -> dict:
    """Train one variant (unless already done) and score it; the row is cached in folder/row.json.
    A cell already there is reused only if it was trained with the flags this row gives it."""
    from train.run import main as train_main

    done = folder / "row.json"
    checkpoint = folder / "checkpoints" / "latest.pt"
    if done.exists() or checkpoint.exists():
        check_reused_cell(folder, [*common, *flags, "--out", str(folder)])
    if done.exists():
        return json.loads(done.read_text())
    if checkpoint.exists():
        final = train_main(["--resume", "latest", "--out", str(folder)])
    else:
        set_aside_unstarted(folder)
        final = train_main([*common, *flags, "--out", str(folder)])
    state = load_checkpoint(checkpoint)
    model = model_from_checkpoint(state)
    options = options_from_params(run_params(state, checkpoint)[0])  # the row's own graphs, as it trained
    row = {"row": name, "flags": flags, **{k: final.get(k) for k in RETRIEVAL_COLUMNS}}
    row["epoch_seconds_median"] = median_epoch_seconds(folder / "results.jsonl")
    for suite in SUITES:
        result = evaluate_suite(model, options, suite, torch.device("cpu"), suite_count, SUITE_SEED)
        arrows = result.get("pair_subsets" if "group" in result else "subsets", {}).get("points at", {})
        if "group" in result:
            row.update(wino_text=result["text"], wino_image=result["image"], wino_group=result["group"])
            by_predicate = result.get("pair_predicates", {})  # world v4: pairs by object count, also by predicate
            row["arrow_group"] = arrows.get("group", by_predicate.get("points at", {}).get("group"))
            for subsets in (result["pair_subsets"], by_predicate):
                row.update({f"wino_group:{k}": v["group"] for k, v in subsets.items()})
        else:
            row[suite] = result["macro_acc"] if suite == "relation-swap" else result["acc"]
        if suite == "relation-swap":
            row["arrow-swap"] = arrows.get("acc")
            row.update({f"relation-swap:{k}": v["acc"] for k, v in result["subsets"].items()})
    done.write_text(json.dumps(row, indent=2) + "\n")
    return row


def cell(row: dict, column: str) -> float:
    """A row's value, NaN where it has none (a suite with no item of that subset, an older row)."""
    value = row.get(column)
    return float("nan") if value is None else value


def table(rows: list[dict]) -> str:
    full = rows[0]
    header = f"{'row':<24}" + "".join(f"{c:>17}" for c in COLUMNS)
    lines = [header]
    for row in rows:
        cells = []
        for column in COLUMNS:
            value = 100 * cell(row, column)
            delta = "" if row is full else f" ({value - 100 * cell(full, column):+.1f})"
            cells.append(f"{value:.1f}{delta}".rjust(17))
        lines.append(f"{row['row']:<24}" + "".join(cells))
    return "\n".join(lines)


# The seed paper states its gains relative to its pixel baseline (+47 % t2i, +44 % i2t, +18 % ARO,
# +10 % Winoground): the full row over each of these rows, in those terms.
BASELINE_ROWS = ("vit paper", "vit-s16", "patch")
MARGIN_COLUMNS = ("t2i_R@1", "i2t_R@1", "relation-swap", "wino_text", "wino_group")
CHARTED = ("t2i_R@1", "relation-swap", "arrow-swap", "attribute-swap", "wino_group", "arrow_group")


def chart(rows: list[dict], path: Path, title: str = "edge-type ablation") -> None:
    """Change against the full model, per metric, one group of bars per row."""
    shown = CHARTED
    others = rows[1:]
    fig = Figure(figsize=(max(8, len(others) * 0.9), 4.5), dpi=110)
    ax = fig.subplots()
    width = 0.8 / len(shown)
    for k, column in enumerate(shown):
        deltas = [100 * (cell(row, column) - cell(rows[0], column)) for row in others]
        ax.bar([i + (k - (len(shown) - 1) / 2) * width for i in range(len(others))], deltas, width, label=column)
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xticks(range(len(others)), [row["row"] for row in others], rotation=30, ha="right")
    ax.set_ylabel("change against the full hetero model (points)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m evaluate.ablate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path("runs/ablation"), help="folder of the rows and the outputs")
    parser.add_argument("--train-size", type=int, default=4000)
    parser.add_argument("--val-size", type=int, default=500)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--seeds",
        help="comma-separated seeds, e.g. 0,1,2: every row trained once per seed, reported as mean ± sd, "
        "95 %% intervals and paired differences to the full row (replaces --seed)",
    )
    parser.add_argument("--suite-count", type=int, default=200, help="items per compositional suite")
    parser.add_argument(
        "--study",
        choices=STUDIES,
        default="edges",
        help="edges: drop each edge type, the bias, homo, patch; tokenizer: MoTo, norms, TokenProp, MIM; "
        "recipes: the seed paper's schema, monotone bias and CLS readout, patch and pixel ViTs against ours",
    )
    parser.add_argument(
        "--edge-schema",
        choices=EDGE_SCHEMAS,
        default=DEFAULT_EDGE_SCHEMA,
        help="the edge schema of every row (the edges study drops each of its types); "
        "the recipes study sets each row's own",
    )
    parser.add_argument("--rows", help="comma-separated subset of the rows (default: all)")
    parser.add_argument("--extra", default="", help="more trainer flags for every row, e.g. '--model-config X.json'")
    return parser


STUDY_TITLES = {"edges": "edge-type ablation", "tokenizer": "tokenizer options", "recipes": "the seed's recipe"}


def study_stem(study: str) -> str:
    return "ablation" if study == "edges" else f"study-{study}"


def common_flags(args: argparse.Namespace, seed: int) -> list[str]:
    """The trainer flags every row of a study shares (data, budget, seed, edge schema, --extra)."""
    return [
        "--train-size",
        str(args.train_size),
        "--val-size",
        str(args.val_size),
        "--epochs",
        str(args.epochs),
        "--batch-size",
        str(args.batch_size),
        "--seed",
        str(seed),
        "--no-progress",
        "--edge-schema",
        args.edge_schema,
        *args.extra.split(),
    ]


def seeded_study(args: argparse.Namespace, rows: dict[str, list[str]], seeds: list[int]) -> list[dict]:
    """Every row once per seed, summarised with intervals (evaluate.seed_stats); returns the summary."""

    def run_cell(name: str, flags: list[str], seed: int, folder: Path) -> dict:
        try:
            return run_row(name, flags, common_flags(args, seed), folder, args.suite_count, seed)
        except (FileNotFoundError, ValueError, BadItem) as error:
            raise SystemExit(f"error: row {name}, seed {seed} ({folder}): {error}") from None

    cells = run_cells(rows, seeds, run_cell, lambda name: args.out / "rows" / folder_name(name))
    columns = [*COLUMNS, *detail_columns([c for by_seed in cells.values() for c in by_seed.values()])]
    summary = summarise(cells, columns, reference="full")
    stem = study_stem(args.study)
    gains = margins(cells, MARGIN_COLUMNS, "full", BASELINE_ROWS)  # the seed paper's "+47 % over a ViT"
    text = write_outputs(summary, columns, args.out, stem, STUDY_TITLES[args.study], CHARTED, gains)
    margins_file = args.out / f"{stem}-margins.txt"
    if gains:
        margins_file.write_text(gains + "\n")
    else:
        margins_file.unlink(missing_ok=True)  # not one of an earlier run with other rows
    print(text)
    print(f"wrote {args.out / (stem + '-seeds.csv')}, {args.out / (stem + '-seeds.png')}")
    return summary


def main(argv: list[str] | None = None) -> list[dict]:
    args = build_parser().parse_args(argv)
    every = variants(args.study, args.edge_schema)
    chosen = list(every) if not args.rows else [r.strip() for r in args.rows.split(",")]
    unknown = [r for r in chosen if r not in every]
    if unknown:
        raise SystemExit(f"error: unknown rows {unknown}; rows: {', '.join(every)}")
    chosen = ["full", *(r for r in chosen if r != "full")]  # the reference row first, always
    if args.seeds:
        try:
            seeds = parse_seeds(args.seeds)
        except ValueError as error:
            raise SystemExit(f"error: {error}") from None
        return seeded_study(args, {name: every[name] for name in chosen}, seeds)
    rows = []
    for name in chosen:
        print(f"== {name}", flush=True)
        folder = args.out / "rows" / folder_name(name)
        try:
            rows.append(run_row(name, every[name], common_flags(args, args.seed), folder, args.suite_count, args.seed))
        except (FileNotFoundError, ValueError, BadItem) as error:
            raise SystemExit(f"error: row {name} ({folder}): {error}") from None
    args.out.mkdir(parents=True, exist_ok=True)
    text = table(rows)
    print(text)
    stem = study_stem(args.study)
    with open(args.out / f"{stem}.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["row", *COLUMNS, *(f"delta_{c}" for c in COLUMNS)])
        for row in rows:
            writer.writerow(
                [
                    row["row"],
                    *(f"{cell(row, c):.4f}" for c in COLUMNS),
                    *(f"{cell(row, c) - cell(rows[0], c):+.4f}" for c in COLUMNS),
                ]
            )
    (args.out / f"{stem}.json").write_text(json.dumps(rows, indent=2) + "\n")
    (args.out / f"{stem}.txt").write_text(text + "\n")
    chart(rows, args.out / f"{stem}.png", STUDY_TITLES[args.study])
    print(f"wrote {args.out / (stem + '.csv')}, {args.out / (stem + '.png')}")
    return rows


if __name__ == "__main__":
    main()
